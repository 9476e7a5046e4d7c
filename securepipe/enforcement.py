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
(gap ``s3-presigned-expiry``). The sandbox clock can be moved (:func:`move_clock`) so lessons and
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
import io
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from securepipe.policy import Decision, Policy, Request, evaluate

#: Object-level S3 operations by (HTTP method, subresource); ``""`` is the object itself.
_OBJECT_ACTIONS: dict[tuple[str, str], str] = {
    ("GET", ""): "s3:GetObject",
    ("HEAD", ""): "s3:GetObject",
    ("PUT", ""): "s3:PutObject",
    ("POST", ""): "s3:PutObject",
    ("DELETE", ""): "s3:DeleteObject",
    ("GET", "tagging"): "s3:GetObjectTagging",
    ("PUT", "tagging"): "s3:PutObjectTagging",
    ("GET", "acl"): "s3:GetObjectAcl",
    ("PUT", "acl"): "s3:PutObjectAcl",
    ("GET", "retention"): "s3:GetObjectRetention",
    ("PUT", "retention"): "s3:PutObjectRetention",
    ("GET", "legal-hold"): "s3:GetObjectLegalHold",
    ("PUT", "legal-hold"): "s3:PutObjectLegalHold",
    ("POST", "restore"): "s3:RestoreObject",
    ("POST", "uploads"): "s3:PutObject",
    ("PUT", "uploadId"): "s3:PutObject",
    ("POST", "uploadId"): "s3:PutObject",
    ("DELETE", "uploadId"): "s3:AbortMultipartUpload",
}
#: Bucket-level S3 operations by (HTTP method, subresource).
_BUCKET_ACTIONS: dict[tuple[str, str], str] = {
    ("GET", ""): "s3:ListBucket",
    ("HEAD", ""): "s3:ListBucket",
    ("GET", "versions"): "s3:ListBucketVersions",
    ("GET", "uploads"): "s3:ListBucketMultipartUploads",
    ("PUT", ""): "s3:CreateBucket",
    ("DELETE", ""): "s3:DeleteBucket",
    ("POST", "delete"): "s3:DeleteObject",
    ("GET", "policy"): "s3:GetBucketPolicy",
    ("PUT", "policy"): "s3:PutBucketPolicy",
    ("DELETE", "policy"): "s3:DeleteBucketPolicy",
    ("GET", "encryption"): "s3:GetEncryptionConfiguration",
    ("PUT", "encryption"): "s3:PutEncryptionConfiguration",
    ("DELETE", "encryption"): "s3:PutEncryptionConfiguration",
    ("GET", "versioning"): "s3:GetBucketVersioning",
    ("PUT", "versioning"): "s3:PutBucketVersioning",
    ("GET", "publicAccessBlock"): "s3:GetBucketPublicAccessBlock",
    ("PUT", "publicAccessBlock"): "s3:PutBucketPublicAccessBlock",
    ("DELETE", "publicAccessBlock"): "s3:PutBucketPublicAccessBlock",
    ("GET", "ownershipControls"): "s3:GetBucketOwnershipControls",
    ("PUT", "ownershipControls"): "s3:PutBucketOwnershipControls",
    ("DELETE", "ownershipControls"): "s3:PutBucketOwnershipControls",
    ("GET", "lifecycle"): "s3:GetLifecycleConfiguration",
    ("PUT", "lifecycle"): "s3:PutLifecycleConfiguration",
    ("DELETE", "lifecycle"): "s3:PutLifecycleConfiguration",
    ("GET", "object-lock"): "s3:GetBucketObjectLockConfiguration",
    ("PUT", "object-lock"): "s3:PutBucketObjectLockConfiguration",
    ("GET", "tagging"): "s3:GetBucketTagging",
    ("PUT", "tagging"): "s3:PutBucketTagging",
    ("GET", "acl"): "s3:GetBucketAcl",
    ("PUT", "acl"): "s3:PutBucketAcl",
    ("GET", "location"): "s3:GetBucketLocation",
    ("GET", "logging"): "s3:GetBucketLogging",
    ("PUT", "logging"): "s3:PutBucketLogging",
    ("GET", "notification"): "s3:GetBucketNotification",
    ("PUT", "notification"): "s3:PutBucketNotification",
    ("GET", "metrics"): "s3:GetMetricsConfiguration",
    ("PUT", "metrics"): "s3:PutMetricsConfiguration",
}
_SUBRESOURCES = {sub for _, sub in (*_OBJECT_ACTIONS, *_BUCKET_ACTIONS) if sub}

