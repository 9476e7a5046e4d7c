"""The sandbox's emulated enforcement of bucket policies, in-process and in server mode."""

from __future__ import annotations

import datetime as dt
import json
import stat

import boto3
import pytest
from botocore.exceptions import ClientError, SSLError
from cryptography import x509

from securepipe.encryption.hardening import hardened_bucket_policy, sse_kms_put_args
from securepipe.sandbox import emulation as enforcement
from securepipe.sandbox.account import Sandbox
from securepipe.sandbox.requests import describe_s3_request

AUTH = {"Authorization": "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20261126/eu-west-1/s3/"
                         "aws4_request, SignedHeaders=host, Signature=abc"}


def _client(sb: Sandbox, endpoint: str) -> object:
    creds = sb.session.get_credentials()
    return boto3.client("s3", endpoint_url=endpoint, region_name=sb.region,
                        aws_access_key_id=creds.access_key,
                        aws_secret_access_key=creds.secret_key,
                        verify=str(sb.ca_bundle) if endpoint.startswith("https") else None)


def _tls_only(sb: Sandbox) -> str:
    bucket = sb.resources.bucket("raw")
    sb.session.client("s3").put_bucket_policy(
        Bucket=bucket, Policy=json.dumps(hardened_bucket_policy(bucket, sb.resources.kms_key_arn)))
    return bucket


@pytest.mark.parametrize(("method", "url", "extra", "action", "bucket", "key"), [
    ("GET", "https://b1.s3.eu-west-1.amazonaws.com/raw/c01/s1", {}, "s3:GetObject", "b1",
     "raw/c01/s1"),
    ("GET", "https://s3.eu-west-1.amazonaws.com/b1/raw/c01/s%201", {}, "s3:GetObject", "b1",
     "raw/c01/s 1"),
    ("DELETE", "https://b1.s3.eu-west-1.amazonaws.com/k?versionId=3", {},
     "s3:DeleteObjectVersion", "b1", "k"),
    ("GET", "http://127.0.0.1:5000/b1?list-type=2&prefix=raw%2Fc01%2F", AUTH, "s3:ListBucket",
     "b1", None),
    ("PUT", "https://b1.s3.eu-west-1.amazonaws.com/?policy", {}, "s3:PutBucketPolicy", "b1",
     None),
    ("GET", "https://b1.s3.eu-west-1.amazonaws.com/?versions", {}, "s3:ListBucketVersions",
     "b1", None),
])
def test_request_mapping(method: str, url: str, extra: dict, action: str, bucket: str,
                         key: str | None) -> None:
    call = describe_s3_request(method, url, extra)
    assert call is not None
    assert (call.action, call.bucket, call.key) == (action, bucket, key)


def test_mapping_reads_condition_keys() -> None:
    call = describe_s3_request(
        "GET", "http://127.0.0.1:5000/b1?list-type=2&prefix=raw%2Fc01%2F", AUTH)
    assert call is not None
    assert call.context["s3:prefix"] == "raw/c01/"
    assert call.context["aws:SecureTransport"] == "false"
    assert call.access_key == "AKIAEXAMPLE"
    put = describe_s3_request("PUT", "https://b1.s3.eu-west-1.amazonaws.com/k", {
        "x-amz-server-side-encryption": "aws:kms"})
    assert put is not None and put.context["s3:x-amz-server-side-encryption"] == "aws:kms"
    assert put.context["aws:SecureTransport"] == "true"


def test_other_services_are_not_s3() -> None:
    assert describe_s3_request("POST", "https://kms.eu-west-1.amazonaws.com/", {}) is None
    assert describe_s3_request("POST", "http://127.0.0.1:5000/", {
        "Authorization": "AWS4-HMAC-SHA256 Credential=AK/20261126/eu-west-1/kms/aws4_request"
    }) is None


def test_in_process_plain_http_is_refused_https_allowed(sandbox: Sandbox) -> None:
    bucket = _tls_only(sandbox)
    s3 = sandbox.session.client("s3")
    args = sse_kms_put_args(sandbox.resources.kms_key_arn)
    # moto alone would refuse this HTTPS put (its Deny conditions always match); the kit's
    # evaluator replaces that check and allows it, as AWS does.
    s3.put_object(Bucket=bucket, Key="k", Body=b"voice", **args)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"voice"
    # An attacker's own client, with stolen keys, over plain HTTP:
    plain = _client(sandbox, f"http://s3.{sandbox.region}.amazonaws.com")
    before = len(enforcement.REFUSALS)
    for call in (lambda: plain.get_object(Bucket=bucket, Key="k"),
                 lambda: plain.put_object(Bucket=bucket, Key="k2", Body=b"x", **args),
                 lambda: plain.list_objects_v2(Bucket=bucket)):
        with pytest.raises(ClientError) as err:
            call()
        assert err.value.response["Error"]["Code"] == "AccessDenied"
        assert "emulated AWS enforcement" in err.value.response["Error"]["Message"]
    refused = enforcement.REFUSALS[before:]
    assert [r.action for r in refused] == ["s3:GetObject", "s3:PutObject", "s3:ListBucket"]
    assert all(r.decision.statement == "bucket-policy#DenyInsecureTransport" for r in refused)
    assert refused[0].principal == sandbox.resources.admin_user_arn


def test_moto_bucket_policy_check_restored_after_close() -> None:
    from moto.s3.models import FakeBucket

    original = FakeBucket.get_permission
    with Sandbox():
        assert FakeBucket.get_permission is not original
        with Sandbox():
            pass
        assert FakeBucket.get_permission is not original  # still one sandbox open
    assert FakeBucket.get_permission is original


