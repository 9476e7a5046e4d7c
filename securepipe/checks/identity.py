"""Credential checks (step 2): no long-lived contractor keys, short sessions, short links.

**Who is a contractor identity.** The account cannot say who works for whom, so the checks
decide it from what the account records, and say so in the evidence:

* an IAM *user* is a contractor identity if its name or path contains ``contractor``, if it has
  a tag whose key is ``contractor`` or whose value contains ``contractor``, or if it is listed in
  :attr:`CheckConfig.contractor_users`;
* an IAM *role* is a contractor role by the same rules, or if it is the kit's
  :data:`securepipe.access.credentials.DEFAULT_ROLE_NAME`, or listed in
  :attr:`CheckConfig.contractor_roles` (which, when given, replaces discovery).

A user that is *not* marked as a contractor but holds an active access key is listed in the
evidence (review it), not failed: the identity running the checks often is one, and a check
that is always red gets ignored. Broad data access by any user or role is the access review's
job (:mod:`securepipe.checks.review`).
"""

from __future__ import annotations

from typing import Any

from securepipe.access.credentials import DEFAULT_ROLE_NAME, MAX_PRESIGN_S
from securepipe.checks._base import Bucket, Check, CheckContext, ResourceResult, per_resource
from securepipe.policy import Policy, Request, evaluate


def _marked(name: str, path: str, tags: list[dict[str, str]]) -> str | None:
    """Why an identity is taken for a contractor's, or ``None``."""
    if "contractor" in name.lower():
        return f"name {name!r}"
    if "contractor" in path.lower():
        return f"path {path!r}"
    for tag in tags:
        if tag.get("Key", "").lower() == "contractor" or "contractor" in tag.get(
                "Value", "").lower():
            return f"tag {tag.get('Key')}={tag.get('Value')}"
    return None


def contractor_users(ctx: CheckContext) -> dict[str, str]:
    """IAM user name -> why it is a contractor identity (ListUsers, ListUserTags)."""
    def compute() -> dict[str, str]:
        iam = ctx.client("iam")
        found: dict[str, str] = {}
        for page in iam.get_paginator("list_users").paginate():
            for user in page["Users"]:
                name = user["UserName"]
                if name in ctx.config.contractor_users:
                    found[name] = "listed in the configuration"
                    continue
                why = _marked(name, user.get("Path", "/"), [])
                if why is None:
                    why = _marked("", "", iam.list_user_tags(UserName=name).get("Tags", []))
                if why:
                    found[name] = why
        return found
    return ctx.memo("contractor_users", compute)


def all_users(ctx: CheckContext) -> list[dict[str, Any]]:
    def compute() -> list[dict[str, Any]]:
        iam = ctx.client("iam")
        return [u for page in iam.get_paginator("list_users").paginate() for u in page["Users"]]
    return ctx.memo("users", compute)


def all_roles(ctx: CheckContext) -> list[dict[str, Any]]:
    """Every role but AWS service-linked ones (ListRoles)."""
    def compute() -> list[dict[str, Any]]:
        iam = ctx.client("iam")
        return [r for page in iam.get_paginator("list_roles").paginate() for r in page["Roles"]
                if not r.get("Path", "/").startswith("/aws-service-role/")]
    return ctx.memo("roles", compute)


def contractor_roles(ctx: CheckContext) -> dict[str, str]:
    """Role name -> why it is a contractor role (ListRoles, ListRoleTags)."""
    def compute() -> dict[str, str]:
        if ctx.config.contractor_roles is not None:
            return dict.fromkeys(ctx.config.contractor_roles, "listed in the configuration")
        iam = ctx.client("iam")
        found: dict[str, str] = {}
        for role in all_roles(ctx):
            name = role["RoleName"]
            why = ("the kit's contractor role" if name == DEFAULT_ROLE_NAME
                   else _marked(name, role.get("Path", "/"), []))
            if why is None:
                why = _marked("", "", iam.list_role_tags(RoleName=name).get("Tags", []))
            if why:
                found[name] = why
        return found
    return ctx.memo("contractor_roles", compute)


def _access_keys(ctx: CheckContext) -> list[ResourceResult]:
    """ListAccessKeys and GetAccessKeyLastUsed per user
    (https://docs.aws.amazon.com/IAM/latest/APIReference/API_ListAccessKeys.html)."""
    iam = ctx.client("iam")
    contractors = contractor_users(ctx)

    def active(user: str) -> list[dict[str, Any]]:
        keys = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
        return [k for k in keys if k.get("Status") == "Active"]

    def one(user: str) -> ResourceResult:
        keys = active(user)
        if not keys:
            why = contractors[user]
            return ResourceResult(f"user/{user}", "pass",
                                  f"contractor identity ({why}) without an active access key")
        shown = []
        for key in keys:
            last = iam.get_access_key_last_used(AccessKeyId=key["AccessKeyId"]).get(
                "AccessKeyLastUsed", {}).get("LastUsedDate")
            shown.append(f"{key['AccessKeyId'][:4]}...{key['AccessKeyId'][-4:]} created "
                         f"{key['CreateDate']:%Y-%m-%d}, last used "
                         f"{f'{last:%Y-%m-%d}' if last else 'never'}")
        return ResourceResult(f"user/{user}", "fail",
                              f"contractor identity ({contractors[user]}) holds "
                              f"{len(keys)} active long-lived access key(s): {'; '.join(shown)}")

    results = per_resource(sorted(contractors), one, lambda u: f"user/{u}")
    others = [u["UserName"] for u in all_users(ctx)
              if u["UserName"] not in contractors and active(u["UserName"])]
    note = (f"; other users with active access keys (not marked as contractors, review them): "
            f"{', '.join(others)}" if others else "")
    if not contractors:
        results.append(ResourceResult("account", "pass",
                                      "no IAM user is marked as a contractor identity (name, "
                                      "path or tag)" + note))
    elif note:
        results.append(ResourceResult("account", "pass", note[2:]))
    return results


