"""Identity and key guards (step 2, step 3): who could take every recording, or destroy the keys.

* ``iam_no_wildcard_admin_over_data``: no user or role, the identity running the checks
  included (reported, never exempt), is allowed to decrypt with, disable, schedule deletion of
  or rewrite the policy of a data key, or read a data bucket or rewrite its policy, through a
  wildcard grant (``*``, ``kms:*``, ``s3:*`` or ``NotAction``), for a request made with a
  long-lived credential (no MFA). Decided by evaluating every identity's policies, read back
  through IAM, with :func:`securepipe.policy.evaluate`: the kit's guard
  (:func:`securepipe.access.guards.admin_guard_policy`) passes, as does any equivalent deny;
* ``iam_decrypt_identities_mfa``: every IAM user who can decrypt with a data key has an MFA
  device, and none can decrypt with a long-lived access key alone;
* ``cloudwatch_key_and_policy_change_alarms``: CIS AWS Foundations monitoring controls 4.7
  (key disabled or scheduled for deletion) and 4.8 (bucket-policy changes), from
  :func:`securepipe.audit.alarms.inspect_guard_alarms`.

Not modelled: permissions boundaries, SCPs, group policies of roles (roles have none), and
key-policy grants to principals outside IAM's view; the key policy itself is
``kms_key_policy_not_public``'s business.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from securepipe.access.review import Principal, role_principal, user_principal
from securepipe.audit.alarms import inspect_guard_alarms
from securepipe.checks._base import Check, CheckContext, ResourceResult, per_resource
from securepipe.checks.identity import all_roles, all_users
from securepipe.errors import SecurePipeError
from securepipe.policy import Request, Statement, evaluate

_ASSUMED = re.compile(r"arn:aws[\w-]*:sts::\d{12}:assumed-role/([^/]+)/.+")
_KEY_ACTIONS = ("kms:Decrypt", "kms:DisableKey", "kms:ScheduleKeyDeletion", "kms:PutKeyPolicy")
_BUCKET_ACTIONS = ("s3:GetObject", "s3:PutBucketPolicy")
#: What a long-lived access key presents: TLS, and no MFA.
_NO_MFA = {"aws:SecureTransport": "true", "aws:MultiFactorAuthPresent": "false"}
_MFA = {"aws:SecureTransport": "true", "aws:MultiFactorAuthPresent": "true"}


@dataclass(frozen=True)
class Identity:
    label: str  # user/NAME or role/NAME
    principal: Principal


def runner_label(ctx: CheckContext) -> str | None:
    """``user/NAME`` or ``role/NAME`` of the identity running the checks."""
    caller = ctx.caller_arn
    if caller is None:
        return None
    role = _ASSUMED.fullmatch(caller)
    if role:
        return f"role/{role.group(1)}"
    return f"user/{caller.rsplit('/', 1)[-1]}" if ":user/" in caller else caller


def identities(ctx: CheckContext) -> list[Identity]:
    """Every user and role (not service-linked) with its policies, once per run."""
    def compute() -> list[Identity]:
        out = [Identity(f"user/{u['UserName']}", user_principal(ctx.session, u["UserName"]))
               for u in sorted(all_users(ctx), key=lambda u: u["UserName"])]
        out += [Identity(f"role/{r['RoleName']}", role_principal(ctx.session, r["RoleName"]))
                for r in sorted(all_roles(ctx), key=lambda r: r["RoleName"])]
        return out
    return ctx.memo("guard_identities", compute)


def _statement(principal: Principal, label: str | None) -> Statement | None:
    if not label:
        return None
    name, _, which = label.rpartition("#")
    for policy in principal.identity:
        if policy.name != name:
            continue
        for st in policy.statements:
            if st.sid == which or str(st.index) == which:
                return st
    return None


def _wildcard(st: Statement | None) -> str | None:
    """The wildcard in a statement's actions (``*``, ``service:*``, ``NotAction``), if any."""
    if st is None:
        return None
    if st.not_actions:
        return f"NotAction {list(st.not_actions)}"
    for action in st.actions:
        if action == "*" or action.endswith(":*"):
            return action
    return None


def _probes(ctx: CheckContext) -> list[Request]:
    keys = ctx.config.key_arns
    buckets = [b.name for b in ctx.config.data_buckets]
    if not keys and not buckets:
        raise SecurePipeError("no data key or data bucket is known")
    out = [Request(a, k, None, _NO_MFA) for k in keys for a in _KEY_ACTIONS]
    for b in buckets:
        out.append(Request("s3:GetObject", f"arn:aws:s3:::{b}/probe", None, _NO_MFA))
        out.append(Request("s3:PutBucketPolicy", f"arn:aws:s3:::{b}", None, _NO_MFA))
    return out


