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
from urllib.parse import parse_qs, parse_qsl, unquote, urlparse, urlsplit

from securepipe import clock
from securepipe.sandbox.ddbexpr import ExpressionReader, UnreadableExpression

#: Object-level S3 operations: per HTTP method, the subresources moto dispatches on, in the order
#: moto tests them (``moto/s3/responses.py``), with the IAM action AWS authorises
#: (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html);
#: ``""`` is the plain operation.
OBJECT_DISPATCH: dict[str, tuple[tuple[str, str], ...]] = {
    "GET": (("uploadId", "s3:ListMultipartUploadParts"), ("acl", "s3:GetObjectAcl"),
            ("tagging", "s3:GetObjectTagging"), ("legal-hold", "s3:GetObjectLegalHold"),
            ("attributes", "s3:GetObjectAttributes"), ("retention", "s3:GetObjectRetention"),
            ("", "s3:GetObject")),
    "HEAD": (("", "s3:GetObject"),),
    "PUT": (("uploadId", "s3:PutObject"), ("retention", "s3:PutObjectRetention"),
            ("legal-hold", "s3:PutObjectLegalHold"), ("acl", "s3:PutObjectAcl"),
            ("tagging", "s3:PutObjectTagging"), ("", "s3:PutObject")),
    "POST": (("uploads", "s3:PutObject"), ("uploadId", "s3:PutObject"),
             ("restore", "s3:RestoreObject"), ("select", "s3:GetObject")),
    "DELETE": (("uploadId", "s3:AbortMultipartUpload"), ("tagging", "s3:DeleteObjectTagging"),
               ("", "s3:DeleteObject")),
}


#: Bucket-level S3 operations, the same way (DeleteObjects is handled on its own).
BUCKET_DISPATCH: dict[str, tuple[tuple[str, str], ...]] = {
    "GET": (("object-lock", "s3:GetBucketObjectLockConfiguration"),
            ("uploads", "s3:ListBucketMultipartUploads"), ("location", "s3:GetBucketLocation"),
            ("lifecycle", "s3:GetLifecycleConfiguration"),
            ("versioning", "s3:GetBucketVersioning"), ("policyStatus", "s3:GetBucketPolicyStatus"),
            ("policy", "s3:GetBucketPolicy"), ("website", "s3:GetBucketWebsite"),
            ("acl", "s3:GetBucketAcl"), ("tagging", "s3:GetBucketTagging"),
            ("logging", "s3:GetBucketLogging"), ("cors", "s3:GetBucketCORS"),
            ("notification", "s3:GetBucketNotification"),
            ("accelerate", "s3:GetAccelerateConfiguration"),
            ("publicAccessBlock", "s3:GetBucketPublicAccessBlock"),
            ("inventory", "s3:GetInventoryConfiguration"), ("versions", "s3:ListBucketVersions"),
            ("encryption", "s3:GetEncryptionConfiguration"),
            ("replication", "s3:GetReplicationConfiguration"),
            ("ownershipControls", "s3:GetBucketOwnershipControls"),
            # moto has no GetBucketMetricsConfiguration: it lists the bucket instead, so that
            # is the action checked (with GetMetricsConfiguration too)
            ("metrics", "s3:ListBucket"), ("", "s3:ListBucket")),
    "HEAD": (("", "s3:ListBucket"),),
    "PUT": (("object-lock", "s3:PutBucketObjectLockConfiguration"),
            ("versioning", "s3:PutBucketVersioning"),
            ("lifecycle", "s3:PutLifecycleConfiguration"), ("policy", "s3:PutBucketPolicy"),
            ("acl", "s3:PutBucketAcl"), ("tagging", "s3:PutBucketTagging"),
            ("website", "s3:PutBucketWebsite"), ("cors", "s3:PutBucketCORS"),
            ("logging", "s3:PutBucketLogging"), ("notification", "s3:PutBucketNotification"),
            ("accelerate", "s3:PutAccelerateConfiguration"),
            ("publicAccessBlock", "s3:PutBucketPublicAccessBlock"),
            ("encryption", "s3:PutEncryptionConfiguration"),
            ("replication", "s3:PutReplicationConfiguration"),
            ("ownershipControls", "s3:PutBucketOwnershipControls"),
            ("inventory", "s3:PutInventoryConfiguration"),
            # moto has no PutBucketMetricsConfiguration: it carries the request out as a
            # CreateBucket, so that is the action checked (with PutMetricsConfiguration too)
            ("metrics", "s3:CreateBucket"), ("", "s3:CreateBucket")),
    "DELETE": (("policy", "s3:DeleteBucketPolicy"), ("tagging", "s3:PutBucketTagging"),
               ("website", "s3:DeleteBucketWebsite"), ("cors", "s3:PutBucketCORS"),
               ("lifecycle", "s3:PutLifecycleConfiguration"),
               ("publicAccessBlock", "s3:PutBucketPublicAccessBlock"),
               ("encryption", "s3:PutEncryptionConfiguration"),
               ("replication", "s3:PutReplicationConfiguration"),
               ("ownershipControls", "s3:PutBucketOwnershipControls"), ("", "s3:DeleteBucket")),
    "POST": (("delete", "s3:DeleteObject"),),
}


