"""Differential test: the emulation's reading of a request against what moto then acts on.

hypothesis generates raw S3 and KMS requests (keys with every awkward character and encoding,
copy sources written many ways, any mix of subresources and parameters, multipart upload ids
that belong to other keys, credential scopes with the wrong service, region or date), signs them
with botocore's signer as the sandbox admin (whom no policy limits, so every request the
emulation can read reaches moto) and sends them in-process. A spy on moto's S3 and KMS backends
records which bucket, key, upload and KMS key moto acted on. For each request:

* if the emulation let it through, everything moto touched is what the emulation read (bucket,
  key, copy source, the key a multipart upload id belongs to, the KMS key), and the kind of
  operation agrees (a read is read as a read, a write as a write, a delete as a delete);
* if the emulation could not read it, it was refused with AccessDenied, and moto touched nothing.
"""

from __future__ import annotations

import base64
import collections
import functools
import inspect
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
import requests
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from securepipe.sandbox import emulation, hooks
from securepipe.sandbox.account import Sandbox
from securepipe.sandbox.requests import BUCKET_DISPATCH, OBJECT_DISPATCH, SUBRESOURCES

_spying = threading.local()


@dataclass
class Touch:
    method: str
    buckets: set[str] = field(default_factory=set)
    keys: set[str] = field(default_factory=set)
    upload_keys: set[str] = field(default_factory=set)
    kms_keys: set[str] = field(default_factory=set)


TOUCHED: list[Touch] = []
READINGS: list[Any] = []

_SKIP = {"reset", "log_incoming_request", "default_vpc_endpoint_service", "get_bucket",
         "head_bucket", "get_cloudwatch_metrics", "iter_tagged_resources", "is_truncated",
         "tag_resource", "untag_resource", "list_buckets"}


def _spy_s3(cls: Any) -> dict[str, Any]:
    saved = {}
    for name, fn in list(vars(cls).items()):
        if name.startswith("_") or name in _SKIP or not callable(fn):
            continue
        signature = inspect.signature(fn)

        def wrapper(self: Any, *args: Any, __fn: Any = fn, __name: str = name,
                    __sig: Any = signature, **kwargs: Any) -> Any:
            if getattr(_spying, "on", False):
                TOUCHED.append(_s3_touch(self, __name, __sig.bind(self, *args, **kwargs)))
            return __fn(self, *args, **kwargs)

        saved[name] = fn
        setattr(cls, name, functools.wraps(fn)(wrapper))
    return saved


def _s3_touch(backend: Any, name: str, bound: Any) -> Touch:
    touch = Touch(name)
    args = bound.arguments
    for arg, value in args.items():
        if arg.endswith("bucket_name") and isinstance(value, str):
            touch.buckets.add(value)
        elif arg.endswith("key_name") and isinstance(value, str):
            touch.keys.add(value)
        elif hasattr(value, "bucket_name") and hasattr(value, "name"):  # a FakeKey
            touch.buckets.add(value.bucket_name)
            touch.keys.add(value.name)
    if "multipart_id" in args and "bucket_name" in args:
        bucket = backend.buckets.get(args["bucket_name"])
        upload = bucket.multiparts.get(args["multipart_id"]) if bucket is not None else None
        if upload is not None:
            touch.upload_keys.add(upload.key_name)
    return touch


def _spy_kms(cls: Any) -> dict[str, Any]:
    saved = {}
    for name in ("decrypt", "encrypt", "generate_data_key", "re_encrypt", "describe_key"):
        fn = getattr(cls, name)

        def wrapper(self: Any, *args: Any, __fn: Any = fn, __name: str = name,
                    **kwargs: Any) -> Any:
            result = __fn(self, *args, **kwargs)
            if getattr(_spying, "on", False):
                touch = Touch(__name)
                if __name == "describe_key":
                    touch.kms_keys.add(result.arn)
                elif __name == "decrypt":
                    touch.kms_keys.add(result[1])
                elif __name == "re_encrypt":
                    touch.kms_keys.update({result[1], result[2]})
                else:
                    touch.kms_keys.add(result[-1] if isinstance(result[-1], str) else "?")
                TOUCHED.append(touch)
            return result

        saved[name] = fn
        setattr(cls, name, functools.wraps(fn)(wrapper))
    return saved


@dataclass
class Ctx:
    sb: Sandbox
    raw: str
    other: str
    keys: dict[str, str]       # name -> key ARN
    blobs: dict[str, str]      # name -> a ciphertext (base64) under that key
    uploads: dict[str, str]    # upload id -> its key (in raw)
    creds: Any