def _session_duration(ctx: CheckContext) -> list[ResourceResult]:
    """GetRole per contractor role: ``MaxSessionDuration``
    (https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetRole.html)."""
    iam = ctx.client("iam")
    limit = ctx.config.max_session_s
    roles = contractor_roles(ctx)
    if not roles:
        return [ResourceResult("account", "fail", "no contractor role found (by name, path or "
                               "tag): contractors then work with long-lived identities")]

    def one(name: str) -> ResourceResult:
        role = iam.get_role(RoleName=name)["Role"]
        seconds = int(role.get("MaxSessionDuration", 3600))
        ok = seconds <= limit
        return ResourceResult(f"role/{name}", "pass" if ok else "fail",
                              f"MaxSessionDuration={seconds} s ({seconds / 3600:g} h) "
                              f"{'<=' if ok else '>'} {limit} s; contractor role: {roles[name]}")

    return per_resource(sorted(roles), one, lambda n: f"role/{n}")


def _probe_age(policy: Policy, bucket: str, age_ms: int) -> bool:
    """Does the bucket policy deny a GetObject signed ``age_ms`` ago (over TLS)?"""
    context = {"aws:SecureTransport": "true", "s3:signatureAge": str(age_ms),
               "s3:authType": "REST-QUERY-STRING", "s3:signatureversion": "AWS4-HMAC-SHA256"}
    request = Request("s3:GetObject", f"arn:aws:s3:::{bucket}/raw/probe/sample",
                      "arn:aws:iam::000000000000:user/probe", context)
    return evaluate(request, identity=None, resource=[policy]).effect == "ExplicitDeny"


def _presign_cap(ctx: CheckContext) -> list[ResourceResult]:
    """What can honestly be observed about presigned-URL lifetimes.

    * per data bucket, a bucket-policy deny on ``s3:signatureAge``, decided by evaluating the
      policy for a link used just under and just over the limit and after 7 days.

    Without such a statement, the lifetime of a link is chosen by whoever signs it (up to 7
    days with SigV4, or the signer's session) and is never visible in the account: that is
    ``unverifiable``, not a pass.
    """
    limit = ctx.config.max_presign_s
    s3 = ctx.client("s3")
    # The kit's own cap is code, not account state: it is named in the evidence, never counted
    # as an evaluated resource (a run that read no bucket must not pass on a constant).
    kit = f"; the kit's presign_get caps links at {MAX_PRESIGN_S} s"

    def one(bucket: Bucket) -> ResourceResult:
        from botocore.exceptions import ClientError

        try:
            text = s3.get_bucket_policy(Bucket=bucket.name)["Policy"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchBucketPolicy":
                raise
            text = None
        policy = Policy.from_document("bucket-policy", text) if text else None
        if policy is None or not _probe_age(policy, bucket.name, 7 * 86400 * 1000):
            return ResourceResult(bucket.name, "unverifiable",
                                  "no bucket-policy cap on s3:signatureAge: a presigned URL's "
                                  "lifetime is chosen by whoever signs it (up to 7 days) and "
                                  "cannot be seen from the account")
        if _probe_age(policy, bucket.name, 1000):
            return ResourceResult(bucket.name, "fail", "the s3:signatureAge deny also refuses "
                                  "a request signed 1 s ago: every presigned link is broken")
        if not _probe_age(policy, bucket.name, limit * 1000 + 1):
            return ResourceResult(bucket.name, "fail",
                                  f"s3:signatureAge deny present, but a link used more than "
                                  f"{limit} s after signing is still accepted")
        return ResourceResult(bucket.name, "pass", f"bucket policy refuses any request signed "
                              f"more than {limit} s earlier (s3:signatureAge){kit}")

    return per_resource(ctx.config.data_buckets, one, lambda b: b.name)


CHECKS: list[Check] = [
    Check(
        id="iam_contractor_no_access_keys", title="No long-lived access keys for contractor "
        "identities", severity="high", step=2, checklist_item=3,
        rationale="An access key never expires: copied into an .env file on a contractor "
        "laptop it still works a year later. Contractors get 15-minute role sessions scoped "
        "to their own prefix instead.",
        remediation="delete the keys (IAM DeleteAccessKey) and vend sessions with "
        "securepipe.access.credentials.vend_contractor_credentials", evaluate=_access_keys),
    Check(
        id="iam_contractor_role_session_duration", title="Contractor roles allow only short "
        "sessions (MaxSessionDuration)", severity="high", step=2, checklist_item=3,
        rationale="A leaked session is usable until it expires; the role's maximum bounds "
        "every session anyone can ask for, whatever the vending code requests.",
        remediation="securepipe.access.credentials.ensure_contractor_role(..., "
        "max_session_s=3600) (IAM UpdateRole MaxSessionDuration)", evaluate=_session_duration),
    Check(
        id="s3_presigned_url_expiry_cap", title="Presigned URLs expire within 15 minutes",
        severity="medium", step=2, checklist_item=3,
        rationale="A presigned link is a bearer token: whoever finds it in a chat log can "
        "download the recording until it expires. Only a bucket-policy s3:signatureAge deny "
        "makes the cap visible and enforced for every signer; without one this check is "
        "unverifiable, never a pass.",
        remediation="securepipe.access.credentials.apply_presign_age_cap(session, bucket) and "
        "securepipe.access.credentials.presign_get (expires_in <= 900)", evaluate=_presign_cap),
]