#: Every subresource either level dispatches on: a request naming two of them is refused.
SUBRESOURCES = frozenset(sub for table in (OBJECT_DISPATCH, BUCKET_DISPATCH)
                         for rows in table.values() for sub, _ in rows if sub)


#: Query parameters that are not subresources, by level. Anything else is refused.
_PRESIGN = {"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
            "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token", "x-id"}
_OBJECT_PARAMS = frozenset({
    "versionId", "partNumber", "max-parts", "part-number-marker", "response-cache-control",
    "response-content-disposition", "response-content-encoding", "response-content-language",
    "response-content-type", "response-expires", *_PRESIGN})
_BUCKET_PARAMS = frozenset({
    "prefix", "delimiter", "max-keys", "marker", "encoding-type", "list-type",
    "continuation-token", "fetch-owner", "start-after", "key-marker", "version-id-marker",
    "upload-id-marker", "max-uploads", "id", *_PRESIGN})


#: Canned-ACL and grant headers: a PutObject (or CopyObject, CreateMultipartUpload) carrying one
#: also needs ``s3:PutObjectAcl``.
#: https://docs.aws.amazon.com/AmazonS3/latest/userguide/acl-overview.html#setting-acls
ACL_HEADERS = ("x-amz-acl", "x-amz-grant-full-control", "x-amz-grant-read",
               "x-amz-grant-read-acp", "x-amz-grant-write", "x-amz-grant-write-acp")


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
    #: the multipart upload id the request acts on (moto acts on the id alone)
    upload_id: str | None = None
    #: further actions AWS authorises on the same resource (``s3:PutObjectAcl`` for ACL headers)
    also: tuple[str, ...] = ()

    service = "s3"

    @property
    def resource(self) -> str:
        if not self.bucket:
            return "*"
        base = f"arn:aws:s3:::{self.bucket}"
        return base if self.key is None else f"{base}/{self.key}"