@pytest.fixture(scope="module")
def ctx() -> Iterator[Ctx]:
    from moto.kms.models import KmsBackend
    from moto.s3.models import S3Backend

    with Sandbox() as sb:
        raw, other = sb.resources.bucket("raw"), sb.resources.bucket("features")
        s3 = sb.session.client("s3")
        for key in ("raw/c01/a", "raw/c02/a", "raw/c02/b c", "raw/c02/%2F", "raw/c01/?x"):
            s3.put_object(Bucket=raw, Key=key, Body=b"v")
        s3.put_object(Bucket=other, Key="features/c02/a", Body=b"v")
        uploads = {}
        for key in ("raw/c01/mp", "raw/c02/mp"):
            uploads[s3.create_multipart_upload(Bucket=raw, Key=key)["UploadId"]] = key
        kms = sb.session.client("kms")
        keys = {"data": sb.resources.kms_key_arn, "archive": sb.resources.archive_key_arn}
        blobs = {n: base64.b64encode(kms.encrypt(KeyId=a, Plaintext=b"x")["CiphertextBlob"])
                 .decode() for n, a in keys.items()}
        saved_s3, saved_kms = _spy_s3(S3Backend), _spy_kms(KmsBackend)
        original_check = hooks._check_in_process

        def checked(request: Any) -> Any:
            _spying.on = False
            before = len(emulation.REFUSALS)
            answer = original_check(request)
            READINGS.append(len(emulation.REFUSALS) > before)
            _spying.on = answer is None
            return answer

        hooks._check_in_process = checked
        try:
            yield Ctx(sb, raw, other, keys, blobs, uploads, sb.session.get_credentials())
        finally:
            hooks._check_in_process = original_check
            for name, fn in saved_s3.items():
                setattr(S3Backend, name, fn)
            for name, fn in saved_kms.items():
                setattr(KmsBackend, name, fn)
            _spying.on = False


# -- generators -------------------------------------------------------------------------------

_KEY_ALPHABET = st.sampled_from([*"abc/.%?#;&=+ ~*", "..", "%2F", "%2E", "%25", "é", "c02",
                                 "raw/", "/"])
_KNOWN_KEYS = st.sampled_from(["raw/c01/a", "raw/c02/a", "raw/c02/b c", "raw/c02/%2F", "raw/c01/?x",
                     "raw/c01/mp", "raw/c02/mp", "features/c02/a"])
_KEYS = st.one_of(_KNOWN_KEYS, _KNOWN_KEYS, _KNOWN_KEYS,
                  st.lists(_KEY_ALPHABET, min_size=1, max_size=8).map("".join))
_QUOTERS = st.sampled_from(["plain", "quote", "quote-all", "raw"])


def _encode(text: str, how: str) -> str:
    if how == "quote":
        return quote(text, safe="/~")
    if how == "quote-all":
        return quote(text, safe="")
    if how == "plain":
        return quote(text, safe="/~?=&;%#")
    return text


@st.composite
def s3_requests(draw: Any, c: Ctx) -> dict[str, Any]:
    method = draw(st.sampled_from(["GET", "GET", "HEAD", "PUT", "PUT", "POST", "DELETE"]))
    bucket = draw(st.sampled_from([c.raw, c.raw, c.other, "no-such-bucket-x"]))
    key = draw(st.one_of(st.none(), _KEYS))
    path = f"/{bucket}" + (f"/{_encode(key, draw(_QUOTERS))}" if key is not None else "")
    table = OBJECT_DISPATCH if key is not None else BUCKET_DISPATCH
    valid = sorted({sub for sub, _ in table.get(method, ()) if sub})
    size = draw(st.sampled_from([0, 0, 1, 1, 1, 2, 3]))
    if valid and size == 1 and draw(st.integers(0, 3)):
        names = [draw(st.sampled_from(valid))]   # mostly a subresource this operation has
        if "uploadId" in names and method == "PUT":
            names.append("partNumber")
    else:
        names = draw(st.lists(st.sampled_from(
            [*sorted(SUBRESOURCES), "prefix", "versionId", "partNumber", "list-type",
             "delimiter", "made-up", "metrics", "select-type", "x-id"]),
            min_size=size, max_size=size))
    query = []
    for name in names:
        if name == "uploadId":
            value = draw(st.sampled_from([*c.uploads, "", "garbage"]))
        elif name == "prefix":
            value = draw(st.sampled_from(["raw/c01/", "raw/c02/", "", "raw/c01/../c02/"]))
        elif name == "partNumber":
            value = "1"
        elif name == "list-type":
            value = "2"
        else:
            value = draw(st.sampled_from(["", "1", "null"]))
        query.append(f"{quote(name)}={quote(value, safe='')}" if value or name in (
            "prefix", "uploadId") else quote(name))
    headers: dict[str, str] = {}
    if draw(st.booleans()) and method == "PUT" and key is not None:
        source_bucket = draw(st.sampled_from([c.raw, c.other]))
        source_key = draw(_KEYS)
        style = draw(st.sampled_from(["plain", "slash", "encoded-all", "netloc", "version",
                                      "version-twice", "params", "scheme"]))
        headers["x-amz-copy-source"] = {
            "plain": f"{source_bucket}/{quote(source_key, safe='/')}",
            "slash": f"/{source_bucket}/{quote(source_key, safe='/')}",
            "encoded-all": quote(f"{source_bucket}/{source_key}", safe=""),
            "netloc": f"//{source_bucket}%2Fraw%2Fc01%2F/{source_bucket}/{quote(source_key)}",
            "version": f"/{source_bucket}/{quote(source_key)}?versionId=null",
            "version-twice": f"/{source_bucket}/{quote(source_key)}?versionId=a&versionId=b",
            "params": f"/{source_bucket}/{quote(source_key)};x",
            "scheme": f"http://h/{source_bucket}/{quote(source_key)}",
        }[style]
    if draw(st.integers(0, 9)) == 0 and method == "PUT":
        headers["x-amz-acl"] = "private"
    body = draw(st.sampled_from([b""] * 6 + [b"data", b"<Delete><Object><Key>raw/c01/a</Key>"
                                                       b"</Object></Delete>"]))
    if method in ("PUT", "POST") and not body and draw(st.booleans()):
        body = b"data"
    scope = draw(st.sampled_from(["s3"] * 12 + ["kms", "sts"]))
    region = draw(st.sampled_from([c.sb.region] * 12 + ["us-east-1"]))
    return {"method": method, "url": f"https://s3.{c.sb.region}.amazonaws.com{path}"
            + ("?" + "&".join(query) if query else ""), "headers": headers, "body": body,
            "scope": scope, "region": region}


