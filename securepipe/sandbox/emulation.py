"""Emulated AWS enforcement for requests that reach the sandbox.

moto accepts bucket policies but evaluates them wrongly: conditions inside a Deny always match
(so a TLS-only policy blocks HTTPS too) and the Principal is ignored. Real AWS evaluates them
exactly. So while a sandbox is open, the kit

* switches moto's own bucket-policy check off, and
* evaluates every S3 request against the bucket's policy with :mod:`securepipe.policy`, using the
  request's real properties (scheme, headers, query), and refuses with ``403 AccessDenied`` where
  AWS would.

For requests signed with temporary credentials from STS (the kit's contractor sessions), it also
emulates what moto ignores (gaps ``sts-session-policy``, ``sts-expiry``, ``iam-conditions``): the
role's identity policies intersected with the session policy, conditions included, for S3 and KMS
calls; and the session's expiry. Presigned URLs past their ``X-Amz-Expires`` are refused
(gap ``s3-presigned-expiry``). The sandbox clock can be moved (:func:`securepipe.clock.move`) so
lessons and
tests can show an expired session being refused.

Every refusal says in its message that it is an emulation, and is recorded in
:data:`REFUSALS` for lessons and tests. This module is sandbox-only: on a real account AWS itself
does this work, and none of the kit's other code depends on it.

It hooks in at two places, covering every client, including one an attacker builds with stolen
keys: in-process, inside moto's stubber, just before moto carries a request out (botocore and
the ``requests`` library alike); in server mode, a WSGI middleware in front of moto's app.

Where the emulation and moto could read one request two ways (a query parameter given twice,
two subresources, a Host header naming another host than the URL, a body on a GET or DELETE,
a browser-form POST upload), it refuses the request rather than guess which one moto acts on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from xml.etree import ElementTree

from securepipe import clock
from securepipe.policy import Decision, Policy, Request, evaluate
from securepipe.sandbox.motostate import (
    assumed_role_of,
    aware_utc,
    bucket_policy_of,
    local_tag,
    object_lock_of,
    role_policies,
    user_arn_of,
)
from securepipe.sandbox.requests import (
    S3Call,
    ServiceCall,
    decode_aws_chunked,
    describe_json_or_query_request,
    describe_s3_request,
    headers_get,
    parse_lock_date,
)


@dataclass(frozen=True)
class Refusal:
    """A request the sandbox refused on AWS's behalf."""

    service: str
    action: str
    resource: str
    principal: str | None
    decision: Decision
    code: str = "AccessDenied"
    reason: str = ""
    when: dt.datetime = field(default_factory=lambda: clock.now())

    @property
    def message(self) -> str:
        who = self.principal or "anonymous"
        if self.code == "ExpiredToken":
            text = f"The security token of {who} has expired ({self.reason})"
        elif self.reason:
            text = f"{self.reason} (request by {who} for {self.action} on {self.resource})"
        else:
            kind = {"ExplicitDeny": "with an explicit deny in",
                    "ImplicitDeny": "because no policy allows it:"}[self.decision.effect]
            where = self.decision.statement or "identity and session policies"
            text = (f"User: {who} is not authorized to perform: {self.action} on resource: "
                    f"{self.resource} {kind} {where}")
        return f"{text} [securepipe sandbox: {EMULATION}]"


EMULATION = "emulated AWS enforcement"


#: Every refusal made while sandboxes were open, oldest first (bounded).
REFUSALS: list[Refusal] = []


_MAX_REFUSALS = 10_000