def describe_s3_request(method: str, url: str, headers: Mapping[str, str]) -> S3Call | None:
    """Map an HTTP request to its S3 action, bucket, key and condition keys (None if not S3).

    Reads the request the way moto dispatches it, and marks it ``ambiguous`` (to be refused)
    wherever moto could act on something else than this reading: a parameter given twice, two
    subresources, a parameter this operation does not take, a copy source whose separators are
    percent-encoded, a Host header that names another host.
    """
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
    if ";" in path:
        # moto parses the URL with urlparse, which cuts ";params" off the last segment
        ambiguous = "a raw ';' in the path (moto would cut the key there)"
    if not is_aws and not _is_ip_or_localhost(host):
        # server mode reads the bucket from the path; moto would read a named host's first
        # label as the bucket (virtual-host style)
        ambiguous = ambiguous or f"a Host {host!r} that moto could read as a bucket name"
    method = method.upper()
    if is_aws and not path_style:
        bucket = host.split(".s3", 1)[0]
        key = unquote(path[1:]) if len(path) > 1 else None
    else:
        segments = path.lstrip("/").split("/", 1)
        bucket = unquote(segments[0])
        key = unquote(segments[1]) if len(segments) > 1 and segments[1] else None
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = dict(pairs)
    if len(query) != len(pairs):
        ambiguous = "a query parameter is given twice"
    access_key = access_key_of(headers_get(headers, "authorization", ""), query)
    context = _base_context(parts.scheme)
    if not bucket:
        if key is not None or method != "GET" or set(query) - _PRESIGN:
            ambiguous = ambiguous or "a request to the service root other than ListBuckets"
        return S3Call("s3:ListAllMyBuckets", "", None, access_key, context, ambiguous=ambiguous)
    level, params = ((BUCKET_DISPATCH, _BUCKET_PARAMS) if key is None
                     else (OBJECT_DISPATCH, _OBJECT_PARAMS))
    rows = level.get(method)
    subs = [s for s in query if s in SUBRESOURCES]
    unknown = sorted(set(query) - params - SUBRESOURCES)
    if rows is None:
        ambiguous = f"S3 has no {method} {'bucket' if key is None else 'object'} operation"
        rows = (("", f"s3:{method.title()}"),)
    if len(subs) > 1:
        ambiguous = f"it names {len(subs)} subresources ({', '.join(subs)})"
    elif unknown:
        ambiguous = f"it carries parameters this operation does not take ({', '.join(unknown)})"
    elif subs and subs[0] not in {sub for sub, _ in rows}:
        ambiguous = f"{method} has no ?{subs[0]} subresource here"
    present = [(sub, act) for sub, act in rows if (sub in query if sub else not subs)]
    if not present:
        ambiguous = ambiguous or "moto would read it as another operation"
        sub, action = rows[0]
    else:
        sub, action = present[0]
    if key is None and method == "POST" and sub != "delete":
        ambiguous = ambiguous or "browser-form POST uploads are not emulated"
    if action in ("s3:GetObject", "s3:DeleteObject") and sub == "" and query.get("versionId"):
        action += "Version"
    upload_id = query.get("uploadId") if key is not None and "uploadId" in query else None
    if upload_id is not None and not upload_id:
        ambiguous = ambiguous or "an empty uploadId"
    for header in ("x-amz-server-side-encryption",
                   "x-amz-server-side-encryption-aws-kms-key-id"):
        value = headers_get(headers, header)
        if value is not None:
            context[f"s3:{header}"] = value
    if action in ("s3:ListBucket", "s3:ListBucketVersions"):
        for name in ("prefix", "delimiter", "max-keys"):
            if name in query:
                context[f"s3:{name}"] = query[name]
    for name, value in (("key", key), ("prefix", query.get("prefix"))):
        if value is not None and has_dot_segment(value):
            ambiguous = ambiguous or f"a {name} with a '.' or '..' segment, which a path " \
                                     f"normaliser between client and S3 would read otherwise"
    also: tuple[str, ...] = ()
    if sub == "metrics":
        also = ("s3:PutMetricsConfiguration" if method == "PUT" else "s3:GetMetricsConfiguration",)
    acl = [h for h in ACL_HEADERS if headers_get(headers, h) is not None]
    if acl and action == "s3:PutObject":
        also = (*also, "s3:PutObjectAcl")
        if headers_get(headers, "x-amz-acl") is not None:
            context["s3:x-amz-acl"] = headers_get(headers, "x-amz-acl")
    elif acl and action not in ("s3:PutObjectAcl", "s3:PutBucketAcl", "s3:CreateBucket"):
        ambiguous = ambiguous or "ACL headers on an operation that takes none"
    copy_header = headers_get(headers, "x-amz-copy-source")
    copy_source = None
    if copy_header is not None:
        if action != "s3:PutObject" or sub not in ("", "uploadId"):
            ambiguous = ambiguous or "x-amz-copy-source on an operation that is not a copy"
        else:
            copy_source, why = read_copy_source(str(copy_header))
            ambiguous = ambiguous or why
    # moto treats any value of the header as a bypass (botocore sends "false" too)
    bypass = bool(str(headers_get(headers, "x-amz-bypass-governance-retention", "") or ""))
    return S3Call(action=action, bucket=bucket, key=key, access_key=access_key, context=context,
                  copy_source=copy_source, bypass_governance=bypass, ambiguous=ambiguous,
                  upload_id=upload_id, also=also)


def _is_ip_or_localhost(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def has_dot_segment(path: str) -> bool:
    """Whether a key or prefix has a ``.`` or ``..`` segment (S3 keeps them literally, an HTTP
    path normaliser would not)."""
    return any(part in (".", "..") for part in path.split("/"))


def _base_context(scheme: str) -> dict[str, Any]:
    """The global condition keys every sandbox request carries."""
    return {
        "aws:SecureTransport": "true" if scheme == "https" else "false",
        "aws:CurrentTime": clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "aws:EpochTime": str(int(clock.now().timestamp())),
        # every sandbox client is on this machine
        "aws:SourceIp": "127.0.0.1",
    }


def read_copy_source(header: str) -> tuple[tuple[str, str, str | None] | None, str | None]:
    """``x-amz-copy-source`` read exactly as moto reads it (``urlparse``, then ``unquote``).

    Returns ``(source, why)``: ``why`` says why the header is ambiguous (refused) when another
    reader could see another bucket or key in it: a scheme, host, ``;params`` or fragment part,
    a percent-encoded separator in the bucket name, or a version id given twice.
    """
    parsed = urlparse(header)
    raw = parsed.path.lstrip("/")
    decoded = unquote(parsed.path).lstrip("/")
    if "/" not in decoded:
        return None, "a copy source without a key"
    bucket, key = decoded.split("/", 1)
    raw_bucket, _, raw_key = raw.partition("/")
    versions = parse_qs(parsed.query, keep_blank_values=True).get("versionId", [None])
    extra = set(parse_qs(parsed.query, keep_blank_values=True)) - {"versionId"}
    if parsed.scheme or parsed.netloc or parsed.params or parsed.fragment or "#" in header:
        return None, "a copy source with a scheme, host, parameters or fragment"
    if unquote(raw_bucket) != bucket or unquote(raw_key) != key or "%" in raw_bucket:
        return None, "a copy source whose separators are percent-encoded"
    if len(versions) != 1 or extra:
        return None, "a copy source with another query than one versionId"
    if not bucket or not key:
        return None, "a copy source without a bucket or key"
    if has_dot_segment(key):
        return None, "a copy source key with a '.' or '..' segment"
    return (bucket, key, versions[0] or None), None


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
    #: Why the emulation cannot be sure how moto reads this request (it is then refused).
    ambiguous: str | None = None
    #: further (action, resource) pairs AWS authorises for the same request (ReEncrypt's
    #: destination key)
    extra: tuple[tuple[str, str], ...] = ()
    #: the requests AWS authorises *instead of* this one, each with its own condition keys (a
    #: TransactWriteItems: one per action); when set, only these are evaluated
    parts: tuple[ServiceCall, ...] = ()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"member {k!r} given twice")
        out[k] = v
    return out