@st.composite
def kms_requests(draw: Any, c: Ctx) -> dict[str, Any]:
    operation = draw(st.sampled_from(["Decrypt", "GenerateDataKey", "Encrypt", "DescribeKey",
                                      "ReEncrypt"]))
    key_name = draw(st.sampled_from(sorted(c.keys)))
    arn = c.keys[key_name]
    key_id = draw(st.sampled_from([
        arn, arn.rsplit("/", 1)[1], "alias/securepipe-data", "alias/securepipe-archive",
        arn.replace(":" + c.sb.resources.account_id + ":", ":123456789012:"),
        arn.replace(c.sb.region, "us-east-1"), "alias/nope", "nope",
        f"arn:aws:kms:{c.sb.region}:{c.sb.resources.account_id}:alias/securepipe-data"]))
    payload: dict[str, Any] = {}
    if operation in ("Decrypt", "ReEncrypt"):
        payload["CiphertextBlob"] = draw(st.sampled_from([*c.blobs.values(), "bm9wZQ==", "%%"]))
        if draw(st.booleans()):
            payload["KeyId" if operation == "Decrypt" else "SourceKeyId"] = key_id
        if operation == "ReEncrypt":
            payload["DestinationKeyId"] = key_id
    else:
        payload["KeyId"] = key_id
        if operation == "GenerateDataKey":
            payload["KeySpec"] = "AES_256"
        if operation == "Encrypt":
            payload["Plaintext"] = "eA=="
    scope = draw(st.sampled_from(["kms"] * 10 + ["s3", "sts"]))
    region = draw(st.sampled_from([c.sb.region] * 10 + ["us-west-2"]))
    body = json.dumps(payload).encode()
    if draw(st.integers(0, 15)) == 0:
        body = body[:-1] + b', "KeyId": "alias/securepipe-archive"}'  # a member given twice
    return {"method": "POST", "url": f"https://kms.{c.sb.region}.amazonaws.com/",
            "headers": {"X-Amz-Target": f"TrentService.{operation}",
                        "Content-Type": "application/x-amz-json-1.1"},
            "body": body, "scope": scope, "region": region}


def _send(c: Ctx, r: dict[str, Any]) -> requests.Response | None:
    """Send one request; ``None`` when moto itself raised on a request it was let have
    (moto parses some malformed bodies with an uncaught exception, in-process)."""
    request = AWSRequest(method=r["method"], url=r["url"], data=r["body"],
                         headers=dict(r["headers"]))
    signer = S3SigV4Auth if r["scope"] == "s3" else SigV4Auth
    signer(c.creds, r["scope"], r["region"]).add_auth(request)
    prepared = request.prepare()
    TOUCHED.clear()
    READINGS.clear()
    try:
        return requests.request(r["method"], prepared.url,
                                headers=dict(prepared.headers.items()), data=r["body"],
                                timeout=30)
    except Exception:  # moto's own crash; the emulation answers every refusal itself
        assert READINGS and not READINGS[0], r
        return None


