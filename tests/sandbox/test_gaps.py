"""Re-probe the moto gaps the kit works around: if moto closes one, this fails and we revisit."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from securepipe.sandbox.account import KMS_ALIAS, Sandbox
from securepipe.sandbox.gaps import MOTO_GAPS, gap, gaps_for_step


def test_register_is_well_formed() -> None:
    ids = [g.id for g in MOTO_GAPS]
    assert len(ids) == len(set(ids))
    assert all(g.response in {"emulate", "check"} for g in MOTO_GAPS)
    assert all(1 <= g.step <= 6 for g in MOTO_GAPS)
    assert gap("kms-key-deletion").step == 5
    assert {g.id for g in gaps_for_step(2)} >= {"sts-session-policy", "sts-expiry"}
    with pytest.raises(KeyError):
        gap("no-such-gap")


def test_kms_disabled_key_still_encrypts(sandbox: Sandbox) -> None:
    kms = sandbox.session.client("kms")
    kms.disable_key(KeyId=sandbox.resources.kms_key_id)
    assert kms.describe_key(KeyId=KMS_ALIAS)["KeyMetadata"]["KeyState"] == "Disabled"
    # Real AWS answers DisabledException here; moto keeps working (gap "kms-key-deletion").
    kms.encrypt(KeyId=sandbox.resources.kms_key_id, Plaintext=b"still works")


def test_s3_default_sse_stores_plaintext(sandbox: Sandbox) -> None:
    from moto.s3.models import s3_backends

    s3 = sandbox.session.client("s3")
    bucket = sandbox.resources.bucket("raw")
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {
            "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": sandbox.resources.kms_key_arn}}]},
    )
    head = s3.put_object(Bucket=bucket, Key="k", Body=b"PLAINTEXT-VOICE")
    assert head["ServerSideEncryption"] == "aws:kms"  # says encrypted...
    stored = s3_backends[sandbox.resources.account_id]["aws"].buckets[bucket].keys["k"].value
    assert stored == b"PLAINTEXT-VOICE"  # ...but the bytes are plaintext (gap "s3-default-sse")


def test_request_metrics_not_stored(sandbox: Sandbox) -> None:
    s3 = sandbox.session.client("s3")
    bucket = sandbox.resources.bucket("raw")
    # moto 5.2 routes this PUT as a CreateBucket and refuses it, or drops it.
    with contextlib.suppress(ClientError):
        s3.put_bucket_metrics_configuration(
            Bucket=bucket, Id="all", MetricsConfiguration={"Id": "all"}
        )
    try:
        stored = s3.list_bucket_metrics_configurations(Bucket=bucket)
    except (ClientError, NotImplementedError):
        stored = {}
    assert not stored.get("MetricsConfigurationList"), "moto now stores request metrics"


def test_cloudtrail_records_no_events(sandbox: Sandbox) -> None:
    session = sandbox.session
    trail_bucket = sandbox.resources.bucket("audit")
    ct = session.client("cloudtrail")
    ct.create_trail(Name="data-events", S3BucketName=trail_bucket)
    ct.start_logging(Name="data-events")
    session.client("s3").put_object(Bucket=sandbox.resources.bucket("raw"), Key="k", Body=b"x")
    with pytest.raises((NotImplementedError, ClientError)):
        ct.lookup_events()


def test_moto_deny_conditions_always_match() -> None:
    """Why the sandbox replaces moto's bucket-policy check (gap "s3-policy-conditions")."""
    import json

    from moto.iam.access_control import IAMPolicy, PermissionResult

    from securepipe.encryption.hardening import hardened_bucket_policy

    key_arn = "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000"
    policy = json.dumps(hardened_bucket_policy("b", key_arn))
    # moto cannot know whether the request used TLS, yet answers DENIED: it treats the
    # aws:SecureTransport condition as matching, so a TLS-only policy would block HTTPS too.
    verdict = IAMPolicy(policy).is_action_permitted("s3:GetObject", "arn:aws:s3:::b/k")
    assert verdict == PermissionResult.DENIED