def test_server_mode_tls_and_plain_refusal() -> None:
    with Sandbox(server=True, tls=True) as sb:
        assert sb.endpoint_url.startswith("https://127.0.0.1:")
        assert sb.plain_endpoint_url.startswith("http://127.0.0.1:")
        bucket = _tls_only(sb)
        args = sse_kms_put_args(sb.resources.kms_key_arn)
        s3 = sb.session.client("s3")  # verifies against the kit's CA via the profile
        s3.put_object(Bucket=bucket, Key="k", Body=b"over tls", **args)
        assert _client(sb, sb.endpoint_url).get_object(
            Bucket=bucket, Key="k")["Body"].read() == b"over tls"
        with pytest.raises(ClientError) as err:
            _client(sb, sb.plain_endpoint_url).get_object(Bucket=bucket, Key="k")
        assert err.value.response["Error"]["Code"] == "AccessDenied"
        assert "emulated" in err.value.response["Error"]["Message"]
        # A client that does not trust the kit's CA refuses the connection.
        creds = sb.session.get_credentials()
        untrusting = boto3.client("s3", endpoint_url=sb.endpoint_url, region_name=sb.region,
                                  aws_access_key_id=creds.access_key,
                                  aws_secret_access_key=creds.secret_key, verify=True)
        with pytest.raises(SSLError):
            untrusting.list_buckets()
        # The certificate names 127.0.0.1 and its key is private to the owner.
        cert = x509.load_pem_x509_certificate(sb.ca_bundle.read_bytes())
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        key_file = sb.ca_bundle.parent / "server.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert not (sb.ca_bundle.parent / "ca.key").exists()
        tmp = sb.config_file.parent
    assert not tmp.exists()


def test_tls_needs_server_mode() -> None:
    from securepipe.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError):
        Sandbox(tls=True)


def _ip_policy(bucket: str, cidr: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "OnlyFrom", "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
        "Condition": {"NotIpAddress": {"aws:SourceIp": cidr}}}]})


def test_source_ip_conditions_decide_without_crashing(sandbox: Sandbox) -> None:
    """The sandbox's clients are all on 127.0.0.1 (aws:SourceIp)."""
    s3 = sandbox.session.client("s3")
    bucket = sandbox.resources.bucket("raw")
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    s3.put_bucket_policy(Bucket=bucket, Policy=_ip_policy(bucket, "127.0.0.0/8"))
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    s3.put_bucket_policy(Bucket=bucket, Policy=_ip_policy(bucket, "10.0.0.0/8"))
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=bucket, Key="k")
    assert err.value.response["Error"]["Code"] == "AccessDenied"
    assert enforcement.REFUSALS[-1].decision.statement == "bucket-policy#OnlyFrom"


def test_a_bucket_policy_the_evaluator_cannot_read_is_refused_when_put(sandbox: Sandbox) -> None:
    s3 = sandbox.session.client("s3")
    bucket = sandbox.resources.bucket("raw")
    unreadable = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "NotPrincipal": {"AWS": "x"}, "Action": "s3:*", "Resource": "*"}]}
    with pytest.raises(ClientError) as err:
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(unreadable))
    assert "cannot evaluate this bucket policy" in err.value.response["Error"]["Message"]
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")  # the bucket still works


@pytest.mark.parametrize("server", [False, True], ids=["in-process", "server"])
def test_the_presigned_url_age_cap_fires(server: bool) -> None:
    """s3:signatureAge is in the request context: a bucket-policy cap refuses an old link."""
    import requests

    from securepipe.access.presigned import apply_presign_age_cap, presign_get

    with Sandbox(server=server, tls=server) as sb:
        bucket = sb.resources.bucket("raw")
        sb.session.client("s3").put_object(Bucket=bucket, Key="k", Body=b"voice")
        apply_presign_age_cap(sb.session, bucket, max_age_s=60)
        url = presign_get(sb.session, bucket=bucket, key="k", expires_in=600)
        verify = str(sb.ca_bundle) if sb.ca_bundle else True
        assert requests.get(url, timeout=10, verify=verify).content == b"voice"
        sb.move_clock(dt.timedelta(seconds=61))   # still valid, but older than the cap
        old = requests.get(url, timeout=10, verify=verify)
        assert old.status_code == 403 and b"DenyOldSignatures" in old.content


def test_dynamodb_account_based_endpoint_is_read_as_dynamodb(sandbox: Sandbox) -> None:
    """botocore sends calls naming a table ARN to <account>.ddb.<region>.amazonaws.com: the
    emulation reads that host as DynamoDB for the signer's own account, and refuses it for
    another account (moto would answer from the signer's)."""
    ddb = sandbox.client("dynamodb")
    arn = ddb.create_table(TableName="tagged", BillingMode="PAY_PER_REQUEST",
                           AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                           KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                           Tags=[{"Key": "securepipe", "Value": "consent"}]
                           )["TableDescription"]["TableArn"]
    seen: list[str] = []
    ddb.meta.events.register("before-send", lambda request, **_: seen.append(request.url))
    assert ddb.list_tags_of_resource(ResourceArn=arn)["Tags"] == [
        {"Key": "securepipe", "Value": "consent"}]
    assert seen[-1].startswith(f"https://{sandbox.account_id}.ddb.")
    with pytest.raises(ClientError) as refused:
        ddb.list_tags_of_resource(ResourceArn=arn.replace(sandbox.account_id, "999999999999"))
    assert "another account's endpoint" in str(refused.value)