_READ = ("get_", "head_", "list_", "select_")
_WRITE = ("put_", "create_", "upload_", "complete_", "copy_", "restore_")
_DELETE = ("delete_", "abort_")


def _family(action: str) -> set[str]:
    verb = action.split(":", 1)[1]
    if verb.startswith(("Get", "List")):
        return {"read"}
    if verb.startswith(("Delete", "Abort")):
        return {"read", "delete"}
    if verb.startswith(("Put", "Create", "Restore")):
        # Put*Configuration also stands for the matching Delete* call
        return {"read", "write", "delete"} if "Configuration" in verb or verb.startswith(
            ("PutBucket", "PutLifecycle", "PutEncryption", "PutReplication")) else {
            "read", "write"}
    return set()


def _moto_family(method: str) -> str:
    if method.startswith(_READ):
        return "read"
    if method.startswith(_DELETE):
        return "delete"
    if method.startswith(_WRITE):
        return "write"
    return "other"


STATS: dict[str, int] = {}


def _count(kind: str) -> None:
    STATS[kind] = STATS.get(kind, 0) + 1


def _check_s3(c: Ctx, r: dict[str, Any], response: requests.Response | None) -> None:
    refused = bool(READINGS) and READINGS[0]
    _count("s3-refused" if refused else "s3-touched" if TOUCHED else "s3-untouched")
    if refused:
        assert response is not None and response.status_code in (400, 403), r
        assert TOUCHED == [], (r, TOUCHED)
        return
    reading = hooks.last_reading()
    assert reading is not None and reading.service == "s3", r
    buckets = {reading.bucket}
    keys = {reading.key} if reading.key is not None else set()
    if reading.copy_source is not None:
        buckets.add(reading.copy_source[0])
        keys.add(reading.copy_source[1])
    if reading.key is None and reading.action == "s3:DeleteObject":
        # DeleteObjects: the emulation checks every key its body names, one by one
        keys.update(re.findall(r"<Key>([^<]*)</Key>", r["body"].decode()))
    for touch in TOUCHED:
        assert touch.buckets <= buckets, (r, reading, touch)
        if touch.method != "delete_objects":
            assert touch.keys <= keys, (r, reading, touch)
        assert touch.upload_keys <= ({reading.key} - {None}), (r, reading, touch)
        assert _moto_family(touch.method) in _family(reading.action) | {"other"}, (
            r, reading, touch)


def _check_kms(c: Ctx, r: dict[str, Any], response: requests.Response | None) -> None:
    refused = bool(READINGS) and READINGS[0]
    _count("kms-refused" if refused else "kms-touched" if TOUCHED else "kms-untouched")
    if refused:
        assert response is not None and response.status_code in (400, 403), r
        assert TOUCHED == [], (r, TOUCHED)
        return
    reading = hooks.last_reading()
    assert reading is not None and reading.service == "kms", r
    named = {reading.resource, *(res for _, res in reading.extra)}
    for touch in TOUCHED:
        assert touch.kms_keys <= named, (r, reading, touch)


_SETTINGS = settings(max_examples=2200, deadline=None, derandomize=True, database=None,
                     suppress_health_check=list(HealthCheck))


@pytest.mark.filterwarnings("ignore")
def test_s3_readings_match_moto(ctx: Ctx) -> None:
    @_SETTINGS
    @given(st.data())
    def run(data: st.DataObject) -> None:
        r = data.draw(s3_requests(ctx))
        _check_s3(ctx, r, _send(ctx, r))

    run()
    reasons = collections.Counter((r.reason or str(r.decision))[:140]
                                  for r in emulation.REFUSALS[-300:])
    assert sum(v for k, v in STATS.items() if k.startswith("s3-")) >= 2000, STATS
    assert STATS.get("s3-refused", 0) > 100 and STATS.get("s3-touched", 0) > 100, (
        STATS, "\n".join(f"{n} {k}" for k, n in reasons.most_common(15)))


@pytest.mark.filterwarnings("ignore")
def test_kms_readings_match_moto(ctx: Ctx) -> None:
    @settings(_SETTINGS, max_examples=600)
    @given(st.data())
    def run(data: st.DataObject) -> None:
        r = data.draw(kms_requests(ctx))
        _check_kms(ctx, r, _send(ctx, r))

    run()
    # the generators reach both outcomes, and moto really acts on what is let through
    assert sum(v for k, v in STATS.items() if k.startswith("kms-")) >= 500, STATS
    assert STATS.get("kms-refused", 0) > 10 and STATS.get("kms-touched", 0) > 10, STATS