_S3CONTROL_HOST = re.compile(r"(\d{12})\.s3-control\.[a-z0-9-]+\.amazonaws\.com")
#: S3 Control operations the kit calls, by (method, path), with the IAM action AWS authorises
#: (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html:
#: DeletePublicAccessBlock is authorised as s3:PutAccountPublicAccessBlock).
_S3CONTROL_ACTIONS = {
    ("GET", "/v20180820/configuration/publicAccessBlock"): "s3:GetAccountPublicAccessBlock",
    ("PUT", "/v20180820/configuration/publicAccessBlock"): "s3:PutAccountPublicAccessBlock",
    ("DELETE", "/v20180820/configuration/publicAccessBlock"): "s3:PutAccountPublicAccessBlock",
}


def describe_s3control_request(method: str, url: str, headers: Mapping[str, Any],
                               account: str) -> ServiceCall | None:
    """An S3 Control request (signed for ``s3``, but not a bucket or object request), or
    ``None``. In-process it goes to ``<account>.s3-control.<region>.amazonaws.com``; in server
    mode (:func:`securepipe.encryption.hardening.s3control_client` strips the host prefix) to
    ``/v20180820/...`` with an ``x-amz-account-id`` header. Operations the kit does not call
    map to ``s3:UnmappedControlOperation``, which only a wildcard grants; a request for another
    account than the signer's is ambiguous (refused)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    named = _S3CONTROL_HOST.fullmatch(host)
    header = headers_get(headers, "x-amz-account-id")
    if named is None and not (parts.path.startswith("/v20180820/") and header is not None):
        return None
    target = named.group(1) if named is not None else str(header)
    ambiguous = None
    if target != account or (header is not None and str(header) != target):
        ambiguous = "an S3 Control request for another account than the signer's"
    if parts.query:
        ambiguous = ambiguous or "an S3 Control request with a query string"
    action = _S3CONTROL_ACTIONS.get((method.upper(), parts.path),
                                    "s3:UnmappedControlOperation")
    return ServiceCall("s3", action, "*", None, _base_context(parts.scheme),
                       ambiguous=ambiguous)


def describe_json_or_query_request(
    url: str, headers: Mapping[str, Any], body: bytes | str | None, service: str,
    account: str, region: str,
) -> ServiceCall | None:
    """Map a JSON-protocol (``X-Amz-Target``) or query-protocol (``Action=``) request.

    ``service``, ``account`` and ``region`` come from the verified signature: they are where
    moto acts. KMS requests name the key moto will use: the ``KeyId`` resolved in that account
    and region, and for Decrypt and ReEncrypt the key the ciphertext blob itself names (moto,
    like KMS, decrypts with that key).
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    context: dict[str, Any] = _base_context(urlsplit(url).scheme)
    target = headers_get(headers, "x-amz-target")
    resource = "*"
    ambiguous = None
    extra: tuple[tuple[str, str], ...] = ()
    url_query = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    if target:
        operation = str(target).rsplit(".", 1)[-1]
        if url_query:
            ambiguous = "a JSON-protocol request with a query string"
        try:
            payload = json.loads(text, object_pairs_hook=_no_duplicates) if text else {}
        except ValueError as exc:
            return ServiceCall(service, f"{service}:{operation}", "*", None, context,
                               ambiguous=f"its JSON body cannot be read ({exc})")
        if not isinstance(payload, dict):
            return ServiceCall(service, f"{service}:{operation}", "*", None, context,
                               ambiguous="its JSON body is not an object")
        if service == "kms":
            resource, extra, why = _kms_resources(operation, payload, account, region)
            ambiguous = ambiguous or why
            enc = payload.get("EncryptionContext", payload.get("SourceEncryptionContext")) or {}
            if isinstance(enc, dict):
                for k, v in enc.items():
                    context[f"kms:EncryptionContext:{k}"] = str(v)
                context["kms:EncryptionContextKeys"] = sorted(enc)
            else:
                ambiguous = ambiguous or "an encryption context that is not an object"
        elif service == "dynamodb" and operation == "TransactWriteItems":
            parts, why = dynamodb_transact_write_parts(payload, account, region, context)
            ambiguous = ambiguous or why
            return ServiceCall(service, "dynamodb:TransactWriteItems", "*", None, context,
                               ambiguous=ambiguous, parts=parts)
        elif service == "dynamodb" and "TableName" in payload:
            # Table operations are authorised on the table's ARN (a name, or since 2024 an
            # ARN, in TableName); others (ListTables, batch calls) stay "*":
            # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html
            table = payload["TableName"]
            table_arn = _table_arn(table, account, region)
            if table_arn is None:
                ambiguous = ambiguous or "a TableName that is neither a table name nor its ARN"
            else:
                resource = table_arn
                if operation in DYNAMODB_ITEM_MEMBERS:
                    keys, why = dynamodb_condition_keys(operation, payload, table, account,
                                                        region)
                    context.update(keys)
                    ambiguous = ambiguous or why
                    index = payload.get("IndexName")
                    if why is None and index is not None:
                        # Query and Scan of an index are authorised on the index's ARN
                        resource = f"{resource}/index/{index}"
    else:
        form = parse_qsl(text, keep_blank_values=True)
        names = [k for k, _ in (*form, *url_query)]
        if len(set(names)) != len(names):
            ambiguous = "a parameter is given twice"
        operation = dict([*url_query, *form]).get("Action", "")
        rpc = re.fullmatch(r"/service/[^/]+/operation/([A-Za-z0-9]{1,64})", urlsplit(url).path)
        if not operation and rpc is not None:  # the smithy RPC v2 (CBOR) protocol
            operation = rpc.group(1)
        elif not operation:
            # a REST protocol the emulation does not map: no action a policy could grant by
            # name (a role session needs "<service>:*"; the admin's Allow * covers it)
            operation = "UnmappedOperation"
    if not re.fullmatch(r"[A-Za-z0-9]{1,64}", operation):
        return None
    prefix = _IAM_PREFIX.get(service, service)
    return ServiceCall(service, f"{prefix}:{operation}", resource, None, context,
                       ambiguous=ambiguous, extra=extra)


