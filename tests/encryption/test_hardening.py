"""Bucket hardening: applied, verified, and each misconfiguration reported alone."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from botocore.exceptions import ClientError

from securepipe.encryption.hardening import (
    CONTROLS,
    SSE_STATEMENTS,
    apply_account_public_access_block,
    apply_bucket_hardening,
    failures,
    hardened_bucket_policy,
    inspect_bucket,
    sse_kms_put_args,
)
from securepipe.errors import InvalidParameterError
from securepipe.sandbox.account import Sandbox


@pytest.fixture
def hardened(sandbox: Sandbox) -> Sandbox:
    apply_bucket_hardening(sandbox.session, sandbox.resources.bucket("raw"),
                           sandbox.resources.kms_key_arn)
    apply_account_public_access_block(sandbox.session)
    return sandbox


def _inspect(sb: Sandbox) -> list:
    return inspect_bucket(sb.session, sb.resources.bucket("raw"), sb.resources.kms_key_arn)


def test_fresh_bucket_fails_and_hardened_bucket_passes(sandbox: Sandbox) -> None:
    before = {f.control: f.status for f in _inspect(sandbox)}
    assert before["default-encryption"] == "fail" and before["tls-only"] == "fail"
    apply_bucket_hardening(sandbox.session, sandbox.resources.bucket("raw"),
                           sandbox.resources.kms_key_arn)
    after = _inspect(sandbox)
    assert [f.control for f in after] == list(CONTROLS)
    # The bucket call never changes the whole account: that is its own, explicit call.
    assert [f.control for f in failures(after)] == ["account-public-access"]
    apply_account_public_access_block(sandbox.session)
    assert failures(_inspect(sandbox)) == []


def test_reapplying_keeps_statements_others_added(hardened: Sandbox) -> None:
    s3, bucket = hardened.session.client("s3"), hardened.resources.bucket("raw")
    doc = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    mine = {"Sid": "MyOwn", "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteBucket",
            "Resource": f"arn:aws:s3:::{bucket}"}
    doc["Statement"].append(mine)
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(doc))
    apply_bucket_hardening(hardened.session, bucket, hardened.resources.kms_key_arn)
    again = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert again == doc  # nothing to change: the same statements, in the same order
    assert failures(_inspect(hardened)) == []


def _policy_without(sid: str) -> Callable[[Sandbox], None]:
    def breaker(sb: Sandbox) -> None:
        bucket = sb.resources.bucket("raw")
        policy = hardened_bucket_policy(bucket, sb.resources.kms_key_arn)
        policy["Statement"] = [s for s in policy["Statement"] if s["Sid"] not in sid.split(",")]
        sb.session.client("s3").put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    return breaker


def _encryption(key: str | None, bucket_key: bool) -> Callable[[Sandbox], None]:
    def breaker(sb: Sandbox) -> None:
        default = {"SSEAlgorithm": "aws:kms"}
        if key == "cmk":
            default["KMSMasterKeyID"] = sb.resources.kms_key_arn
        sb.session.client("s3").put_bucket_encryption(
            Bucket=sb.resources.bucket("raw"),
            ServerSideEncryptionConfiguration={"Rules": [{
                "ApplyServerSideEncryptionByDefault": default, "BucketKeyEnabled": bucket_key}]})
    return breaker


def _bucket_pab_off(sb: Sandbox) -> None:
    flags = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": False,
             "RestrictPublicBuckets": True}
    sb.session.client("s3").put_public_access_block(
        Bucket=sb.resources.bucket("raw"), PublicAccessBlockConfiguration=flags)


def _account_pab_off(sb: Sandbox) -> None:
    sb.session.client("s3control").delete_public_access_block(
        AccountId=sb.resources.account_id)


def _versioning_suspended(sb: Sandbox) -> None:
    sb.session.client("s3").put_bucket_versioning(
        Bucket=sb.resources.bucket("raw"), VersioningConfiguration={"Status": "Suspended"})


def _ownership_object_writer(sb: Sandbox) -> None:
    sb.session.client("s3").put_bucket_ownership_controls(
        Bucket=sb.resources.bucket("raw"),
        OwnershipControls={"Rules": [{"ObjectOwnership": "ObjectWriter"}]})


def _other_key_pinned(sb: Sandbox) -> None:
    other = sb.session.client("kms").create_key()["KeyMetadata"]["Arn"]
    bucket = sb.resources.bucket("raw")
    policy = hardened_bucket_policy(bucket, sb.resources.kms_key_arn)
    policy["Statement"][3]["Condition"]["StringNotEquals"][
        "s3:x-amz-server-side-encryption-aws-kms-key-id"] = other
    sb.session.client("s3").put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))


BREAKERS: dict[str, Callable[[Sandbox], None]] = {
    "default-encryption": _encryption(None, True),          # aws/s3, the AWS managed key
    "bucket-key": _encryption("cmk", False),
    "tls-only": _policy_without("DenyInsecureTransport"),
    "sse-kms-enforced": _other_key_pinned,
    "public-access-block": _bucket_pab_off,
    "account-public-access": _account_pab_off,
    "versioning": _versioning_suspended,
    "object-ownership": _ownership_object_writer,
}


def test_every_control_has_a_breaker() -> None:
    assert set(BREAKERS) == set(CONTROLS)


@pytest.mark.parametrize("control", list(BREAKERS))
def test_one_misconfiguration_is_reported_alone(hardened: Sandbox, control: str) -> None:
    BREAKERS[control](hardened)
    failed = failures(_inspect(hardened))
    assert [f.control for f in failed] == [control]
    assert failed[0].status == "fail" and failed[0].evidence


def test_sse_statements_removed_together_fail_the_control(hardened: Sandbox) -> None:
    _policy_without(",".join(SSE_STATEMENTS))(hardened)
    assert [f.control for f in failures(_inspect(hardened))] == ["sse-kms-enforced"]


def test_deny_everything_policy_is_not_a_pass(hardened: Sandbox) -> None:
    bucket = hardened.resources.bucket("raw")
    deny_all = {"Version": "2012-10-17", "Statement": [{  # every object request, even TLS
        "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": f"arn:aws:s3:::{bucket}/*"}]}  # every object request, even over TLS
    hardened.session.client("s3").put_bucket_policy(Bucket=bucket, Policy=json.dumps(deny_all))
    failed = {f.control: f.evidence for f in failures(_inspect(hardened))}
    assert "denies GetObject over TLS" in failed["tls-only"]
    assert "sse-kms-enforced" in failed


def test_missing_bucket_is_could_not_evaluate(sandbox: Sandbox) -> None:
    findings = inspect_bucket(sandbox.session, "securepipe-no-such-bucket",
                              sandbox.resources.kms_key_arn)
    by_control = {f.control: f for f in findings}
    assert by_control["versioning"].status == "error"
    assert "could not evaluate" in by_control["versioning"].evidence
    assert not any(f.passed for f in findings if f.control != "account-public-access")


def test_hardened_bucket_refuses_non_compliant_puts(hardened: Sandbox) -> None:
    s3 = hardened.session.client("s3")
    bucket, key_arn = hardened.resources.bucket("raw"), hardened.resources.kms_key_arn
    s3.put_object(Bucket=bucket, Key="ok", Body=b"x", **sse_kms_put_args(key_arn))
    # no header: admitted, and the bucket's default encryption applies the customer key
    s3.put_object(Bucket=bucket, Key="default", Body=b"x")
    assert s3.head_object(Bucket=bucket, Key="default")["SSEKMSKeyId"] == key_arn
    other_key = key_arn[:-1] + ("1" if key_arn.endswith("0") else "0")   # never the same key
    for extra in ({"ServerSideEncryption": "AES256"},
                  {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": other_key},
                  {"ServerSideEncryption": "aws:kms"}):  # aws:kms without key id = aws/s3
        with pytest.raises(ClientError) as err:
            s3.put_object(Bucket=bucket, Key="bad", Body=b"x", **extra)
        assert err.value.response["Error"]["Code"] == "AccessDenied"
        assert "emulated AWS enforcement" in err.value.response["Error"]["Message"]


def test_bad_key_arn_is_typed(sandbox: Sandbox) -> None:
    with pytest.raises(InvalidParameterError):
        apply_bucket_hardening(sandbox.session, sandbox.resources.bucket("raw"), "alias/aws/s3")
    with pytest.raises(InvalidParameterError):
        sse_kms_put_args("not-an-arn")
