"""Lesson 06's exercises: the scorecard's checks and the auditor's permissions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from securepipe.errors import InvalidParameterError
from securepipe.exercises.base import BUCKET, Exercise, kit_layout
from securepipe.policy import Policy, Request, evaluate

_FINDINGS = {
    "a contractor holds a long-lived access key": "iam_contractor_no_access_keys",
    "the raw bucket uses the AWS-managed aws/s3 key": "s3_bucket_default_encryption_cmk",
    "plaintext WAVs are stored in the features bucket": "s3_objects_client_side_encrypted",
}


def _map_starter() -> dict[str, str]:
    return dict.fromkeys(_FINDINGS, "")


def _map_judge(answer: Any) -> list[str]:
    from securepipe.checks import REGISTRY

    if not isinstance(answer, Mapping):
        return ["answer with a dict from each finding to a check id"]
    out = []
    for finding, want in _FINDINGS.items():
        got = answer.get(finding, "")
        if got not in REGISTRY:
            out.append(f"{finding}: {got!r} is not a check id (see REGISTRY)")
        elif got != want:
            out.append(f"{finding}: {got!r} checks something else ({REGISTRY[got].title})")
    return out


def _error_row() -> dict[str, str]:
    """A scorecard row for an auditor role missing one action: the evidence is what the
    scorecard writes for an AccessDenied from GetBucketEncryption (``could_not_evaluate``)."""
    from botocore.exceptions import ClientError

    from securepipe.checks import could_not_evaluate

    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}},
                         "GetBucketEncryption")
    return {"check": "s3_bucket_default_encryption_cmk", "status": "error",
            "evidence": f"{BUCKET}: {could_not_evaluate(denied)}"}


def _auditor_policy(extra: str | None = None) -> Policy:
    """The kit's auditor policy without ``s3:GetEncryptionConfiguration`` (plus ``extra``).

    GetBucketEncryption is authorised as ``s3:GetEncryptionConfiguration``, not by its own
    name: https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketEncryption.html
    ("Permissions")."""
    from securepipe.provision.policies import kit_role_policy

    layout = kit_layout()
    doc = kit_role_policy("auditor", layout)
    for st in doc["Statement"]:
        st["Action"] = [a for a in st["Action"] if a != "s3:GetEncryptionConfiguration"]
    if extra is not None:
        doc["Statement"].append({"Sid": "Added", "Effect": "Allow", "Action": [extra],
                                 "Resource": [f"arn:aws:s3:::{BUCKET}"]})
    return Policy.from_document("auditor", doc)


def _permission_starter() -> dict[str, Any]:
    return {"row": _error_row(), "missing_action": ""}


def _permission_judge(answer: Any) -> list[str]:
    action = answer.get("missing_action") if isinstance(answer, Mapping) else None
    if not isinstance(action, str) or not action:
        return ["set answer['missing_action'] to the IAM action the auditor role needs, "
                "e.g. 's3:SomeAction'"]
    who = "arn:aws:sts::123456789012:assumed-role/securepipe-auditor/check"
    need = Request("s3:GetEncryptionConfiguration", f"arn:aws:s3:::{BUCKET}", who)
    try:
        fixed = evaluate(need, identity=[_auditor_policy(action)]).allowed
    except InvalidParameterError as exc:
        return [f"{action!r} is not an action a policy accepts: {exc}"]
    if not fixed:
        hint = (" (that is the API operation's name; IAM authorises it under another action "
                "name: see the S3 API reference's Permissions section)"
                if action.lower() == "s3:getbucketencryption" else "")
        return [f"with {action!r} added, the auditor is still refused the call{hint}"]
    if "*" in action:
        return [f"{action!r} works, but grants more than the one missing action"]
    return []


EXERCISES: tuple[Exercise, ...] = (
    Exercise("06-which-check", "06", "Map each finding to the scorecard check that fails on "
             "it (check ids are the keys of securepipe.checks.REGISTRY).",
             _map_starter, _map_judge),
    Exercise("06-missing-permission", "06", "This scorecard row (answer['row']) could not be "
             "evaluated. Which IAM action must the auditor role gain? Set "
             "answer['missing_action'].", _permission_starter, _permission_judge),
)
