"""The sandbox account: standard resources, isolation, server mode, clean close."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from securepipe import SandboxError, SecurePipeError
from securepipe.errors import InvalidParameterError
from securepipe.sandbox.account import BUCKET_ROLES, KMS_ALIAS, Sandbox, start_sandbox


def test_standard_resources_exist(sandbox: Sandbox) -> None:
    session = sandbox.session
    assert isinstance(session, boto3.Session)
    res = sandbox.resources
    buckets = {b["Name"] for b in session.client("s3").list_buckets()["Buckets"]}
    assert buckets == {res.bucket(role) for role in BUCKET_ROLES}

    kms = session.client("kms")
    meta = kms.describe_key(KeyId=KMS_ALIAS)["KeyMetadata"]
    assert meta["KeyManager"] == "CUSTOMER"  # not the aws/s3 managed key
    assert meta["Arn"] == res.kms_key_arn
    assert kms.get_key_rotation_status(KeyId=res.kms_key_id)["KeyRotationEnabled"]

    s3 = session.client("s3")
    for role in BUCKET_ROLES:
        assert s3.get_bucket_versioning(Bucket=res.bucket(role))["Status"] == "Enabled"
    for role in ("audit", "archive"):
        lock = s3.get_object_lock_configuration(Bucket=res.bucket(role))
        assert lock["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
    archive_meta = kms.describe_key(KeyId="alias/securepipe-archive")["KeyMetadata"]
    assert archive_meta["Arn"] == res.archive_key_arn != res.kms_key_arn

    ident = session.client("sts").get_caller_identity()
    assert ident["Account"] == res.account_id
    assert ident["Arn"] == res.admin_user_arn


def test_kms_key_really_encrypts(sandbox: Sandbox) -> None:
    kms = sandbox.session.client("kms")
    blob = kms.encrypt(KeyId=KMS_ALIAS, Plaintext=b"voice", EncryptionContext={"a": "b"})
    with pytest.raises(ClientError):
        kms.decrypt(CiphertextBlob=blob["CiphertextBlob"], EncryptionContext={"a": "c"})
    out = kms.decrypt(CiphertextBlob=blob["CiphertextBlob"], EncryptionContext={"a": "b"})
    assert out["Plaintext"] == b"voice"


def test_two_sandboxes_never_share_state() -> None:
    with Sandbox() as a, Sandbox() as b:
        assert a.resources.account_id != b.resources.account_id
        assert set(a.resources.buckets.values()).isdisjoint(b.resources.buckets.values())
        s3a, s3b = a.session.client("s3"), b.session.client("s3")
        s3a.put_object(Bucket=a.resources.bucket("raw"), Key="same-key", Body=b"from a")
        s3b.put_object(Bucket=b.resources.bucket("raw"), Key="same-key", Body=b"from b")
        got_a = s3a.get_object(Bucket=a.resources.bucket("raw"), Key="same-key")["Body"].read()
        assert got_a == b"from a"
        names_b = {x["Name"] for x in s3b.list_buckets()["Buckets"]}
        assert names_b == set(b.resources.buckets.values())
        keys_a = a.session.client("kms").list_keys()["Keys"]
        keys_b = b.session.client("kms").list_keys()["Keys"]
        assert {k["KeyId"] for k in keys_a}.isdisjoint({k["KeyId"] for k in keys_b})
        users_b = b.session.client("iam").list_users()["Users"]
        assert [u["Arn"] for u in users_b] == [b.resources.admin_user_arn]


def test_closed_sandbox_forgets_everything() -> None:
    sb = start_sandbox()
    raw = sb.resources.bucket("raw")
    sb.session.client("s3").put_object(Bucket=raw, Key="k", Body=b"x")
    account = sb.resources.account_id
    sb.close()
    sb.close()  # idempotent
    with pytest.raises(SandboxError):
        _ = sb.session
    from moto.core.base_backend import BackendDict

    assert not any(account in backend for backend in BackendDict._instances)
    with Sandbox() as later:
        names = {x["Name"] for x in later.session.client("s3").list_buckets()["Buckets"]}
        assert raw not in names


def test_server_mode_serves_an_endpoint() -> None:
    with Sandbox(server=True) as sb:
        assert sb.endpoint_url and sb.endpoint_url.startswith("http://127.0.0.1:")
        s3 = sb.session.client("s3")
        assert s3.meta.endpoint_url == sb.endpoint_url
        s3.put_object(Bucket=sb.resources.bucket("raw"), Key="k", Body=b"over http")
        # A separate tool reaching the sandbox only through the endpoint URL and the admin keys.
        creds = sb.session.get_credentials()
        other = boto3.client(
            "s3",
            endpoint_url=sb.endpoint_url,
            region_name=sb.region,
            aws_access_key_id=creds.access_key,
            aws_secret_access_key=creds.secret_key,
        )
        body = other.get_object(Bucket=sb.resources.bucket("raw"), Key="k")["Body"].read()
        assert body == b"over http"
        assert sb.config_file is not None and "endpoint_url" in sb.config_file.read_text()
        config = sb.config_file
    assert not config.exists()


def test_inventory_lists_the_account(sandbox: Sandbox) -> None:
    rows = sandbox.inventory()
    kinds = [r["kind"] for r in rows]
    assert kinds.count("s3 bucket") == 4
    assert kinds.count("kms key") == 3  # data key, the separate archive key, the signing key
    assert any(r["name"] == "securepipe-admin" for r in rows)
    assert any("object lock Enabled" in r["details"] for r in rows)


def test_bad_input_is_typed() -> None:
    with pytest.raises(InvalidParameterError):
        Sandbox(region="")
    with Sandbox() as sb, pytest.raises(InvalidParameterError):
        sb.resources.bucket("backups")
    with pytest.raises(SecurePipeError):
        _ = Sandbox().session
    sb = start_sandbox()
    try:
        with pytest.raises(SandboxError):
            sb.start()
    finally:
        sb.close()