_clock_offset = dt.timedelta(0)


def now() -> dt.datetime:
    """The sandbox clock: real UTC time plus whatever :func:`move_clock` added."""
    return dt.datetime.now(dt.UTC) + _clock_offset


def move_clock(delta: dt.timedelta) -> dt.datetime:
    """Move the sandbox clock forward (or back) by ``delta``; returns the new time."""
    global _clock_offset
    _clock_offset += delta
    return now()


def reset_clock() -> None:
    """Put the sandbox clock back to real time."""
    global _clock_offset
    _clock_offset = dt.timedelta(0)


@dataclass(frozen=True)
class S3Call:
    """An S3 request reduced to what policy evaluation needs."""

    action: str
    bucket: str
    key: str | None
    access_key: str | None
    context: Mapping[str, Any]
    #: CopyObject / UploadPartCopy: (bucket, key, version id) of the source, which AWS also
    #: authorises, as a read.
    copy_source: tuple[str, str, str | None] | None = None
    #: ``x-amz-bypass-governance-retention: true``: AWS also authorises
    #: ``s3:BypassGovernanceRetention`` on the object.
    bypass_governance: bool = False
    #: Why the emulation cannot be sure how moto reads this request (it is then refused).
    ambiguous: str | None = None

    service = "s3"

    @property
    def resource(self) -> str:
        base = f"arn:aws:s3:::{self.bucket}"
        return base if self.key is None else f"{base}/{self.key}"


def describe_s3_request(method: str, url: str, headers: Mapping[str, str]) -> S3Call | None:
    """Map an HTTP request to its S3 action, bucket, key and condition keys (None if not S3)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    path = parts.path
    is_aws = host.endswith(".amazonaws.com")
    path_style = host.startswith(("s3.", "s3-"))
    if is_aws and not (path_style or ".s3." in host or ".s3-" in host):
        return None  # another AWS service (KMS, STS, ...)
    if not is_aws and not _signed_for_s3(headers_get(headers, "authorization", "") or "",
                                         unquote(parts.query)):
        return None  # server mode: only requests signed for S3 are S3 requests
    ambiguous = None
    named = str(headers_get(headers, "host", "") or "").lower().rsplit(":", 1)[0].strip("[]")
    if named and named != host:
        ambiguous = f"its Host header names {named!r}, its URL {host!r}"
    if is_aws and not path_style:
        bucket = host.split(".s3", 1)[0]
        key = unquote(path[1:]) if len(path) > 1 else None
    else:
        segments = path.lstrip("/").split("/", 1)
        if not segments[0]:
            return None  # ListBuckets: not bucket-scoped
        bucket = unquote(segments[0])
        key = unquote(segments[1]) if len(segments) > 1 and segments[1] else None
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = dict(pairs)
    if len(query) != len(pairs):
        ambiguous = "a query parameter is given twice"
    method = method.upper()
    table = _BUCKET_ACTIONS if key is None else _OBJECT_ACTIONS
    subs = [s for s in query if (method, s) in table]
    if len(subs) > 1:
        ambiguous = f"it names {len(subs)} subresources ({', '.join(subs)})"
    # A subresource this level does not have is ignored, as moto ignores it: the request is the
    # plain operation (a PUT /key?location is a PutObject).
    sub = subs[0] if subs else ""
    if key is None and method == "POST" and "delete" in query:
        action = "s3:DeleteObject"  # DeleteObjects, whatever else the query says (as moto reads it)
    elif key is None:
        action = _BUCKET_ACTIONS.get((method, sub), f"s3:{method.title()}Bucket{sub.title()}")
        if method == "POST" and not sub:
            ambiguous = "browser-form POST uploads are not emulated"
    else:
        action = _OBJECT_ACTIONS.get((method, sub), f"s3:{method.title()}Object{sub.title()}")
        if action in ("s3:GetObject", "s3:DeleteObject") and query.get("versionId"):
            action += "Version"
    context: dict[str, Any] = {
        "aws:SecureTransport": "true" if parts.scheme == "https" else "false",
        "aws:CurrentTime": now().strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    for header in ("x-amz-server-side-encryption",
                   "x-amz-server-side-encryption-aws-kms-key-id"):
        value = headers_get(headers, header)
        if value is not None:
            context[f"s3:{header}"] = value
    if action == "s3:ListBucket":
        for name in ("prefix", "delimiter", "max-keys"):
            if name in query:
                context[f"s3:{name}"] = query[name]
    access_key = _access_key(headers_get(headers, "authorization", ""), query)
    # moto treats any value of the header as a bypass (botocore sends "false" too)
    bypass = bool(str(headers_get(headers, "x-amz-bypass-governance-retention", "") or ""))
    return S3Call(action=action, bucket=bucket, key=key, access_key=access_key, context=context,
                  copy_source=_copy_source(headers_get(headers, "x-amz-copy-source")),
                  bypass_governance=bypass, ambiguous=ambiguous)


def _copy_source(header: str | None) -> tuple[str, str, str | None] | None:
    """``x-amz-copy-source: /bucket/key?versionId=...`` (URL-encoded) as its parts."""
    if not header:
        return None
    path, _, query = str(header).partition("?")
    bucket, _, key = unquote(path).lstrip("/").partition("/")
    version = dict(parse_qsl(query)).get("versionId")
    return (bucket, key, version) if bucket and key else None


def _signed_for_s3(authorization: str, query: str) -> bool:
    """SigV4 with an ``s3`` credential scope, or SigV2 (which only S3 still accepts)."""
    return ("/s3/aws4_request" in authorization or authorization.startswith("AWS ")
            or "/s3/aws4_request" in query or "AWSAccessKeyId=" in query)


def headers_get(headers: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """Case-insensitive header lookup that works for dicts and botocore's header classes."""
    for k, v in headers.items():
        if k.lower() == name:
            return v.decode() if isinstance(v, bytes) else v
    return default


