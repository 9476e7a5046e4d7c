"""How the sandbox reads a request: operation, IAM action, bucket, key and the signer's access key.

The emulation decides on this reading alone, so it must be the one moto acts on; where the two
could differ the request is refused rather than guessed.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from securepipe import clock

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
        "aws:CurrentTime": clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
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
    access_key = access_key_of(headers_get(headers, "authorization", ""), query)
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


def access_key_of(authorization: str, query: Mapping[str, str]) -> str | None:
    if "Credential=" in authorization:
        return authorization.split("Credential=", 1)[1].split("/", 1)[0]
    if authorization.startswith("AWS "):  # SigV2 header: "AWS <access key>:<signature>"
        return authorization[4:].split(":", 1)[0]
    credential = query.get("X-Amz-Credential")
    if credential:
        return credential.split("/", 1)[0]
    return query.get("AWSAccessKeyId")


_CHUNK_HEADER = re.compile(rb"([0-9a-fA-F]{1,16})(;[\x21-\x7e]*)?")


def decode_aws_chunked(data: bytes) -> bytes | None:
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
        "aws:CurrentTime": clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
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
            resource = kms_key_arn_of(payload.get("KeyId")) or "*"
            enc = payload.get("EncryptionContext") or {}
            if isinstance(enc, dict):
                for k, v in enc.items():
                    context[f"kms:EncryptionContext:{k}"] = str(v)
                context["kms:EncryptionContextKeys"] = sorted(enc)
    else:
        operation = dict(parse_qsl(text)).get("Action", "Unknown")
    access_key = authorization.split("Credential=", 1)[1].split("/", 1)[0]
    return ServiceCall(service, f"{service}:{operation}", resource, access_key, context)


def kms_key_arn_of(key_id: Any) -> str | None:
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


def parse_lock_date(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