class Enforcer:
    """Evaluates sandbox requests the way AWS would, with policies read from moto's state."""

    def __init__(self, policy_source: Callable[[str], Policy | None] | None = None) -> None:
        self._policy_source = policy_source or bucket_policy_of

    def check(
        self, method: str, url: str, headers: Mapping[str, Any],
        body: bytes | str | None = None,
    ) -> Refusal | None:
        """Return a :class:`Refusal` if AWS would refuse this request, else ``None``."""
        query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
        call: S3Call | ServiceCall | None = describe_s3_request(method, url, headers)
        if call is None:
            call = describe_json_or_query_request(url, headers, body)
        if call is None:
            return None
        session = assumed_role_of(call.access_key)
        principal = session.arn if session is not None else user_arn_of(call.access_key)
        refusal = None
        if ("X-Amz-Expires" in query and "X-Amz-Date" in query) or (
                "Expires" in query and "AWSAccessKeyId" in query):
            refusal = _presigned_expired(call, principal, query)
        if refusal is None and session is not None and clock.now() >= aware_utc(session.expiration):
            refusal = Refusal(call.service, call.action, call.resource, principal,
                              Decision("ExplicitDeny"), code="ExpiredToken",
                              reason=f"expired at {aware_utc(session.expiration):%H:%M:%S} UTC, "
                                     f"sandbox clock {clock.now():%H:%M:%S} UTC")
        if refusal is None and isinstance(call, S3Call):
            reason = call.ambiguous
            if (reason is None and call.key is not None and body
                    and call.action.split(":")[1].startswith(("Get", "Delete"))):
                reason = "a read or delete that carries a body"
            if reason is not None:
                refusal = _own_refusal(call, principal, "ambiguous-request",
                                       f"the emulation cannot be sure how this request is "
                                       f"read ({reason}), so it refuses it")
        if refusal is None and isinstance(call, S3Call) and call.action == "s3:PutObjectRetention":
            refusal = _retention_change(call, principal, body,
                                        query.get("versionId") or None)
        if refusal is None:
            calls = _calls_to_check(call, body, headers)
            if calls is None:
                refusal = _own_refusal(call, principal, "unreadable-request",
                                       "the emulation cannot tell which keys this DeleteObjects "
                                       "names, so it refuses it rather than let it through "
                                       "unchecked")
            for each in calls or ():
                refusal = self._evaluate(each, principal, session)
                if refusal is not None:
                    break
        if refusal is not None:
            REFUSALS.append(refusal)
            del REFUSALS[:-_MAX_REFUSALS]
        return refusal

    def _evaluate(self, call: S3Call | ServiceCall, principal: str | None,
                  session: Any) -> Refusal | None:
        if call.action in _ALWAYS_ALLOWED:
            return None
        bucket_policy = self._policy_source(call.bucket) if isinstance(call, S3Call) else None
        resource_policies = [bucket_policy] if bucket_policy is not None else []
        copies_from_policy_bucket = (isinstance(call, S3Call) and call.copy_source is not None
                                     and self._policy_source(call.copy_source[0]) is not None)
        if session is None and not resource_policies and not copies_from_policy_bucket:
            return None  # long-term identities: moto decides (IAM enforcement off in the sandbox)
        context = {**call.context,
                   "aws:PrincipalArn": session.role_arn if session is not None else principal}
        identity = session_policies = None
        if session is not None:
            identity = role_policies(session.role_arn)
            if session.policy:
                session_policies = [Policy.from_document("session-policy", session.policy)]
        decision = evaluate(Request(call.action, call.resource, principal, context),
                            identity=identity, session=session_policies,
                            resource=resource_policies)
        if not decision.allowed:
            return Refusal(call.service, call.action, call.resource, principal, decision)
        if (isinstance(call, S3Call) and call.bypass_governance and call.key is not None
                and call.action in _GOVERNANCE_BYPASSABLE):
            # https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock-managing.html
            action = "s3:BypassGovernanceRetention"
            decision = evaluate(Request(action, call.resource, principal, context),
                                identity=identity, session=session_policies,
                                resource=resource_policies)
            if not decision.allowed:
                return Refusal(call.service, action, call.resource, principal, decision)
        if isinstance(call, S3Call) and call.copy_source is not None:
            # A copy is also a read of its source: AWS authorises s3:GetObject there too.
            bucket, key, version = call.copy_source
            action = "s3:GetObjectVersion" if version else "s3:GetObject"
            source = f"arn:aws:s3:::{bucket}/{key}"
            source_policy = self._policy_source(bucket)
            decision = evaluate(Request(action, source, principal, context), identity=identity,
                                session=session_policies,
                                resource=[source_policy] if source_policy else [])
            if not decision.allowed:
                return Refusal(call.service, action, source, principal, decision)
        return None


_ALWAYS_ALLOWED = frozenset({"sts:GetCallerIdentity"})


#: Requests whose ``x-amz-bypass-governance-retention`` header AWS authorises separately.
_GOVERNANCE_BYPASSABLE = frozenset({"s3:DeleteObject", "s3:DeleteObjectVersion",
                                    "s3:PutObjectRetention"})


def _retention_change(call: S3Call, principal: str | None, body: bytes | str | None,
                      version_id: str | None) -> Refusal | None:
    """What Object Lock allows a PutObjectRetention to change (moto allows any change).

    COMPLIANCE retention can be extended, never shortened, removed or switched to GOVERNANCE,
    by anyone. Shortening or removing GOVERNANCE retention needs the
    ``x-amz-bypass-governance-retention`` header (and so ``s3:BypassGovernanceRetention``,
    checked with the rest of the request).
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock.html#object-lock-retention-modes
    """
    current = object_lock_of(call.bucket, call.key or "", version_id)
    if current is None:
        return None  # no lock in force: any retention may be set
    mode, until = current
    new = _retention_body(body)
    if new is None:
        return _own_refusal(call, principal, "ambiguous-request",
                            "the emulation cannot read the new retention, so it refuses it")
    new_mode, new_until = new
    weaker = new_until is None or new_until < until
    if mode == "COMPLIANCE" and (weaker or new_mode != "COMPLIANCE"):
        reason = "COMPLIANCE retention cannot be shortened, removed or relaxed, by anyone"
    elif mode == "GOVERNANCE" and weaker and not call.bypass_governance:
        reason = ("shortening or removing GOVERNANCE retention needs "
                  "x-amz-bypass-governance-retention (and s3:BypassGovernanceRetention)")
    else:
        return None
    return _own_refusal(call, principal, "object-lock", reason)