def _table_arn(table: Any, account: str, region: str) -> str | None:
    """The ARN a DynamoDB table operation is authorised on (``TableName`` is a name or, since
    2024, an ARN); ``None`` if it is neither."""
    if not isinstance(table, str) or not re.fullmatch(
            r"[A-Za-z0-9_.-]{3,255}|arn:aws[\w-]*:dynamodb:[\w-]+:\d{12}:table/"
            r"[A-Za-z0-9_.-]{3,255}", table):
        return None
    if table.startswith("arn:"):
        return table
    return f"arn:aws:dynamodb:{region}:{account}:table/{table}"


#: The members of a TransactWriteItems request, and of each of its actions, with the IAM
#: action AWS authorises each as
#: (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html,
#: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html).
#: ``ClientRequestToken`` is an idempotency token botocore fills in on every call.
_TRANSACT_MEMBERS = frozenset({"TransactItems", "ClientRequestToken", "ReturnConsumedCapacity",
                               "ReturnItemCollectionMetrics"})
_TRANSACT_PART = frozenset({"TableName", "ConditionExpression", "ExpressionAttributeNames",
                            "ExpressionAttributeValues", "ReturnValuesOnConditionCheckFailure"})
_TRANSACT_ACTIONS: dict[str, tuple[str, frozenset[str], tuple[str, ...]]] = {
    # kind: (operation authorised, members it takes, members it requires)
    "ConditionCheck": ("ConditionCheckItem", _TRANSACT_PART | {"Key"},
                       ("TableName", "Key", "ConditionExpression")),
    "Put": ("PutItem", _TRANSACT_PART | {"Item"}, ("TableName", "Item")),
    "Delete": ("DeleteItem", _TRANSACT_PART | {"Key"}, ("TableName", "Key")),
    "Update": ("UpdateItem", _TRANSACT_PART | {"Key", "UpdateExpression"},
               ("TableName", "Key", "UpdateExpression")),
}


