"""A table of attacks by one contractor (c01) on another's (c02) data and data keys.

Every attempt is a raw HTTP request, signed with botocore's signer where it is signed at all,
sent with ``requests`` (which moto intercepts in-process, and which reaches the server in server
mode), so the attacker controls every byte. Each must be refused, in both modes, and after the
whole table c02's data is untouched and none of it sits anywhere c01 can read.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
import requests
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from securepipe.access.credentials import (
    contractor_session,
    ensure_contractor_role,
    vend_contractor_credentials,
)
from securepipe.sandbox.account import Sandbox

SECRET = b"c02-voiceprint-SECRET-bytes"


@dataclass
class World:
    sb: Sandbox
    raw: str
    features: str
    key_arn: str
    creds: dict[str, Credentials]
    c02_blob: str            # a c02 data key's ciphertext (base64)
    c02_upload: str          # a multipart upload id under raw/c02/
    s3_base: str
    kms_base: str
    verify: Any


@dataclass
class Attack:
    name: str
    method: str
    path: str                            # as sent (percent-encoded), may carry a query
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    service: str = "s3"                  # where the request is sent
    scope: str | None = None             # the credential scope's service (default: service)
    region: str | None = None            # the credential scope's region
    who: str = "c01"                     # whose credentials sign ("" = unsigned)
    tamper: Callable[[dict[str, str], str], tuple[dict[str, str], str]] | None = None
    presign: bool = False


def _s3(name: str, method: str, path: str, **kw: Any) -> Attack:
    return Attack(name, method, path, **kw)


def _kms(name: str, operation: str, payload: dict[str, Any], **kw: Any) -> Attack:
    headers = {"X-Amz-Target": f"TrentService.{operation}",
               "Content-Type": "application/x-amz-json-1.1", **kw.pop("headers", {})}
    return Attack(name, "POST", "/", headers, json.dumps(payload).encode(), service="kms", **kw)


def _attacks(w: World) -> list[Attack]:
    raw, feat, key = w.raw, w.features, w.key_arn
    secret = f"/{raw}/raw/c02/secret"
    own = f"/{raw}/raw/c01/own"
    up = w.c02_upload
    ctx02 = {"securepipe:contractor": "c02"}
    ctx01 = {"securepipe:contractor": "c01"}
    complete = (b'<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>'
                b'<ETag>"x"</ETag></Part></CompleteMultipartUpload>')
    delete_body = b"<Delete><Object><Key>raw/c02/secret</Key></Object></Delete>"
    copy = "x-amz-copy-source"
    attacks = [
        # -- plain operations on c02's prefix ---------------------------------------------
        _s3("get", "GET", secret),
        _s3("head", "HEAD", secret),
        _s3("get-version-id", "GET", f"{secret}?versionId=null"),
        _s3("get-range", "GET", secret, headers={"Range": "bytes=0-4"}),
        _s3("put-overwrite", "PUT", secret, body=b"overwritten"),
        _s3("delete", "DELETE", secret),
        _s3("delete-version", "DELETE", f"{secret}?versionId=null"),
        _s3("get-tagging", "GET", f"{secret}?tagging"),
        _s3("put-tagging", "PUT", f"{secret}?tagging",
            body=b"<Tagging><TagSet></TagSet></Tagging>"),
        _s3("delete-tagging", "DELETE", f"{secret}?tagging"),
        _s3("get-acl", "GET", f"{secret}?acl"),
        _s3("put-acl", "PUT", f"{secret}?acl", headers={"x-amz-acl": "public-read"}),
        _s3("get-attributes", "GET", f"{secret}?attributes",
            headers={"x-amz-object-attributes": "ETag,ObjectSize"}),
        _s3("get-retention", "GET", f"{secret}?retention"),
        _s3("get-legal-hold", "GET", f"{secret}?legal-hold"),
        _s3("restore", "POST", f"{secret}?restore", body=b"<RestoreRequest><Days>1</Days>"
                                                         b"</RestoreRequest>"),
        _s3("select", "POST", f"{secret}?select&select-type=2", body=b"<x/>"),
        _s3("create-multipart", "POST", f"{secret}?uploads"),
        _s3("delete-objects", "POST", f"/{raw}?delete", body=delete_body,
            headers={"Content-MD5": base64.b64encode(hashlib.md5(delete_body).digest()).decode()}),
        # -- listing --------------------------------------------------------------------------
        _s3("list-c02", "GET", f"/{raw}?prefix=raw/c02/"),
        _s3("list-v2-c02", "GET", f"/{raw}?list-type=2&prefix=raw/c02/"),
        _s3("list-all", "GET", f"/{raw}"),
        _s3("list-raw", "GET", f"/{raw}?prefix=raw/"),
        _s3("list-versions", "GET", f"/{raw}?versions&prefix=raw/c02/"),
        _s3("list-uploads", "GET", f"/{raw}?uploads"),
        _s3("list-twice-prefix", "GET", f"/{raw}?prefix=raw/c01/&prefix=raw/c02/"),
        _s3("list-v2-twice", "GET", f"/{raw}?list-type=2&prefix=raw/c01/&list-type=2"),
        _s3("list-prefix-wildcard", "GET", f"/{raw}?prefix=raw/c01/../c02/"),
        _s3("list-buckets", "GET", "/"),
        _s3("list-features", "GET", f"/{feat}?prefix=features/c02/"),
        # -- subresources read as something else -------------------------------------------
        _s3("cors-with-prefix", "GET", f"/{raw}?cors&prefix=raw/c01/"),
        _s3("policy-with-prefix", "GET", f"/{raw}?policy&prefix=raw/c01/"),
        _s3("metrics-unknown-to-moto", "GET", f"/{raw}?metrics&prefix=raw/c01/"),
        _s3("analytics", "GET", f"/{raw}?analytics&prefix=raw/c01/"),
        _s3("unknown-subresource", "GET", f"/{raw}?made-up&prefix=raw/c01/"),
        _s3("two-subresources", "GET", f"/{raw}?acl&policy"),
        _s3("object-two-subresources", "GET", f"/{raw}/raw/c01/own?tagging&acl"),
        _s3("object-unknown-param", "GET", f"{secret}?foo=bar"),
        _s3("put-policy", "PUT", f"/{raw}?policy",
            body=json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": "*", "Action": "s3:*",
                "Resource": f"arn:aws:s3:::{raw}/*"}]}).encode()),
        _s3("delete-policy", "DELETE", f"/{raw}?policy"),
        _s3("put-encryption", "PUT", f"/{raw}?encryption", body=b"<x/>"),
        _s3("delete-bucket", "DELETE", f"/{raw}"),
        _s3("put-bucket-acl", "PUT", f"/{raw}?acl", headers={"x-amz-acl": "public-read"}),
        _s3("put-object-lock", "PUT", f"/{raw}?object-lock", body=b"<x/>"),
        _s3("put-versioning", "PUT", f"/{raw}?versioning", body=b"<x/>"),
        _s3("put-lifecycle", "PUT", f"/{raw}?lifecycle", body=b"<x/>"),
        _s3("post-form-upload", "POST", f"/{raw}", body=b"key=raw/c02/x"),
        # -- own prefix, but reaching c02's -------------------------------------------------
        _s3("put-own-with-acl", "PUT", f"/{raw}/raw/c01/acl", body=b"x",
            headers={"x-amz-acl": "public-read"}),
        _s3("put-own-with-grant", "PUT", f"/{raw}/raw/c01/acl", body=b"x",
            headers={"x-amz-grant-read": "uri=http://acs.amazonaws.com/groups/global/AllUsers"}),
        _s3("dot-dot-key", "GET", f"/{raw}/raw/c01/../c02/secret"),
        _s3("dot-dot-encoded", "GET", f"/{raw}/raw/c01/%2E%2E/c02/secret"),
        _s3("encoded-slash-key", "GET", f"/{raw}/raw%2Fc02%2Fsecret"),
        # (not in the table: /raw/c01/%252E%252E/... names the literal key "raw/c01/%2E%2E/...",
        # inside c01's own prefix; S3 decodes once, and so do moto and the emulation)
        _s3("virtual-host-c02-bucket", "GET", "/raw/c02/secret",
            headers={"Host": f"{raw}.s3.{w.sb.region}.amazonaws.com"}),
        _s3("host-header-mismatch", "GET", own, headers={"Host": "evil.example"}),
        _s3("body-on-get", "GET", own, body=b"<Delete/>"),
        _s3("body-on-delete", "DELETE", own, body=b"x"),
        # -- copies -----------------------------------------------------------------------------
        _s3("copy-plain", "PUT", f"/{raw}/raw/c01/stolen", headers={copy: f"{raw}/raw/c02/secret"}),
        _s3("copy-encoded-separators", "PUT", f"/{raw}/raw/c01/stolen",
            headers={copy: f"//{raw}%2Fraw%2Fc01%2F/{raw}/raw/c02/secret"}),
        _s3("copy-netloc", "PUT", f"/{raw}/raw/c01/stolen",
            headers={copy: f"//evil/{raw}/raw/c02/secret"}),
        _s3("copy-scheme", "PUT", f"/{raw}/raw/c01/stolen",
            headers={copy: f"https://x/{raw}/raw/c02/secret"}),
        _s3("copy-params", "PUT", f"/{raw}/raw/c01/stolen",
            headers={copy: f"/{raw}/raw/c02/secret;raw/c01/own"}),
        _s3("copy-fragment", "PUT", f"/{raw}/raw/c01/stolen",
            headers={copy: f"/{raw}/raw/c02/secret#raw/c01/own"}),
        _s3("copy-encoded-bucket", "PUT", f"/{raw}/raw/c01/stolen",
            headers={copy: quote(f"{raw}/raw/c02/secret", safe="")}),
        _s3("copy-version-twice", "PUT", f"/{raw}/raw/c01/stolen",
            headers={copy: f"/{raw}/raw/c02/secret?versionId=a&versionId=b"}),
        _s3("copy-dot-dot", "PUT", f"/{raw}/raw/c01/stolen",
            headers={copy: f"/{raw}/raw/c01/../c02/secret"}),
        _s3("copy-from-features", "PUT", f"/{raw}/raw/c01/stolen",
            headers={copy: f"/{feat}/features/c02/f"}),
        _s3("copy-encoded-from-features", "PUT", f"/{raw}/raw/c01/stolen",
            headers={copy: f"//{feat}%2Ffeatures%2Fc01%2F/{feat}/features/c02/f"}),
        _s3("copy-into-c02", "PUT", f"{secret}", headers={copy: f"/{raw}/raw/c01/own"}),
        _s3("copy-on-get", "GET", own, headers={copy: f"/{raw}/raw/c02/secret"}),
        _s3("copy-on-tagging", "PUT", f"{own}?tagging", headers={copy: f"/{raw}/raw/c02/secret"},
            body=b"<Tagging><TagSet></TagSet></Tagging>"),
        _s3("upload-part-copy", "PUT", f"/{raw}/raw/c01/mp?partNumber=1&uploadId=OWN",
            headers={copy: f"/{raw}/raw/c02/secret"}),
        _s3("upload-part-copy-encoded", "PUT", f"/{raw}/raw/c01/mp?partNumber=1&uploadId=OWN",
            headers={copy: f"//{raw}%2Fraw%2Fc01%2F/{raw}/raw/c02/secret"}),
        # -- c02's multipart upload, by its id ----------------------------------------------------
        _s3("complete-c02-upload-as-own-key", "POST", f"/{raw}/raw/c01/mp?uploadId={up}",
            body=complete),
        _s3("complete-c02-upload", "POST", f"/{raw}/raw/c02/mp?uploadId={up}", body=complete),
        _s3("part-into-c02-upload", "PUT", f"/{raw}/raw/c01/mp?partNumber=1&uploadId={up}",
            body=b"p"),
        _s3("list-parts-c02-upload", "GET", f"/{raw}/raw/c01/mp?uploadId={up}"),
        _s3("abort-c02-upload", "DELETE", f"/{raw}/raw/c01/mp?uploadId={up}"),
        _s3("abort-c02-upload-direct", "DELETE", f"/{raw}/raw/c02/mp?uploadId={up}"),
        _s3("upload-id-twice", "PUT", f"/{raw}/raw/c01/mp?partNumber=1&uploadId=x&uploadId={up}",
            body=b"p"),
        _s3("empty-upload-id", "GET", f"/{raw}/raw/c02/mp?uploadId="),
        # -- signatures and attribution -------------------------------------------------------
        _s3("unsigned", "GET", secret, who=""),
        _s3("unsigned-own", "GET", own, who=""),
        _s3("forged-signature", "GET", secret, tamper=_forge_signature),
        _s3("unknown-asia-key", "GET", secret, who="unknown-asia"),
        _s3("unknown-akia-key", "GET", secret, who="unknown-akia"),
        _s3("c01-key-c02-token", "GET", secret, who="c01-with-c02-token"),
        _s3("no-token", "GET", secret, who="c01-no-token"),
        _s3("key-changed-after-signing", "GET", own,
            tamper=lambda h, u: (h, u.replace("raw/c01/own", "raw/c02/secret"))),
        _s3("header-added-after-signing", "PUT", f"/{raw}/raw/c01/n", body=b"x",
            tamper=lambda h, u: ({**h, "x-amz-copy-source": f"/{raw}/raw/c02/secret"}, u)),
        _s3("scope-kms-for-s3", "GET", secret, scope="kms"),
        _s3("scope-other-region", "GET", secret, region="us-west-2"),
        _s3("scope-bad-date", "GET", secret,
            tamper=lambda h, u: ({**h, "Authorization": h["Authorization"].replace(
                "/" + h["X-Amz-Date"][:8] + "/", "/2026011/")}, u)),
        _s3("scope-extra-segment", "GET", secret,
            tamper=lambda h, u: ({**h, "Authorization": h["Authorization"].replace(
                "/s3/aws4_request", "/s3/x/aws4_request")}, u)),
        _s3("sigv2-header", "GET", secret,
            tamper=lambda h, u: ({**h, "Authorization": "AWS " + h["Authorization"].split(
                "Credential=")[1].split("/")[0] + ":c2lnbmF0dXJl"}, u)),
        _s3("moto-account-header", "GET", secret, headers={"x-moto-account-id": "123456789012"}),
        _s3("presigned-tampered", "GET", own, presign=True,
            tamper=lambda h, u: (h, u.replace("raw/c01/own", "raw/c02/secret"))),
        _s3("presigned-long-expiry", "GET", secret, presign=True,
            tamper=lambda h, u: (h, u.replace("X-Amz-Expires=300", "X-Amz-Expires=999999"))),
        _s3("presigned-c02-path", "GET", secret, presign=True),
        _s3("presigned-and-header", "GET", secret, presign=True,
            tamper=lambda h, u: ({**h, "Authorization": "AWS4-HMAC-SHA256 x"}, u)),
        # -- KMS ---------------------------------------------------------------------------------
        _kms("decrypt-c02-key", "Decrypt", {"CiphertextBlob": w.c02_blob,
                                             "EncryptionContext": ctx02}),
        _kms("decrypt-c02-with-keyid", "Decrypt", {"CiphertextBlob": w.c02_blob, "KeyId": key,
                                                   "EncryptionContext": ctx02}),
        _kms("decrypt-c02-own-context", "Decrypt", {"CiphertextBlob": w.c02_blob,
                                                    "EncryptionContext": ctx01}),
        _kms("decrypt-duplicate-member", "Decrypt", {}, headers={},
             ),
        _kms("generate-c02", "GenerateDataKey", {"KeyId": key, "KeySpec": "AES_256",
                                                 "EncryptionContext": ctx02}),
        _kms("generate-no-context", "GenerateDataKey", {"KeyId": key, "KeySpec": "AES_256"}),
        _kms("generate-alias", "GenerateDataKey", {"KeyId": "alias/securepipe-data",
                                                   "KeySpec": "AES_256",
                                                   "EncryptionContext": ctx02}),
        _kms("generate-foreign-arn", "GenerateDataKey", {
            "KeyId": key.replace(f":{w.sb.resources.account_id}:", ":999999999999:"),
            "KeySpec": "AES_256", "EncryptionContext": ctx01}),
        _kms("generate-without-plaintext", "GenerateDataKeyWithoutPlaintext",
             {"KeyId": key, "KeySpec": "AES_256", "EncryptionContext": ctx02}),
        _kms("encrypt", "Encrypt", {"KeyId": key, "Plaintext": "eA==",
                                    "EncryptionContext": ctx02}),
        _kms("re-encrypt", "ReEncrypt", {"CiphertextBlob": w.c02_blob, "DestinationKeyId": key,
                                         "SourceEncryptionContext": ctx02,
                                         "DestinationEncryptionContext": ctx01}),
        _kms("create-grant", "CreateGrant", {"KeyId": key, "GranteePrincipal": "*",
                                             "Operations": ["Decrypt"]}),
        _kms("put-key-policy", "PutKeyPolicy", {"KeyId": key, "PolicyName": "default",
                                                "Policy": "{}"}),
        _kms("disable-key", "DisableKey", {"KeyId": key}),
        _kms("schedule-deletion", "ScheduleKeyDeletion", {"KeyId": key}),
        _kms("update-alias", "UpdateAlias", {"AliasName": "alias/securepipe-data",
                                             "TargetKeyId": key}),
        _kms("describe-key", "DescribeKey", {"KeyId": key}),
        _kms("list-grants", "ListGrants", {"KeyId": key}),
        _kms("decrypt-scope-s3", "Decrypt", {"CiphertextBlob": w.c02_blob,
                                             "EncryptionContext": ctx02}, scope="s3"),
        _kms("decrypt-scope-other-region", "Decrypt", {"CiphertextBlob": w.c02_blob,
                                                       "EncryptionContext": ctx02},
             region="us-east-1"),
        _kms("decrypt-unknown-key-id", "Decrypt", {"CiphertextBlob": w.c02_blob,
                                                   "EncryptionContext": ctx02},
             who="unknown-asia"),
        _kms("decrypt-unsigned", "Decrypt", {"CiphertextBlob": w.c02_blob,
                                             "EncryptionContext": ctx02}, who=""),
        _kms("decrypt-forged", "Decrypt", {"CiphertextBlob": w.c02_blob,
                                           "EncryptionContext": ctx02}, tamper=_forge_signature),
        _kms("decrypt-body-swapped", "Decrypt", {"CiphertextBlob": w.c02_blob,
                                                 "EncryptionContext": ctx01}),
        _kms("decrypt-moto-account", "Decrypt", {"CiphertextBlob": w.c02_blob,
                                                 "EncryptionContext": ctx02},
             headers={"x-moto-account-id": "123456789012"}),
        _kms("decrypt-with-query", "Decrypt", {"CiphertextBlob": w.c02_blob,
                                               "EncryptionContext": ctx02}),
    ]
    # Two that need a body the JSON encoder cannot produce: a member given twice.
    dup = attacks[[a.name for a in attacks].index("decrypt-duplicate-member")]
    dup.body = (b'{"CiphertextBlob": "%s", "EncryptionContext": {"securepipe:contractor": "c01",'
                b' "securepipe:contractor": "c02"}}' % w.c02_blob.encode())
    attacks[[a.name for a in attacks].index("decrypt-with-query")].path = "/?Action=Decrypt"
    # the ciphertext the body names is c02's; the signature is over another body
    swapped = attacks[[a.name for a in attacks].index("decrypt-body-swapped")]
    swapped.tamper = lambda h, u: (h, u)
    swapped.body = swapped.body.replace(b'"c01"', b'"c02"')  # signed below before the swap
    swapped.headers["_swap_after_signing"] = "1"
    return attacks


def _forge_signature(headers: dict[str, str], url: str) -> tuple[dict[str, str], str]:
    auth = headers["Authorization"]
    return {**headers, "Authorization": auth[:-8] + "00000000"}, url


def _send(w: World, a: Attack) -> requests.Response:
    base = w.s3_base if a.service == "s3" else w.kms_base
    url = base + a.path
    body = a.body
    headers = {k: v for k, v in a.headers.items() if not k.startswith("_")}
    signing_body = body
    if "_swap_after_signing" in a.headers:
        signing_body = body.replace(b'"c02"', b'"c01"')
    if a.who:
        creds = w.creds[a.who]
        scope = a.scope or a.service
        region = a.region or w.sb.region
        request = AWSRequest(method=a.method, url=url, data=signing_body, headers=dict(headers))
        if a.presign:
            S3SigV4QueryAuth(creds, scope, region, expires=300).add_auth(request)
        elif scope == "s3":
            S3SigV4Auth(creds, scope, region).add_auth(request)
        else:
            SigV4Auth(creds, scope, region).add_auth(request)
        prepared = request.prepare()
        url, headers = prepared.url, dict(prepared.headers.items())
    if a.tamper is not None:
        headers, url = a.tamper(headers, url)
    return requests.request(a.method, url, headers=headers, data=body, verify=w.verify,
                            timeout=30, allow_redirects=False)


def _world(sb: Sandbox) -> World:
    res = sb.resources
    raw, feat = res.bucket("raw"), res.bucket("features")
    admin = sb.session.client("s3")
    admin.put_object(Bucket=raw, Key="raw/c02/secret", Body=SECRET)
    admin.put_object(Bucket=raw, Key="raw/c01/own", Body=b"c01-own")
    admin.put_object(Bucket=feat, Key="features/c02/f", Body=SECRET)
    role = ensure_contractor_role(sb.session, bucket=raw, key_arn=res.kms_key_arn)
    vended = {c: vend_contractor_credentials(sb.session, role_arn=role, contractor=c, bucket=raw,
                                             key_arn=res.kms_key_arn) for c in ("c01", "c02")}
    c02 = contractor_session(sb.session, vended["c02"])
    blob = c02.client("kms").generate_data_key(
        KeyId=res.kms_key_arn, KeySpec="AES_256",
        EncryptionContext={"securepipe:contractor": "c02"})["CiphertextBlob"]
    upload = c02.client("s3").create_multipart_upload(Bucket=raw, Key="raw/c02/mp")["UploadId"]
    one, two = vended["c01"], vended["c02"]
    creds = {
        "c01": Credentials(one.access_key_id, one.secret_access_key, one.session_token),
        "c02": Credentials(two.access_key_id, two.secret_access_key, two.session_token),
        "unknown-asia": Credentials("ASIA" + "Z" * 16, one.secret_access_key,
                                    one.session_token),
        "unknown-akia": Credentials("AKIA" + "Z" * 16, one.secret_access_key),
        "c01-with-c02-token": Credentials(one.access_key_id, one.secret_access_key,
                                          two.session_token),
        "c01-no-token": Credentials(one.access_key_id, one.secret_access_key),
    }
    if sb.endpoint_url:
        s3_base = kms_base = sb.endpoint_url
        verify: Any = str(sb.ca_bundle) if sb.ca_bundle else True
    else:
        s3_base = f"https://s3.{sb.region}.amazonaws.com"
        kms_base = f"https://kms.{sb.region}.amazonaws.com"
        verify = True
    return World(sb, raw, feat, res.kms_key_arn, creds, base64.b64encode(blob).decode(),
                 upload, s3_base, kms_base, verify)


@pytest.fixture(scope="module", params=[False, True], ids=["in-process", "server"])
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    with Sandbox(server=request.param, tls=request.param) as sb:
        yield _world(sb)


def test_the_table_has_at_least_100_attacks(world: World) -> None:
    names = [a.name for a in _attacks(world)]
    assert len(names) >= 100 and len(set(names)) == len(names)


def test_every_attack_is_refused(world: World) -> None:
    outcomes = {}
    for attack in _attacks(world):
        response = _send(world, attack)
        outcomes[attack.name] = (response.status_code, response.content[:160])
        assert SECRET not in response.content, attack.name
    let_through = {n: o for n, o in outcomes.items() if o[0] not in (400, 403)}
    assert not let_through, let_through
    for name, (status, body) in outcomes.items():
        if name == "head":  # a HEAD answer has no body: the status says it
            assert status == 403
            continue
        # KMS itself refuses a ciphertext under another encryption context (as AWS does)
        expected = (b"InvalidCiphertextException" if name == "decrypt-c02-own-context"
                    else b"AccessDenied")
        assert expected in body, (name, body)
    # nothing of c02's moved or changed, and nothing of it reached c01's prefix
    s3 = world.sb.session.client("s3")
    assert s3.get_object(Bucket=world.raw, Key="raw/c02/secret")["Body"].read() == SECRET
    versions = s3.list_object_versions(Bucket=world.raw, Prefix="raw/c02/")
    assert len(versions.get("Versions", [])) == 1 and not versions.get("DeleteMarkers")
    listed = s3.list_objects_v2(Bucket=world.raw, Prefix="raw/c01/")["Contents"]
    assert [o["Key"] for o in listed] == ["raw/c01/own"]
    uploads = s3.list_multipart_uploads(Bucket=world.raw).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("raw/c02/mp", world.c02_upload)]
    assert "Policy" not in str(_policy_or_none(s3, world.raw))


def _policy_or_none(s3: Any, bucket: str) -> str | None:
    try:
        return str(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    except s3.exceptions.ClientError:
        return None


def test_the_same_requests_work_on_c01s_own_data(world: World) -> None:
    """The table's refusals are not a sandbox that refuses everything: the attacker's own,
    correctly signed requests go through."""
    own = [
        _s3("own-get", "GET", f"/{world.raw}/raw/c01/own"),
        _s3("own-list", "GET", f"/{world.raw}?list-type=2&prefix=raw/c01/"),
        _s3("own-presigned", "GET", f"/{world.raw}/raw/c01/own", presign=True),
        _kms("own-data-key", "GenerateDataKey", {
            "KeyId": world.key_arn, "KeySpec": "AES_256",
            "EncryptionContext": {"securepipe:contractor": "c01"}}),
    ]
    for attack in own:
        response = _send(world, attack)
        assert response.status_code == 200, (attack.name, response.content[:300])