def _own_refusal(call: S3Call | ServiceCall, principal: str | None, rule: str,
                 reason: str) -> Refusal:
    """A refusal decided by the emulation's own rule (not by a policy statement)."""
    return Refusal(call.service, call.action, call.resource, principal,
                   Decision("ExplicitDeny", f"securepipe:{rule}"), reason=reason)


def _retention_body(body: bytes | str | None) -> tuple[str | None, dt.datetime | None] | None:
    """``(Mode, RetainUntilDate)`` of a PutObjectRetention body; None if it cannot be read."""
    data = body.encode() if isinstance(body, str) else body
    try:
        root = ElementTree.fromstring(data or b"")
    except ElementTree.ParseError:
        return None
    if local_tag(root.tag) != "Retention":
        return None
    fields: dict[str, list[str]] = {}
    for child in root:
        fields.setdefault(local_tag(child.tag), []).append(child.text or "")
    if any(len(v) > 1 for v in fields.values()):
        return None
    mode = fields.get("Mode", [None])[0]
    raw_until = fields.get("RetainUntilDate", [None])[0]
    until = parse_lock_date(raw_until)
    if raw_until and until is None:
        return None
    return mode, until


def _calls_to_check(call: S3Call | ServiceCall, body: bytes | str | None,
                    headers: Mapping[str, Any]) -> list[S3Call | ServiceCall] | None:
    """The requests to authorise for ``call``: usually just ``call``.

    * An object GET with a subresource (``?retention``, say) is also checked as a GetObject:
      moto answers some of them with the object itself.
    * DeleteObjects (``POST /bucket?delete``) becomes the per-key deletes AWS authorises
      (``s3:DeleteObject``, or ``s3:DeleteObjectVersion`` with a version id, on every key in
      the body, not on the bucket; AWS reports each refused key in the response's ``Errors``).
      The emulation refuses the whole request if any key would be refused: stricter, never
      looser. ``None`` when the body cannot be read with certainty (not the XML moto would act
      on, an aws-chunked body that does not decode, an object without exactly one key): the
      caller then refuses the request.
      https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html
    """
    if (isinstance(call, S3Call) and call.key is not None and call.action.startswith("s3:GetObject")
            and call.action not in ("s3:GetObject", "s3:GetObjectVersion")):
        return [call, replace(call, action="s3:GetObject")]
    if not (isinstance(call, S3Call) and call.action == "s3:DeleteObject" and call.key is None):
        return [call]
    data = body.encode() if isinstance(body, str) else body
    if not data:
        return None
    streaming = str(headers_get(headers, "x-amz-content-sha256", "")).startswith("STREAMING-")
    if streaming or "aws-chunked" in str(headers_get(headers, "content-encoding", "")):
        data = decode_aws_chunked(data)
        if data is None:
            return None
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError:
        return None
    if local_tag(root.tag) != "Delete":
        return None
    calls: list[S3Call | ServiceCall] = []
    for obj in root:
        if local_tag(obj.tag) != "Object":
            continue
        keys = [c.text or "" for c in obj if local_tag(c.tag) == "Key"]
        versions = [c.text or "" for c in obj if local_tag(c.tag) == "VersionId"]
        if len(keys) != 1 or len(versions) > 1:
            return None
        action = "s3:DeleteObjectVersion" if versions and versions[0] else "s3:DeleteObject"
        calls.append(replace(call, action=action, key=keys[0]))
    return calls or None


def _presigned_expired(call: S3Call | ServiceCall, principal: str | None,
                       query: Mapping[str, str]) -> Refusal | None:
    """SigV4 (``X-Amz-Date`` + ``X-Amz-Expires``) or SigV2 (``Expires``, epoch seconds)."""
    try:
        if "X-Amz-Date" in query:
            signed = dt.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
                tzinfo=dt.UTC)
            deadline = signed + dt.timedelta(seconds=int(query["X-Amz-Expires"]))
        else:
            deadline = dt.datetime.fromtimestamp(int(query["Expires"]), tz=dt.UTC)
    except (ValueError, OverflowError):
        return Refusal(call.service, call.action, call.resource, principal,
                       Decision("ExplicitDeny"), reason="Malformed presigned URL")
    if clock.now() <= deadline:
        return None
    return Refusal(call.service, call.action, call.resource, principal, Decision("ExplicitDeny"),
                   reason=f"Request has expired: presigned URL valid until {deadline:%H:%M:%S} UTC")