def _access_key(authorization: str, query: Mapping[str, str]) -> str | None:
    if "Credential=" in authorization:
        return authorization.split("Credential=", 1)[1].split("/", 1)[0]
    if authorization.startswith("AWS "):  # SigV2 header: "AWS <access key>:<signature>"
        return authorization[4:].split(":", 1)[0]
    credential = query.get("X-Amz-Credential")
    if credential:
        return credential.split("/", 1)[0]
    return query.get("AWSAccessKeyId")


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
    when: dt.datetime = field(default_factory=lambda: now())

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
        self._policy_source = policy_source or _moto_bucket_policy

    def check(
        self, method: str, url: str, headers: Mapping[str, Any], body: bytes | None = None
    ) -> Refusal | None:
        """Return a :class:`Refusal` if AWS would refuse this request, else ``None``."""
        query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
        call: S3Call | ServiceCall | None = describe_s3_request(method, url, headers)
        if call is None:
            call = describe_json_or_query_request(url, headers, body)
        if call is None:
            return None
        session = _assumed_role_of(call.access_key)
        principal = session.arn if session is not None else _user_arn_of(call.access_key)
        refusal = None
        if ("X-Amz-Expires" in query and "X-Amz-Date" in query) or (
                "Expires" in query and "AWSAccessKeyId" in query):
            refusal = _presigned_expired(call, principal, query)
        if refusal is None and session is not None and now() >= _aware(session.expiration):
            refusal = Refusal(call.service, call.action, call.resource, principal,
                              Decision("ExplicitDeny"), code="ExpiredToken",
                              reason=f"expired at {_aware(session.expiration):%H:%M:%S} UTC, "
                                     f"sandbox clock {now():%H:%M:%S} UTC")
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
            identity = _role_policies(session.role_arn)
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
    current = _moto_object_lock(call.bucket, call.key or "", version_id)
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


def _local(tag: str) -> str:
    """An XML element's name without its namespace."""
    return tag.rsplit("}", 1)[-1]


def _moto_object_lock(bucket: str, key: str, version_id: str | None
                      ) -> tuple[str, dt.datetime] | None:
    """The Object Lock retention in force on an object version in moto's state, if any."""
    found = _moto_bucket(bucket)
    if found is None:
        return None
    versions = found.keys.getlist(key, default=[])
    if version_id is not None:
        versions = [v for v in versions if str(getattr(v, "version_id", "")) == version_id]
    elif versions:
        versions = versions[-1:]
    if not versions or not getattr(versions[0], "lock_mode", None):
        return None
    until = _parse_lock_date(getattr(versions[0], "lock_until", None))
    if until is None or until <= now():
        return None
    return str(versions[0].lock_mode), until


