"""Emulated AWS enforcement for requests that reach the sandbox.

moto accepts bucket policies but evaluates them wrongly: conditions inside a Deny always match
(so a TLS-only policy blocks HTTPS too) and the Principal is ignored. Real AWS evaluates them
exactly. So while a sandbox is open, the kit

* switches moto's own bucket-policy check off, and
* evaluates every S3 request against the bucket's policy with :mod:`securepipe.policy`, using the
  request's real properties (scheme, headers, query), and refuses with ``403 AccessDenied`` where
  AWS would.

Every refusal says in its message that it is an emulation, and is recorded in
:data:`REFUSALS` for lessons and tests. This module is sandbox-only: on a real account AWS itself
does this work, and none of the kit's other code depends on it.

It hooks in at two places, covering every client, including one an attacker builds with stolen
keys: in-process, a botocore ``before-send`` handler registered ahead of moto's; in server mode,
a WSGI middleware in front of moto's app.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit
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


@dataclass(frozen=True)
class S3Call:
    """An S3 request reduced to what policy evaluation needs."""

    action: str
    bucket: str
    key: str | None
    access_key: str | None
    context: Mapping[str, Any]

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
    if is_aws and not (host.startswith("s3.") or ".s3." in host or ".s3-" in host):
        return None  # another AWS service (KMS, STS, ...)
    if not is_aws and headers_get(headers, "authorization", "").find("/s3/aws4_request") < 0 \
            and "s3%2Faws4_request" not in parts.query and "/s3/aws4_request" not in unquote(
                parts.query):
        return None  # server mode: only requests signed for S3 are S3 requests
    if is_aws and not host.startswith("s3."):
        bucket = host.split(".s3", 1)[0]
        key = unquote(path[1:]) if len(path) > 1 else None
    else:
        segments = path.lstrip("/").split("/", 1)
        if not segments[0]:
            return None  # ListBuckets: not bucket-scoped
        bucket = unquote(segments[0])
        key = unquote(segments[1]) if len(segments) > 1 and segments[1] else None
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    sub = next((s for s in query if s in _SUBRESOURCES), "")
    method = method.upper()
    if key is None:
        action = _BUCKET_ACTIONS.get((method, sub), f"s3:{method.title()}Bucket{sub.title()}")
    else:
        action = _OBJECT_ACTIONS.get((method, sub), f"s3:{method.title()}Object{sub.title()}")
        if action in ("s3:GetObject", "s3:DeleteObject") and query.get("versionId"):
            action += "Version"
    context: dict[str, Any] = {
        "aws:SecureTransport": "true" if parts.scheme == "https" else "false",
        "aws:CurrentTime": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
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
    return S3Call(action=action, bucket=bucket, key=key, access_key=access_key, context=context)


def headers_get(headers: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """Case-insensitive header lookup that works for dicts and botocore's header classes."""
    for k, v in headers.items():
        if k.lower() == name:
            return v.decode() if isinstance(v, bytes) else v
    return default


def _access_key(authorization: str, query: Mapping[str, str]) -> str | None:
    if "Credential=" in authorization:
        return authorization.split("Credential=", 1)[1].split("/", 1)[0]
    credential = query.get("X-Amz-Credential")
    return credential.split("/", 1)[0] if credential else None


@dataclass(frozen=True)
class Refusal:
    """A request the sandbox refused on AWS's behalf."""

    call: S3Call
    principal: str | None
    decision: Decision
    when: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def message(self) -> str:
        who = self.principal or "anonymous"
        return (
            f"User: {who} is not authorized to perform: {self.call.action} on resource: "
            f"{self.call.resource} with an explicit deny in a resource-based policy "
            f"({self.decision.statement}) [securepipe sandbox: emulated AWS enforcement]"
        )


#: Every refusal made while sandboxes were open, oldest first (bounded).
REFUSALS: list[Refusal] = []
_MAX_REFUSALS = 10_000


