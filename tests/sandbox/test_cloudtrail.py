"""CloudTrail-shaped events recorded from in-process botocore calls (securepipe.sandbox.cloudtrail).

moto records no CloudTrail events (gap cloudtrail-events); every event asserted here was built
by the kit's recorder from a real call to the sandbox, refused calls included.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError

from securepipe.audit.detector import AdapterStats, columns_from_events
from securepipe.errors import InvalidParameterError
from securepipe.sandbox.account import Sandbox
from securepipe.sandbox.cloudtrail import CloudTrailRecorder, principal_of
from securepipe.sandbox.gaps import gap

BODY = b"RIFF" + b"\x01voice-sample-bytes" * 50


@pytest.fixture
def recorded(sandbox: Sandbox) -> Iterator[tuple[Sandbox, CloudTrailRecorder]]:
    with CloudTrailRecorder() as recorder:
        recorder.attach(sandbox.session)  # the sandbox session predates the install
        yield sandbox, recorder


def _role_session(sb: Sandbox, source_identity: str) -> boto3.Session:
    iam = sb.session.client("iam")
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
        "Principal": {"AWS": sb.resources.admin_user_arn}}]}
    arn = iam.create_role(RoleName="securepipe-training",
                          AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    read_only = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
    iam.put_role_policy(RoleName="securepipe-training", PolicyName="read",
                        PolicyDocument=json.dumps(read_only))
    creds = sb.session.client("sts").assume_role(
        RoleArn=arn, RoleSessionName="trainer", SourceIdentity=source_identity)["Credentials"]
    return boto3.Session(aws_access_key_id=creds["AccessKeyId"],
                         aws_secret_access_key=creds["SecretAccessKey"],
                         aws_session_token=creds["SessionToken"], region_name=sb.region)


def test_admin_s3_and_kms_calls_are_recorded(recorded: tuple[Sandbox, CloudTrailRecorder]) -> None:
    sb, recorder = recorded
    bucket, key_arn = sb.resources.bucket("raw"), sb.resources.kms_key_arn
    s3, kms = sb.session.client("s3"), sb.session.client("kms")
    s3.put_object(Bucket=bucket, Key="raw/c01/s0001.wav", Body=BODY)
    assert s3.get_object(Bucket=bucket, Key="raw/c01/s0001.wav")["Body"].read() == BODY
    data_key = kms.generate_data_key(KeyId=key_arn, KeySpec="AES_256",
                                     EncryptionContext={"securepipe:contractor": "c01"})
    kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"],
                EncryptionContext={"securepipe:contractor": "c01"})

    names = [(e["eventSource"], e["eventName"]) for e in recorder.events]
    assert names == [("s3.amazonaws.com", "PutObject"), ("s3.amazonaws.com", "GetObject"),
                     ("kms.amazonaws.com", "GenerateDataKey"), ("kms.amazonaws.com", "Decrypt")]
    put, get, gen, dec = recorder.events
    for event in recorder.events:
        identity = event["userIdentity"]
        assert identity["type"] == "IAMUser"
        assert identity["arn"] == sb.resources.admin_user_arn
        assert identity["accountId"] == sb.resources.account_id
        assert identity["accessKeyId"].startswith("AKIA")
        assert event["eventType"] == "AwsApiCall" and event["eventVersion"]
        assert event["awsRegion"] == sb.region and event["requestID"] and event["eventID"]
        assert event["recipientAccountId"] == sb.resources.account_id
        assert "errorCode" not in event
    assert get["requestParameters"]["bucketName"] == bucket
    assert get["requestParameters"]["key"] == "raw/c01/s0001.wav"
    assert get["additionalEventData"]["bytesTransferredOut"] == len(BODY)
    assert put["additionalEventData"]["bytesTransferredIn"] == len(BODY)
    assert get["readOnly"] and not put["readOnly"]
    assert not get["managementEvent"] and get["eventCategory"] == "Data"
    assert {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/raw/c01/s0001.wav"} in (
        get["resources"])
    assert gen["managementEvent"] and gen["readOnly"]
    assert gen["requestParameters"]["encryptionContext"] == {"securepipe:contractor": "c01"}
    assert gen["resources"][0]["ARN"] == key_arn and dec["resources"][0]["ARN"] == key_arn
    # never the payload, the data key or the ciphertext
    text = recorder.to_jsonl()
    assert "voice-sample-bytes" not in text
    assert base64.b64encode(data_key["Plaintext"]).decode() not in text
    assert base64.b64encode(data_key["CiphertextBlob"]).decode() not in text
    assert recorder.select("GetObject", source="s3", data_only=True) == [get]


def test_assumed_role_session_and_refusals(recorded: tuple[Sandbox, CloudTrailRecorder]) -> None:
    sb, recorder = recorded
    bucket = sb.resources.bucket("features")
    sb.session.client("s3").put_object(Bucket=bucket, Key="features/c01/s1.npy", Body=b"f" * 64)
    role = _role_session(sb, "alice@example.org").client("s3")  # created after the install
    role.get_object(Bucket=bucket, Key="features/c01/s1.npy")
    with pytest.raises(ClientError):  # the role may only read: the kit's emulated refusal
        role.put_object(Bucket=bucket, Key="features/c01/s2.npy", Body=b"x")
    with pytest.raises(ClientError):  # moto's own error response
        role.get_object(Bucket=bucket, Key="features/c01/missing.npy")

    get, put, missing = recorder.select(source="s3")[-3:]
    identity = get["userIdentity"]
    assert identity["type"] == "AssumedRole"
    assert identity["arn"] == (f"arn:aws:sts::{sb.resources.account_id}:assumed-role/"
                               "securepipe-training/trainer")
    assert identity["accessKeyId"].startswith("ASIA")
    assert identity["principalId"].endswith(":trainer")
    issuer = identity["sessionContext"]["sessionIssuer"]
    assert issuer["type"] == "Role" and issuer["userName"] == "securepipe-training"
    assert issuer["arn"] == f"arn:aws:iam::{sb.resources.account_id}:role/securepipe-training"
    assert identity["sessionContext"]["sourceIdentity"] == "alice@example.org"
    assert get["additionalEventData"]["bytesTransferredOut"] == 64
    assert principal_of(get) == identity["arn"]
    assert put["eventName"] == "PutObject" and put["errorCode"] == "AccessDenied"
    assert "emulated AWS enforcement" in put["errorMessage"]
    assert put["additionalEventData"]["bytesTransferredIn"] == 0
    assert missing["errorCode"] == "NoSuchKey"
    assert missing["additionalEventData"]["bytesTransferredOut"] == 0


def test_event_time_follows_the_sandbox_clock(
        recorded: tuple[Sandbox, CloudTrailRecorder]) -> None:
    sb, recorder = recorded
    s3 = sb.session.client("s3")
    bucket = sb.resources.bucket("raw")
    s3.list_objects_v2(Bucket=bucket)
    sb.move_clock(dt.timedelta(days=3))
    s3.list_objects_v2(Bucket=bucket)
    before, after = (dt.datetime.strptime(e["eventTime"], "%Y-%m-%dT%H:%M:%SZ")
                     for e in recorder.events)
    assert dt.timedelta(days=3) <= after - before < dt.timedelta(days=3, minutes=1)


def test_recorded_events_feed_the_detector(recorded: tuple[Sandbox, CloudTrailRecorder]) -> None:
    sb, recorder = recorded
    s3 = sb.session.client("s3")
    bucket = sb.resources.bucket("raw")
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"raw/c0{i}/s.wav", Body=b"v" * 10)
        s3.get_object(Bucket=bucket, Key=f"raw/c0{i}/s.wav")
    stats = AdapterStats()
    cols = columns_from_events(recorder.events, stats=stats)
    assert (stats.accepted, stats.ignored, stats.rejected) == (3, 3, 0)
    assert len(set(cols.prefix.tolist())) == 3 and cols.bytes.tolist() == [10, 10, 10]


def test_install_attach_and_uninstall(sandbox: Sandbox) -> None:
    bucket = sandbox.resources.bucket("raw")
    recorder = CloudTrailRecorder(services={"s3"})
    recorder.attach(sandbox.session)
    recorder.attach(sandbox.session)  # idempotent
    with recorder:  # installed *and* attached: still one event per call
        creds = sandbox.session.get_credentials()
        fresh = boto3.Session(aws_access_key_id=creds.access_key,
                              aws_secret_access_key=creds.secret_key, region_name=sandbox.region)
        recorder.attach(fresh)
        fresh.client("s3").list_objects_v2(Bucket=bucket)  # global and attached handlers
        sandbox.session.client("s3").head_bucket(Bucket=bucket)  # attached only
        sandbox.session.client("kms").list_keys()  # not a recorded service
    sandbox.session.client("s3").get_bucket_versioning(Bucket=bucket)  # attached, not installed
    assert [e["eventName"] for e in recorder.events] == [
        "ListObjectsV2", "HeadBucket", "GetBucketVersioning"]
    other = CloudTrailRecorder()
    sandbox.session.client("s3").list_objects_v2(Bucket=bucket)  # never installed: nothing
    assert other.events == []
    with pytest.raises(InvalidParameterError):
        CloudTrailRecorder(services={"iam"})


def test_the_gap_is_registered() -> None:
    assert gap("cloudtrail-events").response == "emulate"