def test_moto_lets_anyone_shorten_compliance_retention() -> None:
    """Probe of gap s3-object-lock-retention on plain moto (no sandbox, so no emulation)."""
    import datetime as dt

    import boto3
    from moto import mock_aws

    assert gap("s3-object-lock-retention").response == "emulate"
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="probe", ObjectLockEnabledForBucket=True)
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
        version = s3.put_object(Bucket="probe", Key="k", Body=b"x", ObjectLockMode="COMPLIANCE",
                                ObjectLockRetainUntilDate=later,
                                ChecksumAlgorithm="SHA256")["VersionId"]
        soon = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
        s3.put_object_retention(Bucket="probe", Key="k", VersionId=version,
                                Retention={"Mode": "COMPLIANCE", "RetainUntilDate": soon},
                                ChecksumAlgorithm="SHA256")   # AWS refuses this; moto does not
        head = s3.head_object(Bucket="probe", Key="k", VersionId=version)
        assert head["ObjectLockRetainUntilDate"] < later - dt.timedelta(days=1)


def test_moto_serves_any_signature_and_the_sandbox_does_not() -> None:
    """The gap behind sigv4-signatures: moto alone answers a request with a made-up key and
    signature; the sandbox refuses it."""
    import requests
    from moto import mock_aws

    from securepipe.sandbox.gaps import EMULATION_GUARANTEES, EMULATION_LIMITS

    headers = {"Authorization": "AWS4-HMAC-SHA256 Credential=AKIAMADEUP0000000000/20260101/"
                                "eu-west-1/s3/aws4_request, SignedHeaders=host;x-amz-date, "
                                "Signature=" + "0" * 64,
               "x-amz-date": "20260101T000000Z", "x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
    url = "https://s3.eu-west-1.amazonaws.com/"
    with mock_aws():
        assert requests.get(url, headers=headers, timeout=10).status_code == 200
    with Sandbox():
        refused = requests.get(url, headers=headers, timeout=10)
        assert refused.status_code == 403 and b"AccessDenied" in refused.content
    assert gap("sigv4-signatures").response == "emulate"
    assert EMULATION_GUARANTEES and EMULATION_LIMITS


def _claim_race(make_client: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Two threads claim one item with the same conditional UpdateItem while moto's condition
    evaluation is slowed down (so the two requests surely overlap); the winners' names."""
    import threading

    import moto.dynamodb.models as ddb_models

    parse = ddb_models.create_condition_expression_parser

    def slow_parser(*args: Any, **kwargs: Any) -> Any:
        parser = parse(*args, **kwargs)
        time.sleep(0.2)
        return parser

    clients = {me: make_client() for me in ("spk01", "spk02")}
    clients["spk01"].create_table(
        TableName="race", KeySchema=[{"AttributeName": "speaker", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "speaker", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST")
    monkeypatch.setattr(ddb_models, "create_condition_expression_parser", slow_parser)
    winners: list[str] = []
    start = threading.Barrier(2)

    def claim(me: str) -> None:
        start.wait()
        try:
            clients[me].update_item(
                TableName="race", Key={"speaker": {"S": "claim#c01/s-1"}},
                UpdateExpression="SET claimant = if_not_exists(claimant, :me)",
                ConditionExpression="attribute_not_exists(claimant) OR claimant = :me",
                ExpressionAttributeValues={":me": {"S": me}})
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ConditionalCheckFailedException"
        else:
            winners.append(me)

    threads = [threading.Thread(target=claim, args=(me,)) for me in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return winners


def test_moto_lets_two_conditional_writes_pass_one_condition(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe of gap dynamodb-conditional-write on plain moto: both racers win."""
    import boto3
    from moto import mock_aws

    assert gap("dynamodb-conditional-write").response == "emulate"
    with mock_aws():
        winners = _claim_race(lambda: boto3.client("dynamodb", region_name="us-east-1"),
                              monkeypatch)
    assert sorted(winners) == ["spk01", "spk02"]


@pytest.mark.parametrize("server", [False, True], ids=["in-process", "server"])
def test_the_sandbox_gives_a_conditional_write_one_winner(
        server: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulation of gap dynamodb-conditional-write, in both modes: one racer wins."""
    with Sandbox(server=server) as sb:
        winners = _claim_race(lambda: sb.session.client("dynamodb"), monkeypatch)
        item = sb.session.client("dynamodb").get_item(
            TableName="race", Key={"speaker": {"S": "claim#c01/s-1"}}, ConsistentRead=True)
    assert len(winners) == 1 and item["Item"]["claimant"]["S"] == winners[0]