class Enforcer:
    """Evaluates sandbox S3 requests against bucket policies read from moto's state."""

    def __init__(self, policy_source: Callable[[str], Policy | None] | None = None) -> None:
        self._policy_source = policy_source or _moto_bucket_policy

    def check(self, method: str, url: str, headers: Mapping[str, Any]) -> Refusal | None:
        call = describe_s3_request(method, url, headers)
        if call is None:
            return None
        policy = self._policy_source(call.bucket)
        if policy is None:
            return None
        principal = _principal_of(call.access_key)
        request = Request(call.action, call.resource, principal,
                          {**call.context, "aws:PrincipalArn": principal})
        decision = evaluate(request, identity=None, resource=[policy])
        if decision.allowed:
            return None
        refusal = Refusal(call=call, principal=principal, decision=decision)
        REFUSALS.append(refusal)
        del REFUSALS[:-_MAX_REFUSALS]
        return refusal


def _moto_bucket_policy(bucket: str) -> Policy | None:
    from moto.s3.models import s3_backends

    owner = s3_backends.bucket_accounts.get(bucket)
    if owner is None:
        return None
    partition, account = owner
    found = s3_backends[account][partition].buckets.get(bucket)
    if found is None or not found.policy:
        return None
    return Policy.from_document("bucket-policy", found.policy.decode())


def _principal_of(access_key: str | None) -> str | None:
    """The ARN moto associates with an access key (IAM user or assumed-role session)."""
    if not access_key:
        return None
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    for account, by_partition in list(iam_backends.items()):
        iam = by_partition["aws"]
        key = iam.access_keys.get(access_key)
        if key is not None and key.user_name:
            return f"arn:aws:iam::{account}:user/{key.user_name}"
        sts = sts_backends[account]["aws"]
        role = sts.get_assumed_role_from_access_key(access_key)
        if role is not None:
            return role.arn
    return None


def refusal_xml(refusal: Refusal) -> bytes:
    """The S3-style error body for a refusal."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
        f"<Message>{escape(refusal.message)}</Message>"
        f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId></Error>"
    ).encode()


# -- activation (reference-counted: one per open sandbox) ---------------------------------------

_lock = threading.Lock()
_active = 0
_enforcer = Enforcer()
_saved_get_permission: Any = None


def _before_send(request: Any, **_: Any) -> Any:
    """botocore ``before-send`` handler: answer 403 before moto sees a refused request."""
    if not _active or not (urlsplit(request.url).hostname or "").endswith(".amazonaws.com"):
        return None  # requests to a server-mode sandbox are checked by its middleware
    refusal = _enforcer.check(request.method, request.url, request.headers)
    if refusal is None:
        return None
    from botocore.awsrequest import AWSResponse
    from moto.core.botocore_stubber import MockRawResponse

    body = b"" if request.method.upper() == "HEAD" else refusal_xml(refusal)
    return AWSResponse(request.url, 403, {"Content-Type": "application/xml"},
                       MockRawResponse(body))


def activate() -> None:
    """Turn emulated enforcement on (and moto's faulty bucket-policy check off)."""
    global _active, _saved_get_permission
    with _lock:
        _active += 1
        if _active > 1:
            return
        from botocore.handlers import BUILTIN_HANDLERS
        from moto.iam.access_control import PermissionResult
        from moto.s3.models import FakeBucket

        if ("before-send", _before_send) not in BUILTIN_HANDLERS:
            BUILTIN_HANDLERS.insert(0, ("before-send", _before_send))
        _saved_get_permission = FakeBucket.get_permission

        def _neutral(self: Any, action: str, resource: str) -> Any:
            return PermissionResult.NEUTRAL

        FakeBucket.get_permission = _neutral  # type: ignore[method-assign]


def deactivate() -> None:
    """Undo :func:`activate` once the last sandbox closes."""
    global _active
    with _lock:
        _active = max(0, _active - 1)
        if _active:
            return
        from moto.s3.models import FakeBucket

        if _saved_get_permission is not None:
            FakeBucket.get_permission = _saved_get_permission  # type: ignore[method-assign]


class EnforcingMiddleware:
    """WSGI middleware for server mode: the same checks in front of moto's app."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        scheme = environ.get("wsgi.url_scheme", "http")
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "localhost")
        query = environ.get("QUERY_STRING", "")
        url = f"{scheme}://{host}{environ.get('PATH_INFO', '')}" + (f"?{query}" if query else "")
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items()
                   if k.startswith("HTTP_")}
        refusal = _enforcer.check(environ.get("REQUEST_METHOD", "GET"), url, headers)
        if refusal is None:
            return self.app(environ, start_response)
        body = refusal_xml(refusal)
        start_response("403 Forbidden", [("Content-Type", "application/xml"),
                                         ("Content-Length", str(len(body)))])
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else body]