def _wildcard_admin(ctx: CheckContext) -> list[ResourceResult]:
    probes = _probes(ctx)
    runner = runner_label(ctx)

    def one(ident: Identity) -> ResourceResult:
        who = " (the identity running these checks: reviewed, not exempt)" if (
            ident.label == runner) else ""
        hits: list[str] = []
        wild_held: set[str] = set()
        for probe in probes:
            decision = evaluate(Request(probe.action, probe.resource, ident.principal.arn,
                                        probe.context), identity=list(ident.principal.identity))
            st = _statement(ident.principal, decision.statement)
            if decision.allowed and (wild := _wildcard(st)):
                hits.append(f"{probe.action} on {ctx.config.label(probe.resource)} "
                            f"({decision.statement}: {wild})")
            for policy in ident.principal.identity:
                wild_held.update(w for s in policy.statements
                                 if s.effect == "Allow" and (w := _wildcard(s)))
        if hits:
            return ResourceResult(ident.label, "fail", f"a wildcard grant allows, without MFA, "
                                  f"{len(hits)} of {len(probes)} data-key/bucket actions: "
                                  + "; ".join(hits[:3]) + ("; ..." if len(hits) > 3 else "")
                                  + who)
        extra = (f"holds wildcard grant(s) {sorted(wild_held)}, but none reaches the data keys "
                 "or buckets without MFA" if wild_held else "no wildcard grant over the data "
                 "keys or buckets")
        return ResourceResult(ident.label, "pass", extra + who)

    return per_resource(identities(ctx), one, lambda i: i.label)


def _decrypt_mfa(ctx: CheckContext) -> list[ResourceResult]:
    keys = ctx.config.key_arns
    if not keys:
        raise SecurePipeError("no customer-managed key is known")
    iam = ctx.client("iam")
    runner = runner_label(ctx)
    users = [i for i in identities(ctx) if i.label.startswith("user/")]

    def can_decrypt(ident: Identity, context: dict[str, str]) -> list[str]:
        return [ctx.config.label(k) for k in keys if evaluate(
            Request("kms:Decrypt", k, ident.principal.arn, context),
            identity=list(ident.principal.identity)).allowed]

    results: list[ResourceResult] = []
    decrypters = 0
    for ident in users:
        reach = can_decrypt(ident, _MFA)
        if not reach:
            continue
        decrypters += 1
        name = ident.label.split("/", 1)[1]
        who = " (the identity running these checks)" if ident.label == runner else ""
        try:
            keys_active = [k["AccessKeyId"] for k in iam.list_access_keys(UserName=name)[
                "AccessKeyMetadata"] if k.get("Status") == "Active"]
            mfa = iam.list_mfa_devices(UserName=name)["MFADevices"]
        except Exception as exc:  # reported per identity; the others go on
            from securepipe.checks._base import could_not_evaluate

            results.append(ResourceResult(ident.label, "error", could_not_evaluate(exc)))
            continue
        problems = []
        without = can_decrypt(ident, _NO_MFA)
        if keys_active and without:
            problems.append(f"{len(keys_active)} active access key(s) decrypt with "
                            f"{', '.join(without)} without MFA")
        if not mfa:
            problems.append("no MFA device")
        if problems:
            results.append(ResourceResult(ident.label, "fail", f"can decrypt with "
                                          f"{', '.join(reach)}: " + "; ".join(problems) + who))
        else:
            results.append(ResourceResult(ident.label, "pass", f"can decrypt with "
                                          f"{', '.join(reach)} only with MFA "
                                          f"({len(mfa)} device(s)){who}"))
    results.append(ResourceResult("account", "pass", f"{len(users)} IAM user(s) evaluated, "
                                  f"{decrypters} can decrypt with a data key (roles have no "
                                  "long-lived keys; their sessions are the review's business)"))
    return results


def _guard_alarms(ctx: CheckContext) -> list[ResourceResult]:
    return [ResourceResult(f.guard, f.status, f.evidence)
            for f in ctx.memo("guard_alarms", lambda: inspect_guard_alarms(ctx.session))]


CHECKS: list[Check] = [
    Check(
        id="iam_no_wildcard_admin_over_data", title="No wildcard admin grant reaches the data "
        "keys or buckets without MFA (runner included)", severity="critical", step=2,
        checklist_item=3,
        rationale="An identity with '*' on '*' and a long-lived key can decrypt every "
        "recording, disable the key that wraps them all, or open a bucket, from wherever the "
        "key was copied. The identity running the review is reviewed like any other: an "
        "exemption would hide the most powerful principal in the account.",
        remediation="securepipe.access.guards.apply_admin_guard(session, user, key_arns=..., "
        "buckets=...) (deny data reads and key destruction without MFA), or replace the "
        "wildcard with named actions on named resources", evaluate=_wildcard_admin),
    Check(
        id="iam_decrypt_identities_mfa", title="Users who can decrypt the data have MFA and no "
        "access key that decrypts without it", severity="high", step=2, checklist_item=3,
        rationale="Whoever can call kms:Decrypt on the data key can read every recording they "
        "can fetch. A long-lived access key that decrypts without MFA is one leaked .env file "
        "from a breach; MFA on the identity is the minimum for such power.",
        remediation="securepipe.access.guards.apply_admin_guard (MFA device, deny without "
        "MFA), or delete the access key (IAM DeleteAccessKey) and use role sessions",
        evaluate=_decrypt_mfa),
    Check(
        id="cloudwatch_key_and_policy_change_alarms", title="Alarms on key disable/deletion "
        "and bucket-policy changes (CIS 4.7, 4.8)", severity="high", step=3, checklist_item=4,
        rationale="Disabling or scheduling deletion of the data key crypto-shreds every "
        "recording; a bucket-policy change can open them all. CIS AWS Foundations asks for a "
        "CloudTrail metric filter and alarm on each; the filter patterns are evaluated against "
        "the events, not matched as text. (The sandbox stores filters and alarms; AWS fires "
        "them.)",
        remediation="securepipe.audit.alarms.apply_guard_alarms(session, trail_name=..., "
        "topic_arn=...)", evaluate=_guard_alarms),
]