def dynamodb_transact_write_parts(payload: Mapping[str, Any], account: str, region: str,
                                  context: Mapping[str, Any]
                                  ) -> tuple[tuple[ServiceCall, ...], str | None]:
    """Emulation only: the per-action requests AWS authorises for a TransactWriteItems.

    AWS authorises each action of a transaction as the operation it performs: ``Put``,
    ``Update`` and ``Delete`` as ``dynamodb:PutItem``, ``dynamodb:UpdateItem`` and
    ``dynamodb:DeleteItem``, ``ConditionCheck`` as ``dynamodb:ConditionCheckItem``
    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html),
    each on its table with its own fine-grained access control keys
    (:func:`dynamodb_condition_keys`), and ``dynamodb:EnclosingOperation`` =
    ``TransactWriteItems``. An action's ``ReturnValuesOnConditionCheckFailure=ALL_OLD`` returns
    the whole item when its condition fails; AWS documents no condition key for it, so the
    emulation reads it as ``dynamodb:ReturnValues`` = ``ALL_OLD`` (refused unless a policy
    allows that), the stricter reading. Returns ``(parts, why)``; ``why`` (the request is then
    refused) for anything it cannot read: a member outside the API, an action that is not
    exactly one of the four kinds, a missing required member, an unreadable action.
    """
    try:
        extra = sorted(set(payload) - _TRANSACT_MEMBERS)
        if extra:
            raise UnreadableExpression(f"members TransactWriteItems does not take "
                                       f"({', '.join(extra)})")
        items = payload.get("TransactItems")
        if not isinstance(items, list) or not items:
            raise UnreadableExpression("no TransactItems list")
        parts: list[ServiceCall] = []
        for n, item in enumerate(items):
            if not isinstance(item, dict) or len(item) != 1:
                raise UnreadableExpression(f"action {n} is not exactly one of "
                                           f"{', '.join(_TRANSACT_ACTIONS)}")
            (kind, body), = item.items()
            if kind not in _TRANSACT_ACTIONS or not isinstance(body, dict):
                raise UnreadableExpression(f"action {n} is not one of "
                                           f"{', '.join(_TRANSACT_ACTIONS)}")
            operation, members, required = _TRANSACT_ACTIONS[kind]
            missing = [m for m in required if m not in body]
            if missing:
                raise UnreadableExpression(f"action {n} ({kind}) lacks {', '.join(missing)}")
            table_arn = _table_arn(body["TableName"], account, region)
            if table_arn is None:
                raise UnreadableExpression(f"action {n} ({kind}): a TableName that is neither "
                                           "a table name nor its ARN")
            keys, why = dynamodb_condition_keys(operation, body, body["TableName"], account,
                                                region, members=members)
            if why is not None:
                raise UnreadableExpression(f"action {n} ({kind}): {why}")
            parts.append(ServiceCall("dynamodb", f"dynamodb:{operation}", table_arn, None,
                                     {**context, **keys,
                                      "dynamodb:EnclosingOperation": "TransactWriteItems"}))
    except UnreadableExpression as exc:
        return (), f"DynamoDB TransactWriteItems: {exc}"
    return tuple(parts), None


#: Services whose SigV4 signing name differs from the IAM action prefix policies use
#: (CloudWatch signs as ``monitoring`` and is authorised as ``cloudwatch:``;
#: https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudwatch.html).
_IAM_PREFIX = {"monitoring": "cloudwatch"}


def _kms_resources(operation: str, payload: Mapping[str, Any], account: str, region: str
                   ) -> tuple[str, tuple[tuple[str, str], ...], str | None]:
    """The key ARN a KMS operation acts on in ``account``/``region`` (``*`` if none)."""
    from securepipe.sandbox.motostate import kms_key_arn, kms_key_of_ciphertext

    def key(field: str) -> tuple[str, str | None]:
        value = payload.get(field)
        if value is None:
            return "*", None
        arn = kms_key_arn(value, account, region)
        return (arn, None) if arn else ("*", f"no key {value!r} in this account and region")

    if operation in ("Decrypt", "ReEncrypt"):
        source = kms_key_of_ciphertext(payload.get("CiphertextBlob"), account, region)
        if source is None:
            return "*", (), "the ciphertext names no key of this account and region"
        named = payload.get("KeyId", payload.get("SourceKeyId"))
        if named is not None and kms_key_arn(named, account, region) != source:
            return source, (), "the KeyId is not the key the ciphertext names"
        if operation == "ReEncrypt":
            destination, why = key("DestinationKeyId")
            return source, (("kms:ReEncryptTo", destination),), why
        return source, (), None
    field = "TargetKeyId" if operation in ("CreateAlias", "UpdateAlias") else "KeyId"
    resource, why = key(field)
    return resource, (), why


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


#: The item operations whose fine-grained access control condition keys the emulation reads,
#: with every request member each takes (API reference, e.g.
#: https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateItem.html): a member
#: outside these is one the emulation cannot tell how moto would act on, and is refused.
_COMMON_MEMBERS = frozenset({"TableName", "ExpressionAttributeNames", "ReturnConsumedCapacity"})
_WRITE_MEMBERS = _COMMON_MEMBERS | {"ConditionalOperator", "ConditionExpression", "Expected",
                                    "ExpressionAttributeValues", "ReturnItemCollectionMetrics",
                                    "ReturnValues", "ReturnValuesOnConditionCheckFailure"}
