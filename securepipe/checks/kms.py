"""KMS checks (step 1): the customer-managed keys rotate and are not open to other accounts.

In the sandbox, moto keeps rotation and key policies as bookkeeping only (gaps
``kms-key-deletion`` and ``kms-key-policy`` in :mod:`securepipe.sandbox.gaps`): these checks read
the configuration, and AWS enforces it.
"""

from __future__ import annotations

from securepipe.checks._base import Check, CheckContext, ResourceResult, per_resource
from securepipe.errors import SecurePipeError
from securepipe.policy import Policy, Request, evaluate

#: A principal in an account that is certainly not the checked one, and no principal at all.
_FOREIGN = "arn:aws:iam::111122223333:root"
_PROBE_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom")


def _keys(ctx: CheckContext) -> tuple[str, ...]:
    if not ctx.config.key_arns:
        raise SecurePipeError("no customer-managed key is known (alias/securepipe-data)")
    return ctx.config.key_arns


def _describe(ctx: CheckContext, key_arn: str) -> dict[str, object]:
    return ctx.memo(("describe_key", key_arn), lambda: ctx.client("kms").describe_key(
        KeyId=key_arn)["KeyMetadata"])


def _rotation(ctx: CheckContext) -> list[ResourceResult]:
    """GetKeyRotationStatus per key
    (https://docs.aws.amazon.com/kms/latest/APIReference/API_GetKeyRotationStatus.html)."""
    kms = ctx.client("kms")

    def one(key_arn: str) -> ResourceResult:
        meta = _describe(ctx, key_arn)
        if meta.get("KeyManager") != "CUSTOMER":
            return ResourceResult(key_arn, "fail", f"KeyManager={meta.get('KeyManager')}: not "
                                  "a customer-managed key")
        status = kms.get_key_rotation_status(KeyId=key_arn)
        on = bool(status.get("KeyRotationEnabled"))
        days = status.get("RotationPeriodInDays")
        period = f", every {days} days" if on and days else ""
        return ResourceResult(key_arn, "pass" if on else "fail",
                              f"automatic rotation {'on' + period if on else 'off'}, "
                              f"KeyState={meta.get('KeyState')}")

    return per_resource(_keys(ctx), one, lambda k: k)


def _policy_open(ctx: CheckContext) -> list[ResourceResult]:
    """GetKeyPolicy per key, evaluated for a principal of another account and for anyone."""
    kms = ctx.client("kms")

    def one(key_arn: str) -> ResourceResult:
        text = kms.get_key_policy(KeyId=key_arn, PolicyName="default")["Policy"]
        policy = Policy.from_document("key-policy", text)
        open_to = []
        for who, label in ((_FOREIGN, "another account"), (None, "anonymous callers")):
            for action in _PROBE_ACTIONS:
                decision = evaluate(Request(action, key_arn, who, {}), identity=[],
                                    resource=[policy])
                if decision.allowed:
                    open_to.append(f"{label} may {action} ({decision.statement})")
                    break
        if open_to:
            return ResourceResult(key_arn, "fail", "; ".join(open_to))
        return ResourceResult(key_arn, "pass", f"{len(policy.statements)} statement(s); no "
                              "Decrypt/GenerateDataKey for other accounts or anonymous callers")

    return per_resource(_keys(ctx), one, lambda k: k)


CHECKS: list[Check] = [
    Check(
        id="kms_cmk_rotation_enabled", title="Automatic rotation on the customer-managed keys",
        severity="medium", step=1, checklist_item=2,
        rationale="Rotation limits how much data one key version protects; old versions stay "
        "for decryption, so nothing needs re-encrypting.",
        remediation="KMS EnableKeyRotation on each customer key "
        "(https://docs.aws.amazon.com/kms/latest/APIReference/API_EnableKeyRotation.html)",
        evaluate=_rotation),
    Check(
        id="kms_key_policy_not_public", title="Key policy grants no other account or anonymous "
        "caller Decrypt", severity="high", step=1, checklist_item=2,
        rationale="Every voice sample's data key is wrapped by these keys: a key policy open "
        "to another account (or to '*') lets its holders decrypt every copy they obtain. "
        "Decided by evaluating the key policy against probe requests.",
        remediation="KMS PutKeyPolicy: grant only this account's principals (the default "
        "'Enable IAM User Permissions' statement) and named roles", evaluate=_policy_open),
]