def _parse_lock_date(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _retention_body(body: bytes | str | None) -> tuple[str | None, dt.datetime | None] | None:
    """``(Mode, RetainUntilDate)`` of a PutObjectRetention body; None if it cannot be read."""
    data = body.encode() if isinstance(body, str) else body
    try:
        root = ElementTree.fromstring(data or b"")
    except ElementTree.ParseError:
        return None
    if _local(root.tag) != "Retention":
        return None
    fields: dict[str, list[str]] = {}
    for child in root:
        fields.setdefault(_local(child.tag), []).append(child.text or "")
    if any(len(v) > 1 for v in fields.values()):
        return None
    mode = fields.get("Mode", [None])[0]
    raw_until = fields.get("RetainUntilDate", [None])[0]
    until = _parse_lock_date(raw_until)
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
        data = _aws_chunked(data)
        if data is None:
            return None
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError:
        return None
    if _local(root.tag) != "Delete":
        return None
    calls: list[S3Call | ServiceCall] = []
    for obj in root:
        if _local(obj.tag) != "Object":
            continue
        keys = [c.text or "" for c in obj if _local(c.tag) == "Key"]
        versions = [c.text or "" for c in obj if _local(c.tag) == "VersionId"]
        if len(keys) != 1 or len(versions) > 1:
            return None
        action = "s3:DeleteObjectVersion" if versions and versions[0] else "s3:DeleteObject"
        calls.append(replace(call, action=action, key=keys[0]))
    return calls or None


_CHUNK_HEADER = re.compile(rb"([0-9a-fA-F]{1,16})(;[\x21-\x7e]*)?")


def _aws_chunked(data: bytes) -> bytes | None:
    r"""The payload of an ``aws-chunked`` body (``<hex size>[;ext]\r\n<data>\r\n ... 0``).

    Strict framing only (no bare LF, no spaces in a chunk header, CRLF after every chunk): a
    body moto's more lenient reader could split differently is not decoded (and so refused).
    """
    out = bytearray()
    pos = 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            return None
        header = _CHUNK_HEADER.fullmatch(data, pos, end)
        if header is None:
            return None
        size = int(header.group(1), 16)
        pos = end + 2
        if size == 0:
            return bytes(out)
        if data[pos + size:pos + size + 2] != b"\r\n":
            return None
        out += data[pos:pos + size]
        pos += size + 2


@dataclass(frozen=True)
class ServiceCall:
    """A non-S3 request (KMS, IAM, STS, ...) reduced to what policy evaluation needs."""

    service: str
    action: str
    resource: str
    access_key: str | None
    context: Mapping[str, Any]


def describe_json_or_query_request(
    url: str, headers: Mapping[str, Any], body: bytes | str | None
) -> ServiceCall | None:
    """Map a JSON-protocol (``X-Amz-Target``) or query-protocol (``Action=``) request."""
    authorization = headers_get(headers, "authorization", "") or ""
    scope = re.search(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request", authorization)
    if scope is None or scope.group(1) == "s3":
        return None
    service = scope.group(1)
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    context: dict[str, Any] = {
        "aws:SecureTransport": "true" if urlsplit(url).scheme == "https" else "false",
        "aws:CurrentTime": now().strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    target = headers_get(headers, "x-amz-target")
    resource = "*"
    if target:
        operation = str(target).rsplit(".", 1)[-1]
        try:
            payload = json.loads(text) if text else {}
        except json.JSONDecodeError:
            payload = {}
        if service == "kms" and isinstance(payload, dict):
            resource = _kms_key_arn(payload.get("KeyId")) or "*"
            enc = payload.get("EncryptionContext") or {}
            if isinstance(enc, dict):
                for k, v in enc.items():
                    context[f"kms:EncryptionContext:{k}"] = str(v)
                context["kms:EncryptionContextKeys"] = sorted(enc)
    else:
        operation = dict(parse_qsl(text)).get("Action", "Unknown")
    access_key = authorization.split("Credential=", 1)[1].split("/", 1)[0]
    return ServiceCall(service, f"{service}:{operation}", resource, access_key, context)


def _kms_key_arn(key_id: Any) -> str | None:
    """Resolve a KeyId (ARN, alias, alias ARN or bare id) to the key ARN moto holds."""
    if not isinstance(key_id, str) or not key_id:
        return None
    from moto.kms.models import kms_backends

    for _, by_region in list(kms_backends.items()):
        for _, backend in list(by_region.items()):
            try:
                return str(backend.describe_key(key_id).arn)
            except Exception:  # not this account/region's key
                continue
    return None


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
    if now() <= deadline:
        return None
    return Refusal(call.service, call.action, call.resource, principal, Decision("ExplicitDeny"),
                   reason=f"Request has expired: presigned URL valid until {deadline:%H:%M:%S} UTC")


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _role_policies(role_arn: str) -> list[Policy]:
    """The role's inline and attached managed policies, as moto holds them."""
    from moto.iam.models import iam_backends

    account = role_arn.split(":")[4]
    iam = iam_backends[account]["aws"]
    try:
        role = iam.get_role_by_arn(role_arn)
    except Exception:  # a role that no longer exists grants nothing
        return []
    policies = [Policy.from_document(f"role:{name}", doc) for name, doc in role.policies.items()]
    for arn, managed in role.managed_policies.items():
        doc = next((v.document for v in managed.versions if v.is_default), None)
        if doc:
            policies.append(Policy.from_document(f"managed:{arn.rsplit('/', 1)[-1]}", doc))
    return policies


def _moto_bucket(bucket: str) -> Any:
    """moto's state for a bucket, in whichever sandbox account owns it (None if none does)."""
    from moto.s3.models import s3_backends

    owner = s3_backends.bucket_accounts.get(bucket)
    if owner is None:
        return None
    partition, account = owner
    return s3_backends[account][partition].buckets.get(bucket)


def _moto_bucket_policy(bucket: str) -> Policy | None:
    found = _moto_bucket(bucket)
    if found is None or not found.policy:
        return None
    return Policy.from_document("bucket-policy", found.policy.decode())


def _user_arn_of(access_key: str | None) -> str | None:
    """The IAM user ARN moto associates with a long-term access key."""
    if not access_key:
        return None
    from moto.iam.models import iam_backends

    for account, by_partition in list(iam_backends.items()):
        key = by_partition["aws"].access_keys.get(access_key)
        if key is not None and key.user_name:
            return f"arn:aws:iam::{account}:user/{key.user_name}"
    return None


def _assumed_role_of(access_key: str | None) -> Any:
    """moto's record of the STS session an access key belongs to, or ``None``."""
    if not access_key or not access_key.startswith("ASIA"):
        return None
    from moto.sts.models import sts_backends

    for _, by_partition in list(sts_backends.items()):
        role = by_partition["aws"].get_assumed_role_from_access_key(access_key)
        if role is not None:
            return role
    return None


def refusal_response(refusal: Refusal, json_protocol: bool) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of the error AWS would send for this refusal."""
    status = 400 if refusal.code == "ExpiredToken" else 403
    if json_protocol:
        kind = "ExpiredTokenException" if refusal.code == "ExpiredToken" else (
            "AccessDeniedException")
        body = json.dumps({"__type": kind, "message": refusal.message}).encode()
        return 400, {"Content-Type": "application/x-amz-json-1.1"}, body
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{refusal.code}</Code><Message>{escape(refusal.message)}</Message>"
        f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId></Error>"
    ).encode()
    if refusal.service not in ("s3",):
        # Query protocol (IAM, STS): the error document is wrapped in an ErrorResponse.
        xml = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{refusal.code}</Code>"
               f"<Message>{escape(refusal.message)}</Message></Error>"
               f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>").encode()
    return status, {"Content-Type": "text/xml" if refusal.service != "s3" else
                    "application/xml"}, xml


# -- activation (reference-counted: one per open sandbox) ---------------------------------------

_lock = threading.Lock()
_active = 0
_enforcer = Enforcer()
_saved_get_permission: Any = None
_saved_assume_role: Any = None
_saved_process_request: Any = None


def _check_in_process(request: Any) -> tuple[int, dict[str, str], bytes] | None:
    """The in-process check point: every request moto's stubber is about to carry out.

    Whether it came from botocore or from the ``requests`` library (which moto intercepts
    with ``responses``: a presigned URL fetched in-process, say), it is checked on the URL moto
    itself acts on (moto maps other AWS domains, such as ``.amazonaws.com.cn``, to
    ``.amazonaws.com``), and a refusal is answered here, so moto never carries it out.
    """
    from moto.core.utils import get_equivalent_url_in_aws_domain

    url = get_equivalent_url_in_aws_domain(request.url)[0].geturl()
    body = request.body if isinstance(request.body, bytes | str) else None
    refusal = _enforcer.check(request.method, url, request.headers, body)
    if refusal is None:
        return None
    status, headers, payload = refusal_response(
        refusal, headers_get(request.headers, "x-amz-target") is not None)
    return status, headers, b"" if request.method.upper() == "HEAD" else payload


def activate() -> None:
    """Turn emulated enforcement on (and moto's faulty bucket-policy check off).

    Also makes the sandbox's STS issue session expirations by the sandbox clock, so a clock
    moved years ahead still hands out sessions that last their ``DurationSeconds``.
    """
    global _active, _saved_get_permission, _saved_assume_role, _saved_process_request
    with _lock:
        _active += 1
        if _active > 1:
            return
        from moto.core.botocore_stubber import BotocoreStubber
        from moto.iam.access_control import PermissionResult
        from moto.s3.models import FakeBucket
        from moto.sts.models import STSBackend

        # One check point for in-process requests, inside moto's stubber: a botocore
        # before-send handler is not enough, since botocore runs every before-send handler
        # (moto's stubber included) and only then picks the first response, so a request
        # refused there was still carried out by moto.
        _saved_process_request = BotocoreStubber.process_request
        process = _saved_process_request

        def _checked(self: Any, request: Any) -> Any:
            if _active:
                refused = _check_in_process(request)
                if refused is not None:
                    return refused
            return process(self, request)

        BotocoreStubber.process_request = _checked  # type: ignore[method-assign]
        _saved_get_permission = FakeBucket.get_permission

        def _neutral(self: Any, action: str, resource: str) -> Any:
            return PermissionResult.NEUTRAL

        FakeBucket.get_permission = _neutral  # type: ignore[method-assign]
        _saved_assume_role = STSBackend.assume_role
        original = _saved_assume_role

        def _assume_role_on_sandbox_clock(self: Any, *args: Any, **kwargs: Any) -> Any:
            role = original(self, *args, **kwargs)
            lasts = _aware(role.expiration) - dt.datetime.now(dt.UTC)  # the granted duration
            role.expiration = (now() + lasts).replace(tzinfo=None)  # moto keeps naive UTC
            return role

        STSBackend.assume_role = _assume_role_on_sandbox_clock  # type: ignore[method-assign]


def deactivate() -> None:
    """Undo :func:`activate` once the last sandbox closes."""
    global _active
    with _lock:
        _active = max(0, _active - 1)
        if _active:
            return
        from moto.s3.models import FakeBucket
        from moto.sts.models import STSBackend

        reset_clock()
        if _saved_process_request is not None:
            from moto.core.botocore_stubber import BotocoreStubber

            BotocoreStubber.process_request = _saved_process_request  # type: ignore[method-assign]
        if _saved_get_permission is not None:
            FakeBucket.get_permission = _saved_get_permission  # type: ignore[method-assign]
        if _saved_assume_role is not None:
            STSBackend.assume_role = _saved_assume_role  # type: ignore[method-assign]


class EnforcingMiddleware:
    """WSGI middleware for server mode: the same checks in front of moto's app."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        scheme = environ.get("wsgi.url_scheme", "http")
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "localhost")
        query = environ.get("QUERY_STRING", "")
        # the path as sent (RAW_URI), not PATH_INFO, which is already percent-decoded: decoding
        # twice would check another key than the one moto acts on
        raw = str(environ.get("RAW_URI") or "").split("?", 1)[0]
        path = raw if raw.startswith("/") else quote(environ.get("PATH_INFO", ""))
        url = f"{scheme}://{host}{path}" + (f"?{query}" if query else "")
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items()
                   if k.startswith("HTTP_")}
        body = None
        names = dict(parse_qsl(query, keep_blank_values=True))
        deletes = (environ.get("REQUEST_METHOD") == "POST" and "delete" in names) or (
            environ.get("REQUEST_METHOD") == "PUT" and "retention" in names)
        if deletes or "x-amz-target" in headers or environ.get("CONTENT_TYPE", "").startswith(
                "application/x-www-form-urlencoded"):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
        refusal = _enforcer.check(environ.get("REQUEST_METHOD", "GET"), url, headers, body)
        if refusal is None:
            return self.app(environ, start_response)
        if body is None:
            _drain(environ)  # a client still sending its upload would see a broken connection
        status, out_headers, payload = refusal_response(refusal, "x-amz-target" in headers)
        if environ.get("REQUEST_METHOD") == "HEAD":
            payload = b""
        reason = {400: "Bad Request", 403: "Forbidden"}[status]
        start_response(f"{status} {reason}", [*out_headers.items(),
                                              ("Content-Length", str(len(payload)))])
        return [payload]


def _drain(environ: dict[str, Any]) -> None:
    stream = environ.get("wsgi.input")
    if stream is None:
        return
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        while length > 0:
            chunk = stream.read(min(length, 1 << 16))
            if not chunk:
                break
            length -= len(chunk)
    elif environ.get("wsgi.input_terminated"):
        while stream.read(1 << 16):
            pass