_READ_MEMBERS = _COMMON_MEMBERS | {"AttributesToGet", "ConsistentRead", "ProjectionExpression"}
_LIST_MEMBERS = _READ_MEMBERS | {"ConditionalOperator", "ExclusiveStartKey",
                                 "ExpressionAttributeValues", "FilterExpression", "IndexName",
                                 "Limit", "Select"}
DYNAMODB_ITEM_MEMBERS: dict[str, frozenset[str]] = {
    "GetItem": _READ_MEMBERS | {"Key"},
    "PutItem": _WRITE_MEMBERS | {"Item"},
    "UpdateItem": _WRITE_MEMBERS | {"Key", "AttributeUpdates", "UpdateExpression"},
    "DeleteItem": _WRITE_MEMBERS | {"Key"},
    "Scan": _LIST_MEMBERS | {"ScanFilter", "Segment", "TotalSegments"},
    "Query": _LIST_MEMBERS | {"KeyConditionExpression", "KeyConditions", "QueryFilter",
                              "ScanIndexForward"},
}
#: Values of ReturnValues and Select that AWS accepts.
_RETURN_VALUES = frozenset({"NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW"})
_SELECT = frozenset({"ALL_ATTRIBUTES", "ALL_PROJECTED_ATTRIBUTES", "SPECIFIC_ATTRIBUTES",
                     "COUNT"})
#: The legacy (pre-expression) parameters. The emulation refuses every one of them, alone or
#: not: moto does not act on them as AWS does (moto 5 ignores GetItem's ``AttributesToGet`` and
#: returns the whole item; it applies an ``AttributeUpdates`` entry to a key attribute, which
#: AWS refuses), so a condition key read from them would describe a request moto does not
#: carry out. The kit itself only sends expressions.
_LEGACY_MEMBERS = ("AttributesToGet", "AttributeUpdates", "Expected", "ConditionalOperator",
                   "ScanFilter", "QueryFilter", "KeyConditions")


def _key_value(value: Any) -> str | None:
    """A key attribute's value as a condition key compares it: the string of an ``S`` or
    ``N`` value, the base64 text of a ``B`` value; ``None`` for anything else."""
    if isinstance(value, dict) and len(value) == 1:
        (kind, raw), = value.items()
        if kind in ("S", "N", "B") and isinstance(raw, str):
            return raw
    return None


