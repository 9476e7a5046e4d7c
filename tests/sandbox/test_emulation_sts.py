"""Emulated enforcement for STS sessions: session policies, conditions, expiry, presigned URLs.

moto stores all of these and enforces none (gaps sts-session-policy, sts-expiry, iam-conditions,
s3-presigned-expiry); every refusal asserted here comes from securepipe.sandbox.emulation, and where
moto *does* enforce (identity-policy Action and Resource matching), the evaluator is checked
against it.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request

import boto3
import botocore.session
import pytest
from botocore.exceptions import ClientError

from securepipe import clock
from securepipe.policy import Policy, Request, evaluate
from securepipe.sandbox.account import Sandbox


def _role(sb: Sandbox, actions: list[str]) -> str:
    iam = sb.session.client("iam")
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole",
        "Principal": {"AWS": f"arn:aws:iam::{sb.resources.account_id}:root"}}]}
    arn = iam.create_role(RoleName="contractor", AssumeRolePolicyDocument=json.dumps(trust),
                          MaxSessionDuration=3600)["Role"]["Arn"]
    iam.put_role_policy(RoleName="contractor", PolicyName="broad", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}))
    return arn


def _session(sb: Sandbox, role_arn: str, policy: dict | None, duration: int = 900
             ) -> boto3.Session:
    kwargs = {"Policy": json.dumps(policy)} if policy else {}
    creds = sb.session.client("sts").assume_role(
        RoleArn=role_arn, RoleSessionName="contractor-c01", DurationSeconds=duration,
        **kwargs)["Credentials"]
    bs = botocore.session.Session()
    for name, value in sb.session._session.instance_variables().items():
        bs.set_config_variable(name, value)
    bs.set_credentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    return boto3.Session(botocore_session=bs)


def _own_prefix_policy(bucket: str, key_arn: str) -> dict:
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
         "Resource": f"arn:aws:s3:::{bucket}/raw/c01/*"},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}",
         "Condition": {"StringLike": {"s3:prefix": ["raw/c01/", "raw/c01/*"]}}},
        {"Effect": "Allow", "Action": "kms:GenerateDataKey", "Resource": key_arn,
         "Condition": {"StringEquals": {"kms:EncryptionContext:securepipe:contractor": "c01"}}},
    ]}


def _code(call) -> str:
    with pytest.raises(ClientError) as err:
        call()
    assert "emulated AWS enforcement" in err.value.response["Error"]["Message"]
    return str(err.value.response["Error"]["Code"])


@pytest.mark.parametrize("server", [False, True], ids=["in-process", "server"])
def test_session_policy_narrows_the_role(server: bool) -> None:
    with Sandbox(server=server, tls=server) as sb:
        bucket, key_arn = sb.resources.bucket("raw"), sb.resources.kms_key_arn
        admin = sb.session.client("s3")
        for key in ("raw/c01/a", "raw/c02/a"):
            admin.put_object(Bucket=bucket, Key=key, Body=b"voice")
        role = _role(sb, ["s3:*", "kms:*"])
        broad = _session(sb, role, None).client("s3")
        assert broad.get_object(Bucket=bucket, Key="raw/c02/a")["Body"].read() == b"voice"

        scoped = _session(sb, role, _own_prefix_policy(bucket, key_arn))
        s3, kms = scoped.client("s3"), scoped.client("kms")
        assert s3.get_object(Bucket=bucket, Key="raw/c01/a")["Body"].read() == b"voice"
        s3.put_object(Bucket=bucket, Key="raw/c01/b", Body=b"new")
        listed = s3.list_objects_v2(Bucket=bucket, Prefix="raw/c01/")["Contents"]
        assert {o["Key"] for o in listed} == {"raw/c01/a", "raw/c01/b"}
        assert _code(lambda: s3.get_object(Bucket=bucket, Key="raw/c02/a")) == "AccessDenied"
        assert _code(lambda: s3.list_objects_v2(Bucket=bucket, Prefix="raw/")) == "AccessDenied"
        assert _code(lambda: s3.list_objects_v2(Bucket=bucket)) == "AccessDenied"
        assert _code(lambda: s3.delete_object(Bucket=bucket, Key="raw/c01/a")) == "AccessDenied"
        kms.generate_data_key(KeyId=key_arn, KeySpec="AES_256",
                              EncryptionContext={"securepipe:contractor": "c01"})
        assert _code(lambda: kms.generate_data_key(
            KeyId=key_arn, KeySpec="AES_256",
            EncryptionContext={"securepipe:contractor": "c02"})) == "AccessDeniedException"
        assert _code(lambda: kms.decrypt(CiphertextBlob=b"x" * 64, KeyId=key_arn)) == (
            "AccessDeniedException")


def test_expired_session_is_refused_after_the_clock_moves(sandbox: Sandbox) -> None:
    bucket = sandbox.resources.bucket("raw")
    sandbox.session.client("s3").put_object(Bucket=bucket, Key="raw/c01/a", Body=b"v")
    s3 = _session(sandbox, _role(sandbox, ["s3:*"]), None, duration=900).client("s3")
    s3.get_object(Bucket=bucket, Key="raw/c01/a")
    # Margins of 20 s of wall time either side, so a loaded machine cannot flip the outcome.
    sandbox.move_clock(dt.timedelta(seconds=880))
    s3.get_object(Bucket=bucket, Key="raw/c01/a")          # still inside its 900 s
    sandbox.move_clock(dt.timedelta(seconds=40))
    assert _code(lambda: s3.get_object(Bucket=bucket, Key="raw/c01/a")) == "ExpiredToken"
    # The admin's long-term key is not a session: it keeps working.
    sandbox.session.client("s3").get_object(Bucket=bucket, Key="raw/c01/a")


def test_clock_resets_when_the_last_sandbox_closes() -> None:

    with Sandbox() as sb:
        sb.move_clock(dt.timedelta(days=1))
        assert clock.now() > dt.datetime.now(dt.UTC) + dt.timedelta(hours=23)
    assert abs(clock.now() - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=5)


def test_sigv2_presigned_urls_are_refused() -> None:
    """The emulation verifies SigV4 only; a SigV2 URL cannot be attributed, so it is refused."""
    from botocore.config import Config

    with Sandbox(server=True) as sb:
        bucket = sb.resources.bucket("raw")
        sb.session.client("s3").put_object(Bucket=bucket, Key="k", Body=b"voice")
        signer = sb.session.client("s3", config=Config(signature_version="s3"))
        url = signer.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=60)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url, timeout=10)
        assert err.value.code == 403
        assert b"cannot attribute" in err.value.read()


def test_expired_presigned_url_is_refused() -> None:
    from botocore.config import Config

    with Sandbox(server=True) as sb:
        bucket = sb.resources.bucket("raw")
        sb.session.client("s3").put_object(Bucket=bucket, Key="k", Body=b"voice")
        signer = sb.session.client("s3", config=Config(signature_version="s3v4"))
        url = signer.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=60)
        assert urllib.request.urlopen(url, timeout=10).read() == b"voice"
        sb.move_clock(dt.timedelta(seconds=61))
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url, timeout=10)
        assert err.value.code == 403
        assert b"Request has expired" in err.value.read()


# Where moto does enforce (identity-policy Action and Resource matching for IAM users), the
# kit's evaluator must agree with it.
DIFFERENTIAL: list[dict | list] = [
    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::{b}/raw/c01/*"},
    {"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"},
    [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
     {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::{b}/raw/c02/*"}],
]
# Not included: "?" in a Resource, which AWS documents as a one-character wildcard and moto 5.2
# does not match (our evaluator follows AWS; see tests/test_policy.py).
PROBES = [("get_object", "s3:GetObject", "raw/c01/a"), ("get_object", "s3:GetObject", "raw/c02/a"),
          ("get_object", "s3:GetObject", "raw/c10/a"), ("put_object", "s3:PutObject", "raw/c01/n")]


@pytest.mark.parametrize("statement", DIFFERENTIAL, ids=["exact", "wild-action", "deny-wins"])
def test_evaluator_agrees_with_moto_where_moto_enforces(
    sandbox: Sandbox, statement: dict | list
) -> None:
    from moto.core import enable_iam_authentication

    bucket = sandbox.resources.bucket("raw")
    for key in ("raw/c01/a", "raw/c02/a", "raw/c10/a"):
        sandbox.session.client("s3").put_object(Bucket=bucket, Key=key, Body=b"v")
    statements = statement if isinstance(statement, list) else [statement]
    doc = json.loads(json.dumps({"Version": "2012-10-17", "Statement": statements})
                     .replace("{b}", bucket))
    iam = sandbox.session.client("iam")
    iam.create_user(UserName="probe")
    iam.put_user_policy(UserName="probe", PolicyName="p", PolicyDocument=json.dumps(doc))
    key = iam.create_access_key(UserName="probe")["AccessKey"]
    s3 = boto3.client("s3", region_name=sandbox.region, aws_access_key_id=key["AccessKeyId"],
                      aws_secret_access_key=key["SecretAccessKey"])
    policy = Policy.from_document("p", doc)
    with enable_iam_authentication():
        for method, action, obj in PROBES:
            kwargs = {"Bucket": bucket, "Key": obj}
            if method == "put_object":
                kwargs["Body"] = b"x"
            try:
                getattr(s3, method)(**kwargs)
                moto_allowed = True
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "AccessDenied"
                moto_allowed = False
            ours = evaluate(Request(action, f"arn:aws:s3:::{bucket}/{obj}"), identity=[policy])
            assert ours.allowed == moto_allowed, (statement, obj)


def test_sessions_issued_after_a_clock_move_last_their_duration(sandbox: Sandbox) -> None:
    bucket = sandbox.resources.bucket("raw")
    sandbox.session.client("s3").put_object(Bucket=bucket, Key="raw/c01/a", Body=b"v")
    role = _role(sandbox, ["s3:*"])
    sandbox.move_clock(dt.timedelta(days=365))
    s3 = _session(sandbox, role, None, duration=900).client("s3")
    s3.get_object(Bucket=bucket, Key="raw/c01/a")      # issued by the sandbox clock: valid
    sandbox.move_clock(dt.timedelta(seconds=901))
    assert _code(lambda: s3.get_object(Bucket=bucket, Key="raw/c01/a")) == "ExpiredToken"


def test_copying_from_another_prefix_is_a_read_of_the_source(sandbox: Sandbox) -> None:
    """AWS authorises CopyObject as a PutObject on the target and a GetObject on the source."""
    bucket, key_arn = sandbox.resources.bucket("raw"), sandbox.resources.kms_key_arn
    sandbox.session.client("s3").put_object(Bucket=bucket, Key="raw/c02/a", Body=b"voice")
    sandbox.session.client("s3").put_object(Bucket=bucket, Key="raw/c01/own", Body=b"mine")
    role = _role(sandbox, ["s3:*", "kms:*"])
    s3 = _session(sandbox, role, _own_prefix_policy(bucket, key_arn)).client("s3")
    s3.copy_object(Bucket=bucket, Key="raw/c01/copy", CopySource={"Bucket": bucket,
                                                                  "Key": "raw/c01/own"})
    assert _code(lambda: s3.copy_object(
        Bucket=bucket, Key="raw/c01/stolen",
        CopySource={"Bucket": bucket, "Key": "raw/c02/a"})) == "AccessDenied"
    from securepipe.sandbox import emulation as enforcement

    assert enforcement.REFUSALS[-1].resource == f"arn:aws:s3:::{bucket}/raw/c02/a"


@pytest.mark.parametrize("server", [False, True], ids=["in-process", "server"])
def test_s3_control_and_cloudwatch_are_authorised_by_their_iam_actions(server: bool) -> None:
    """S3 Control's account Block Public Access is authorised as
    s3:GetAccountPublicAccessBlock (not as an object read in a bucket named after the account),
    and CloudWatch (signed as "monitoring") as cloudwatch:<Operation>, as AWS does."""
    from securepipe.encryption.hardening import s3control_client

    with Sandbox(server=server) as sb:
        account = sb.resources.account_id
        reader = _session(sb, _role(sb, ["s3:GetAccountPublicAccessBlock",
                                         "cloudwatch:DescribeAlarms"]), None)
        control = s3control_client(reader)
        with pytest.raises(ClientError) as err:  # allowed: moto answers that none is set
            control.get_public_access_block(AccountId=account)
        assert err.value.response["Error"]["Code"] == "NoSuchPublicAccessBlockConfiguration"
        assert _code(lambda: control.put_public_access_block(
            AccountId=account, PublicAccessBlockConfiguration={"BlockPublicAcls": True})) == (
            "AccessDenied")
        reader.client("cloudwatch").describe_alarms()  # allowed
        assert _code(lambda: reader.client("cloudwatch").put_metric_data(
            Namespace="x", MetricData=[{"MetricName": "m", "Value": 1.0}])) in (
            "AccessDenied", "AccessDeniedException")