def dynamodb_condition_keys(operation: str, payload: Mapping[str, Any], table: str,
                            account: str, region: str, *,
                            members: frozenset[str] | None = None
                            ) -> tuple[dict[str, Any], str | None]:
    """Emulation only: the DynamoDB fine-grained access control condition keys of an item
    request, as AWS defines them
    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/specifying-conditions.html,
    https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html):

    * ``dynamodb:LeadingKeys``: the partition key value of the item(s) acted on (``Key`` or
      ``Item``; a Query's ``partition key = :value``); a Scan has none;
    * ``dynamodb:Attributes``: every top-level attribute the request names: the key's
      attributes, the item's (PutItem), every path of its update, condition, filter, key
      condition and projection expressions (placeholders substituted);
    * ``dynamodb:Select`` (GetItem, Query, Scan): the ``Select`` given, else
      ``SPECIFIC_ATTRIBUTES`` with a projection and ``ALL_ATTRIBUTES`` without (AWS: "the
      Select parameter always has a value");
    * ``dynamodb:ReturnValues`` (PutItem, UpdateItem, DeleteItem): the ``ReturnValues`` given,
      else ``NONE`` (likewise always present);
    * ``dynamodb:ReturnConsumedCapacity`` when given.

    Returns ``(keys, why)``; ``why`` (the request is then refused as ambiguous) when it cannot
    be read unambiguously: a member the operation does not take, any legacy parameter
    (``AttributesToGet``, ``AttributeUpdates``, ``Expected``, ...: ``_LEGACY_MEMBERS``), an
    expression outside the grammar, a placeholder undefined or unused, a key that is not one
    S/N/B value per key attribute, an unknown ReturnValues or Select,
    ``ReturnValuesOnConditionCheckFailure=ALL_OLD`` (it returns the whole item, and AWS
    documents no condition key for it), Select and a projection that contradict each other.

    ``members``: one action of a TransactWriteItems (``operation`` ``PutItem``,
    ``UpdateItem``, ``DeleteItem`` or ``ConditionCheckItem``, see
    :func:`dynamodb_transact_write_parts`), which takes these members; its
    ``dynamodb:ReturnValues`` is then its ``ReturnValuesOnConditionCheckFailure`` (``NONE``
    or ``ALL_OLD``).
    """
    from securepipe.sandbox.motostate import dynamodb_key_schema

    keys: dict[str, Any] = {}
    try:
        transact = members is not None
        allowed = members if members is not None else DYNAMODB_ITEM_MEMBERS[operation]
        extra = sorted(set(payload) - allowed)
        if extra:
            raise UnreadableExpression(f"members {operation} does not take ({', '.join(extra)})")
        legacy = [m for m in _LEGACY_MEMBERS if m in payload]
        if legacy:
            raise UnreadableExpression(
                f"legacy parameters ({', '.join(legacy)}): moto does not act on them as AWS "
                "does, so the emulation refuses them (use expressions)")
        index = payload.get("IndexName")
        if index is not None and (not isinstance(index, str)
                                  or not re.fullmatch(r"[A-Za-z0-9_.-]{3,255}", index)):
            raise UnreadableExpression("an IndexName that is not an index name")
        reader = ExpressionReader(payload.get("ExpressionAttributeNames", {}))
        attributes: set[str] = set()
        if "UpdateExpression" in payload:
            reader.update(payload["UpdateExpression"])
        if "ConditionExpression" in payload:
            reader.condition(payload["ConditionExpression"])
        if "FilterExpression" in payload:
            reader.condition(payload["FilterExpression"], "FilterExpression")
        equalities: list[tuple[str, str]] = []
        if "KeyConditionExpression" in payload:
            equalities = reader.condition(payload["KeyConditionExpression"],
                                          "KeyConditionExpression")
        if "ProjectionExpression" in payload:
            reader.projection(payload["ProjectionExpression"])
        reader.finish()
        attributes |= reader.attributes
        schema = dynamodb_key_schema(table, account, region)
        leading: list[str] | None = None
        if operation in ("GetItem", "UpdateItem", "DeleteItem", "PutItem", "ConditionCheckItem"):
            item = payload.get("Key" if operation != "PutItem" else "Item")
            if not isinstance(item, dict) or not item:
                raise UnreadableExpression("no Key (or Item) map")
            attributes |= set(item)
            partition: str | None
            if schema is not None:
                partition = schema[0]
                wanted = {k for k in schema if k is not None}
                if partition not in item or (operation != "PutItem" and set(item) != wanted):
                    raise UnreadableExpression("a Key that is not the table's key attributes")
            elif operation != "PutItem" and len(item) == 1:
                partition = next(iter(item))
            else:
                partition = None   # no such table: moto acts on no item
            if partition is not None:
                value = _key_value(item.get(partition))
                if value is None:
                    raise UnreadableExpression("a partition key that is not one S, N or B value")
                leading = [value]
        elif operation == "Query" and schema is not None:
            values = payload.get("ExpressionAttributeValues") or {}
            found = [v for n, v in equalities if n == schema[0]]
            wanted_value: str | None
            if len(found) == 1 and isinstance(values, dict):
                wanted_value = _key_value(values.get(found[0]))
            else:
                wanted_value = None
            if wanted_value is None:
                raise UnreadableExpression("no single partition key equality to read")
            leading = [wanted_value]
        if leading is not None:
            keys["dynamodb:LeadingKeys"] = leading
        if attributes:           # a multivalued key with no value is absent
            keys["dynamodb:Attributes"] = sorted(attributes)
        if operation in ("GetItem", "Query", "Scan"):
            projected = "ProjectionExpression" in payload
            select = payload.get("Select")
            if select is None:
                select = ("SPECIFIC_ATTRIBUTES" if projected else
                          "ALL_PROJECTED_ATTRIBUTES" if index is not None else "ALL_ATTRIBUTES")
            if (select not in _SELECT or projected != (select == "SPECIFIC_ATTRIBUTES")
                    or (select == "ALL_PROJECTED_ATTRIBUTES" and index is None)):
                raise UnreadableExpression(f"Select {select!r} with"
                                           f"{'' if projected else 'out'} a projection")
            keys["dynamodb:Select"] = select
        elif transact:
            returned = payload.get("ReturnValuesOnConditionCheckFailure", "NONE")
            if returned not in ("NONE", "ALL_OLD"):
                raise UnreadableExpression(f"ReturnValuesOnConditionCheckFailure {returned!r}")
            keys["dynamodb:ReturnValues"] = returned
        else:
            returned = payload.get("ReturnValues", "NONE")
            if returned not in _RETURN_VALUES:
                raise UnreadableExpression(f"ReturnValues {returned!r}")
            keys["dynamodb:ReturnValues"] = returned
            on_failure = payload.get("ReturnValuesOnConditionCheckFailure", "NONE")
            if on_failure != "NONE":
                raise UnreadableExpression(
                    f"ReturnValuesOnConditionCheckFailure {on_failure!r} (it returns the whole "
                    "item, and no condition key covers it)")
        if "ReturnConsumedCapacity" in payload:
            keys["dynamodb:ReturnConsumedCapacity"] = str(payload["ReturnConsumedCapacity"])
    except UnreadableExpression as exc:
        return {}, f"DynamoDB {operation}: {exc}"
    return keys, None
