"""Step 2: credentials scoped to one contractor (securepipe.access.credentials), and the f-string
anti-pattern.

Who may do what is decided by the kit's evaluator (securepipe.policy) and, against the sandbox,
by its emulated enforcement: moto itself stores session policies but enforces none of them.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import matplotlib
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, assume, example, given, settings
from id_strategies import hostile_ids, valid_ids

from securepipe.access import credentials as access
from securepipe.access.credentials import (
    ACTIONS,
    MAX_PRESIGN_S,
    MAX_SESSION_POLICY_CHARS,
    ContractorCredentials,
    contractor_prefix,
    contractor_role_policy,
    contractor_session,
    contractor_session_policy,
    ensure_contractor_role,
    serialise_session_policy,
    vend_contractor_credentials,
)
from securepipe.access.presigned import presign_get
from securepipe.access.review import (
    AccessMatrix,
    BroadGrant,
    Principal,
    access_matrix,
    broad_grants,
    role_principal,
    session_principal,
)
from securepipe.errors import InvalidParameterError
from securepipe.lessons.antipatterns import fstring_session_policy
from securepipe.policy import Policy, Request, evaluate
from securepipe.sandbox.account import Sandbox

matplotlib.use("Agg")

BUCKET = "securepipe-raw-210000000001-eu-west-1"
KEY_ARN = "arn:aws:kms:eu-west-1:210000000001:key/01234567-89ab-cdef-0123-456789abcdef"
ROLE_ARN = "arn:aws:iam::210000000001:role/securepipe-contractor"
ROLE = Principal("role", (Policy.from_document(
    "role", contractor_role_policy(bucket=BUCKET, key_arn=KEY_ARN)),))
FAST = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
CONTRACTORS = ("c1", "c10", "acme-voice", "b2", "zeta-labs-0042")


class NoAws:
    """A stand-in session: any attempt to reach AWS fails the test."""

    def client(self, *args: object, **kwargs: object) -> Any:
        raise AssertionError("an AWS client was created")

    resource = client


def _vend_kwargs(**overrides: object) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"role_arn": ROLE_ARN, "contractor": "c1", "bucket": BUCKET,
                              "key_arn": KEY_ARN}
    kwargs.update(overrides)
    return kwargs


def _code(call: Any) -> str:
    with pytest.raises(ClientError) as err:
        call()
    return str(err.value.response["Error"]["Code"])


@pytest.fixture
def role(sandbox: Sandbox) -> Iterator[str]:
    res = sandbox.resources
    yield ensure_contractor_role(sandbox.session, bucket=res.bucket("raw"),
                                 key_arn=res.kms_key_arn)


def _vend(sb: Sandbox, role_arn: str, contractor: str, **kw: Any) -> ContractorCredentials:
    res = sb.resources
    return vend_contractor_credentials(sb.session, role_arn=role_arn, contractor=contractor,
                                       bucket=res.bucket("raw"), key_arn=res.kms_key_arn, **kw)


# -- hostile ids never reach AWS --------------------------------------------------------------


@settings(FAST, max_examples=5000)
@given(hostile_ids)
@example("*")
@example("c1\"},{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*")
@example("${aws:username}")
@example("\u04411")
@example("c1\x00")
@example("a" * 33)
def test_hostile_contractor_ids_are_refused_before_any_aws_call(value: object) -> None:
    with pytest.raises(InvalidParameterError):
        vend_contractor_credentials(NoAws(), **_vend_kwargs(contractor=value))  # type: ignore[arg-type]


@pytest.mark.parametrize("overrides", [
    {"duration_s": 899}, {"duration_s": 43_201}, {"duration_s": True}, {"duration_s": 900.0},
    {"duration_s": "900"}, {"bucket": "*"}, {"bucket": "Bucket"}, {"key_arn": "alias/x"},
    {"key_arn": KEY_ARN + "*"}, {"role_arn": "*"}, {"role_arn": ROLE_ARN + "\n"},
    {"role_arn": None},
])
def test_other_bad_arguments_are_refused_before_any_aws_call(overrides: dict[str, Any]) -> None:
    with pytest.raises(InvalidParameterError):
        vend_contractor_credentials(NoAws(), **_vend_kwargs(**overrides))  # type: ignore[arg-type]


# -- the session policy, decided by the kit's evaluator -----------------------------------------


def _allowed(policy: Policy, action: str, resource: str, **context: object) -> bool:
    request = Request(action, resource, None, {"aws:SecureTransport": "true", **context})
    return evaluate(request, identity=list(ROLE.identity), session=[policy]).allowed


@settings(FAST, max_examples=600)
@given(valid_ids, valid_ids)
@example("c1", "c10")
@example("c10", "c1")
@example("a", "a-")
@example("a" * 32, "a" * 31)
def test_session_policy_allows_only_its_own_prefix(own: str, other: str) -> None:
    assume(own != other)
    doc = contractor_session_policy(own, bucket=BUCKET, key_arn=KEY_ARN)
    me = session_principal(ROLE, own, serialise_session_policy(doc))
    mine, theirs = contractor_prefix(own), contractor_prefix(other)
    matrix = access_matrix([me], bucket=BUCKET, prefixes=[mine, theirs])
    for action in ACTIONS:
        assert matrix.allowed_prefixes(own, action) == [mine], action
    policy = me.session[0]  # type: ignore[index]
    arn = f"arn:aws:s3:::{BUCKET}"
    assert _allowed(policy, "s3:GetObject", f"{arn}/{mine}deep/er/clip.wav")
    assert not _allowed(policy, "s3:GetObject", f"{arn}/{theirs}clip.wav")
    assert not _allowed(policy, "s3:PutObject", f"{arn}/{theirs}deep/clip.wav")
    assert not _allowed(policy, "s3:ListBucket", arn, **{"s3:prefix": theirs + "x"})
    assert not _allowed(policy, "s3:ListBucket", arn)  # no prefix: the whole bucket
    assert not _allowed(policy, "s3:ListBucket", arn, **{"s3:prefix": "raw/"})
    context_key = "kms:EncryptionContext:securepipe:contractor"
    assert _allowed(policy, "kms:GenerateDataKey", KEY_ARN, **{context_key: own})
    assert _allowed(policy, "kms:Decrypt", KEY_ARN, **{context_key: own})
    assert not _allowed(policy, "kms:Decrypt", KEY_ARN, **{context_key: other})
    assert not _allowed(policy, "kms:GenerateDataKey", KEY_ARN)


def test_session_policy_shape() -> None:
    doc = contractor_session_policy("c1", bucket=BUCKET, key_arn=KEY_ARN)
    by_sid = {st["Sid"]: st for st in doc["Statement"]}
    assert set(by_sid) == {"OwnObjects", "ListOwnPrefix", "OwnDataKeys"}
    assert by_sid["OwnObjects"]["Resource"] == [f"arn:aws:s3:::{BUCKET}/raw/c1/*"]
    assert by_sid["ListOwnPrefix"]["Condition"] == {
        "StringLike": {"s3:prefix": ["raw/c1/", "raw/c1/*"]}}
    assert by_sid["OwnDataKeys"]["Resource"] == [KEY_ARN]
    assert by_sid["OwnDataKeys"]["Condition"] == {
        "StringEquals": {"kms:EncryptionContext:securepipe:contractor": "c1"}}
    with pytest.raises(InvalidParameterError):
        contractor_session_policy("*", bucket=BUCKET, key_arn=KEY_ARN)


def test_layout_matches_upload_and_envelope() -> None:
    from securepipe.encryption.envelope import SampleContext
    from securepipe.encryption.upload import RAW_PREFIX, sample_key

    assert access.RAW_PREFIX == RAW_PREFIX
    assert sample_key("c1", "s1").startswith(contractor_prefix("c1"))
    assert SampleContext("c1", "s1", "asr").as_encryption_context()[
        access.CONTEXT_CONTRACTOR_KEY] == "c1"


def test_serialise_is_compact_and_capped() -> None:
    doc = contractor_session_policy("c1", bucket=BUCKET, key_arn=KEY_ARN)
    text = serialise_session_policy(doc)
    assert text == json.dumps(doc, separators=(",", ":"))
    assert json.loads(text) == doc
    # The longest inputs the kit accepts still fit AssumeRole's limit.
    longest = contractor_session_policy(
        "a" * 32, bucket="b" * 63,
        key_arn="arn:aws-us-gov:kms:us-gov-west-1:210000000001:key/mrk-" + "0" * 32)
    assert len(serialise_session_policy(longest)) <= MAX_SESSION_POLICY_CHARS
    huge = {"Version": "2012-10-17", "Statement": [
        {"Sid": f"S{i}", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{BUCKET}/raw/c{i}/*"} for i in range(40)]}
    with pytest.raises(InvalidParameterError, match="2048"):
        serialise_session_policy(huge)
    for bad in ("{}", [], None, {"Version": "2012-10-17"}):
        with pytest.raises(InvalidParameterError):
            serialise_session_policy(bad)  # type: ignore[arg-type]


# -- the common pattern's failures --------------------------------------------------------------

ARTICLE_ROLE = Policy.from_document("article-role", {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "s3:*",
     "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"]}]})


def _article_allows(contractor_id: str, action: str, resource: str, **context: object) -> bool:
    session = Policy.from_document("fstring", fstring_session_policy(contractor_id, BUCKET))
    request = Request(action, resource, None, {"aws:SecureTransport": "true", **context})
    return evaluate(request, identity=[ARTICLE_ROLE], session=[session]).allowed


def test_fstring_wildcard_id_reads_everyone() -> None:
    other = f"arn:aws:s3:::{BUCKET}/c2/clip.wav"
    assert not _article_allows("c1", "s3:GetObject", other)
    assert _article_allows("*", "s3:GetObject", other)  # policy injection: every contractor
    assert json.loads(fstring_session_policy("*", BUCKET))["Statement"][0]["Resource"] == (
        f"arn:aws:s3:::{BUCKET}/*/*")


def test_fstring_quote_breaks_or_rewrites_the_policy() -> None:
    with pytest.raises(json.JSONDecodeError):
        json.loads(fstring_session_policy('c1"', BUCKET))
    injected = 'x/*"},{"Effect":"Allow","Action":"s3:*","Resource":"*","Sid":"x'
    doc = json.loads(fstring_session_policy(injected, BUCKET))  # valid JSON, another policy
    assert len(doc["Statement"]) == 3
    assert _article_allows(injected, "s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/c2/clip.wav")
    for hostile in ("*", 'c1"', injected):
        with pytest.raises(InvalidParameterError):
            contractor_session_policy(hostile, bucket=BUCKET, key_arn=KEY_ARN)


def test_fstring_unconditioned_list_shows_every_prefix() -> None:
    bucket_arn = f"arn:aws:s3:::{BUCKET}"
    assert _article_allows("c1", "s3:ListBucket", bucket_arn, **{"s3:prefix": "c2/"})
    assert _article_allows("c1", "s3:ListBucket", bucket_arn)  # the whole bucket
    kit = Policy.from_document("kit", contractor_session_policy("c1", bucket=BUCKET,
                                                                key_arn=KEY_ARN))
    assert not _allowed(kit, "s3:ListBucket", bucket_arn, **{"s3:prefix": "raw/c2/"})
    assert _allowed(kit, "s3:ListBucket", bucket_arn, **{"s3:prefix": "raw/c1/"})


# -- the role and vending, in the sandbox -------------------------------------------------------


def test_ensure_role_is_idempotent_and_converges(sandbox: Sandbox, role: str) -> None:
    res = sandbox.resources
    again = ensure_contractor_role(sandbox.session, bucket=res.bucket("raw"),
                                   key_arn=res.kms_key_arn, max_session_s=7200)
    assert again == role == f"arn:aws:iam::{res.account_id}:role/securepipe-contractor"
    iam = sandbox.session.client("iam")
    got = iam.get_role(RoleName="securepipe-contractor")["Role"]
    assert got["MaxSessionDuration"] == 7200
    trust = got["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{res.account_id}:root"}
    assert set(statement["Action"]) == {"sts:AssumeRole", "sts:SetSourceIdentity",
                                        "sts:TagSession"}
    assert iam.list_role_policies(RoleName="securepipe-contractor")["PolicyNames"] == [
        "securepipe-contractor-raw-access"]
    for bad in ({"max_session_s": 3599}, {"max_session_s": 43_201}, {"role_name": "a b"},
                {"role_name": ""}):
        with pytest.raises(InvalidParameterError):
            ensure_contractor_role(NoAws(), bucket=res.bucket("raw"),  # type: ignore[arg-type]
                                   key_arn=res.kms_key_arn, **bad)


def test_vending(sandbox: Sandbox, role: str) -> None:
    sent: list[dict[str, Any]] = []

    def capture(params: dict[str, Any], **_: Any) -> None:
        sent.append(dict(params))

    sandbox.session.events.register("provide-client-params.sts.AssumeRole", capture)
    before = dt.datetime.now(dt.UTC)
    creds = _vend(sandbox, role, "c1")
    assert creds.contractor == "c1" and creds.role_session_name == "contractor-c1"
    assert creds.expiration.tzinfo is not None
    ahead = (creds.expiration - before).total_seconds()
    assert 900 - 30 <= ahead <= 900 + 30

    expected = serialise_session_policy(contractor_session_policy(
        "c1", bucket=sandbox.resources.bucket("raw"), key_arn=sandbox.resources.kms_key_arn))
    assert creds.session_policy == expected
    from moto.sts.models import sts_backends

    stored = sts_backends[sandbox.resources.account_id]["aws"].assumed_roles[-1]
    assert stored.policy == expected
    assert stored.session_name == "contractor-c1"
    # SourceIdentity and the session tag are sent (moto 5.2 accepts both, stores neither).
    (params,) = sent
    assert params["SourceIdentity"] == "c1"
    assert params["Tags"] == [{"Key": "contractor", "Value": "c1"}]
    assert params["DurationSeconds"] == 900 and params["Policy"] == expected

    for text in (repr(creds), str(creds), f"{creds}"):
        assert creds.secret_access_key not in text
        assert creds.session_token not in text
        assert "c1" in text and creds.access_key_id in text


def test_duration_bounds(sandbox: Sandbox, role: str) -> None:
    creds = _vend(sandbox, role, "c1", duration_s=3600)  # the role's maximum
    ahead = (creds.expiration - dt.datetime.now(dt.UTC)).total_seconds()
    assert 3600 - 30 <= ahead <= 3600
    for bad in (899, 3601, 43_200):
        with pytest.raises(InvalidParameterError):
            _vend(sandbox, role, "c1", duration_s=bad)


def test_role_chaining_caps_duration_at_one_hour(sandbox: Sandbox, role: str) -> None:
    res = sandbox.resources
    ensure_contractor_role(sandbox.session, bucket=res.bucket("raw"), key_arn=res.kms_key_arn,
                           max_session_s=7200)
    assert _vend(sandbox, role, "c1", duration_s=7200)  # a long-term caller gets the maximum
    iam = sandbox.session.client("iam")
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole",
        "Principal": {"AWS": f"arn:aws:iam::{res.account_id}:root"}}]}
    vendor_arn = iam.create_role(RoleName="vendor",
                                 AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(RoleName="vendor", PolicyName="vend", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["iam:GetRole", "sts:AssumeRole", "sts:TagSession",
                                           "sts:SetSourceIdentity"], "Resource": "*"}]}))
    out = sandbox.session.client("sts").assume_role(RoleArn=vendor_arn, RoleSessionName="vendor")
    c = out["Credentials"]
    vendor = contractor_session(sandbox.session, ContractorCredentials(
        c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"], c["Expiration"], "vendor",
        "vendor", "{}"))
    with pytest.raises(InvalidParameterError, match="3600"):
        vend_contractor_credentials(vendor, role_arn=role, contractor="c1",
                                    bucket=res.bucket("raw"), key_arn=res.kms_key_arn,
                                    duration_s=3601)
    chained = vend_contractor_credentials(vendor, role_arn=role, contractor="c1",
                                          bucket=res.bucket("raw"), key_arn=res.kms_key_arn,
                                          duration_s=3600)
    assert chained.contractor == "c1"


def test_vended_credentials_are_scoped_in_the_sandbox(sandbox: Sandbox, role: str) -> None:
    """The sandbox's emulated enforcement applies the session policy moto only stores."""
    res = sandbox.resources
    bucket, key_arn = res.bucket("raw"), res.kms_key_arn
    admin = sandbox.session.client("s3")
    for key in ("raw/c1/a", "raw/c10/a", "raw/c2/a"):
        admin.put_object(Bucket=bucket, Key=key, Body=b"voice")
    me = contractor_session(sandbox.session, _vend(sandbox, role, "c1"))
    s3, kms = me.client("s3"), me.client("kms")
    assert s3.get_object(Bucket=bucket, Key="raw/c1/a")["Body"].read() == b"voice"
    s3.put_object(Bucket=bucket, Key="raw/c1/b", Body=b"new")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="raw/c1/")["Contents"]
    assert {o["Key"] for o in listed} == {"raw/c1/a", "raw/c1/b"}
    s3.delete_object(Bucket=bucket, Key="raw/c1/b")
    assert _code(lambda: s3.get_object(Bucket=bucket, Key="raw/c10/a")) == "AccessDenied"
    assert _code(lambda: s3.get_object(Bucket=bucket, Key="raw/c2/a")) == "AccessDenied"
    assert _code(lambda: s3.list_objects_v2(Bucket=bucket, Prefix="raw/")) == "AccessDenied"
    assert _code(lambda: s3.list_objects_v2(Bucket=bucket)) == "AccessDenied"
    kms.generate_data_key(KeyId=key_arn, KeySpec="AES_256",
                          EncryptionContext={"securepipe:contractor": "c1"})
    assert _code(lambda: kms.generate_data_key(
        KeyId=key_arn, KeySpec="AES_256",
        EncryptionContext={"securepipe:contractor": "c2"})) == "AccessDeniedException"
    sandbox.move_clock(dt.timedelta(seconds=901))
    assert _code(lambda: s3.get_object(Bucket=bucket, Key="raw/c1/a")) == "ExpiredToken"


def _deny(s3: Any, bucket: str, action: str, resource: str) -> None:
    """A bucket policy denying ``action`` to everyone on ``bucket/<resource>``."""
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Deny", "Principal": "*", "Action": action,
            "Resource": f"arn:aws:s3:::{bucket}/{resource}"}]}))


@pytest.mark.parametrize("server", [False, True], ids=["in-process", "server"])
def test_a_refused_request_changes_nothing(server: bool) -> None:
    """A refusal is not just an error message: moto never carries the request out."""
    with Sandbox(server=server) as sb:
        res = sb.resources
        bucket = res.bucket("raw")
        role_arn = ensure_contractor_role(sb.session, bucket=bucket, key_arn=res.kms_key_arn)
        admin = sb.session.client("s3")
        admin.put_object(Bucket=bucket, Key="raw/c2/a", Body=b"voice")
        s3 = contractor_session(sb.session, _vend(sb, role_arn, "c1")).client("s3")
        assert _code(lambda: s3.put_object(Bucket=bucket, Key="raw/c2/planted",
                                           Body=b"x")) == "AccessDenied"
        assert _code(lambda: s3.delete_object(Bucket=bucket, Key="raw/c2/a")) == "AccessDenied"
        versions = admin.list_object_versions(Bucket=bucket)
        assert [v["Key"] for v in versions.get("Versions", [])] == ["raw/c2/a"]
        assert not versions.get("DeleteMarkers")


@pytest.mark.parametrize("server", [False, True], ids=["in-process", "server"])
def test_delete_objects_is_authorised_per_key(server: bool) -> None:
    """DeleteObjects is checked key by key, as AWS does, not once against the bucket."""
    with Sandbox(server=server) as sb:
        res = sb.resources
        bucket = res.bucket("raw")
        role_arn = ensure_contractor_role(sb.session, bucket=bucket, key_arn=res.kms_key_arn)
        admin = sb.session.client("s3")
        for key in ("raw/c1/a", "raw/c1/b", "raw/c2/a", "locked/x"):
            admin.put_object(Bucket=bucket, Key=key, Body=b"voice")
        s3 = contractor_session(sb.session, _vend(sb, role_arn, "c1")).client("s3")

        def delete(client: Any, *keys: str) -> Any:
            return client.delete_objects(Bucket=bucket, Delete={
                "Objects": [{"Key": k} for k in keys]})

        delete(s3, "raw/c1/a")                                  # its own prefix: allowed
        assert _code(lambda: delete(s3, "raw/c1/b", "raw/c2/a")) == "AccessDenied"
        _deny(admin, bucket, "s3:DeleteObject*", "locked/*")
        assert _code(lambda: delete(admin, "raw/c1/b", "locked/x")) == "AccessDenied"
        left = {o["Key"] for o in admin.list_objects_v2(Bucket=bucket)["Contents"]}
        assert left == {"raw/c1/b", "raw/c2/a", "locked/x"}


@pytest.mark.parametrize("server", [False, True], ids=["in-process", "server"])
def test_bypassing_governance_retention_needs_its_own_permission(server: bool) -> None:
    with Sandbox(server=server) as sb:
        bucket = sb.resources.bucket("audit")                 # Object Lock enabled
        s3 = sb.session.client("s3")
        until = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        version = s3.put_object(Bucket=bucket, Key="locked", Body=b"x",
                                ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until,
                                ChecksumAlgorithm="SHA256")["VersionId"]
        _deny(s3, bucket, "s3:BypassGovernanceRetention", "*")
        assert _code(lambda: s3.delete_object(Bucket=bucket, Key="locked", VersionId=version,
                                              BypassGovernanceRetention=True)) == "AccessDenied"
        assert _code(lambda: s3.delete_objects(
            Bucket=bucket, BypassGovernanceRetention=True,
            Delete={"Objects": [{"Key": "locked", "VersionId": version}]})) == "AccessDenied"
        versions = s3.list_object_versions(Bucket=bucket, Prefix="locked")["Versions"]
        assert [v["VersionId"] for v in versions] == [version]


@pytest.mark.parametrize("server", [False, True], ids=["in-process", "server"])
def test_object_lock_retention_cannot_be_weakened_without_the_rules(server: bool) -> None:
    """moto lets anyone shorten any retention; AWS does not, and neither does the sandbox."""
    with Sandbox(server=server) as sb:
        bucket = sb.resources.bucket("audit")
        s3 = sb.session.client("s3")
        soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)

        def locked(mode: str) -> str:
            return s3.put_object(Bucket=bucket, Key=f"{mode}/x", Body=b"x", ObjectLockMode=mode,
                                 ObjectLockRetainUntilDate=later - dt.timedelta(days=1),
                                 ChecksumAlgorithm="SHA256")["VersionId"]

        def retain(key: str, version: str, mode: str, until: dt.datetime, **kw: Any) -> Any:
            return s3.put_object_retention(Bucket=bucket, Key=key, VersionId=version,
                                           Retention={"Mode": mode, "RetainUntilDate": until},
                                           ChecksumAlgorithm="SHA256", **kw)

        governance, compliance = locked("GOVERNANCE"), locked("COMPLIANCE")
        g, c = "GOVERNANCE/x", "COMPLIANCE/x"
        assert _code(lambda: retain(g, governance, "GOVERNANCE", soon)) == "AccessDenied"
        retain(g, governance, "GOVERNANCE", soon, BypassGovernanceRetention=True)  # permitted
        assert _code(lambda: retain(c, compliance, "COMPLIANCE", soon,
                                    BypassGovernanceRetention=True)) == "AccessDenied"
        assert _code(lambda: retain(c, compliance, "GOVERNANCE", later)) == "AccessDenied"
        retain(c, compliance, "COMPLIANCE", later)                # extending is always allowed
        head = s3.head_object(Bucket=bucket, Key="COMPLIANCE/x", VersionId=compliance)
        assert head["ObjectLockMode"] == "COMPLIANCE"
        assert head["ObjectLockRetainUntilDate"] > soon + dt.timedelta(days=1)


@pytest.mark.parametrize("server", [False, True], ids=["in-process", "server"])
def test_a_key_with_a_percent_sign_is_checked_as_that_key(server: bool) -> None:
    with Sandbox(server=server) as sb:
        bucket = sb.resources.bucket("raw")
        s3 = sb.session.client("s3")
        s3.put_object(Bucket=bucket, Key="secret%2Fx", Body=b"voice")
        _deny(s3, bucket, "s3:GetObject", "secret%2Fx")
        assert _code(lambda: s3.get_object(Bucket=bucket, Key="secret%2Fx")) == "AccessDenied"


def _chunked(request: Any, **_: Any) -> None:
    body = request.body if isinstance(request.body, bytes) else request.body.encode()
    framed = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"   # framing moto decodes
    request.body = framed
    request.headers["x-amz-content-sha256"] = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    request.headers["Content-Length"] = str(len(framed))


def _reordered_query(request: Any, **_: Any) -> None:
    request.url = request.url.replace("?delete", "?uploads&delete")


def _two_keys(request: Any, **_: Any) -> None:
    body = request.body if isinstance(request.body, bytes) else request.body.encode()
    request.body = body.replace(b"<Key>raw/ok</Key>", b"<Key>raw/ok</Key><Key>locked/x</Key>")
    request.headers["Content-Length"] = str(len(request.body))
    request.headers.pop("Content-MD5", None)


def _not_xml(request: Any, **_: Any) -> None:
    request.body = b"locked/x"
    request.headers["Content-Length"] = "8"
    request.headers.pop("Content-MD5", None)


@pytest.mark.parametrize("server", [False, True], ids=["in-process", "server"])
@pytest.mark.parametrize("rewrite", [_chunked, _reordered_query, _two_keys, _not_xml],
                         ids=["aws-chunked", "uploads&delete", "two-keys", "not-xml"])
def test_crafted_delete_objects_cannot_dodge_the_per_key_check(server: bool,
                                                               rewrite: Any) -> None:
    with Sandbox(server=server) as sb:
        bucket = sb.resources.bucket("raw")
        admin = sb.session.client("s3")
        for key in ("locked/x", "raw/ok"):
            admin.put_object(Bucket=bucket, Key=key, Body=b"voice")
        _deny(admin, bucket, "s3:DeleteObject*", "locked/*")
        target = "raw/ok" if rewrite in (_two_keys, _not_xml) else "locked/x"
        admin.meta.events.register("before-send.s3.DeleteObjects", rewrite)
        try:
            outcome = _code(lambda: admin.delete_objects(Bucket=bucket, Delete={
                "Objects": [{"Key": target}]}))
        finally:
            admin.meta.events.unregister("before-send.s3.DeleteObjects", rewrite)
        assert outcome == "AccessDenied"
        left = {o["Key"] for o in admin.list_objects_v2(Bucket=bucket)["Contents"]}
        assert "locked/x" in left


def _crafted(sb: Sandbox) -> Any:
    """Send a hand-made request to the in-process sandbox as its admin (moto checks no
    signature; the emulation reads the access key from the Authorization header)."""
    import requests

    key = sb.session.get_credentials().access_key
    auth = {"Authorization": f"AWS4-HMAC-SHA256 Credential={key}/20260101/{sb.region}/s3/"
                             "aws4_request, SignedHeaders=host, Signature=00"}

    def send(method: str, url: str, headers: dict[str, str] | None = None,
             data: bytes | None = None) -> Any:
        return requests.request(method, url, headers={**auth, **(headers or {})}, data=data,
                                timeout=10)
    return send


def _xml(key: str) -> bytes:
    return f"<Delete><Object><Key>{key}</Key></Object></Delete>".encode()


def _desync_signed() -> tuple[bytes, dict[str, str]]:
    allowed, protected = _xml("tmp/ok"), _xml("locked/x")
    n = max(len(allowed), len(protected))
    allowed, protected = allowed.ljust(n), protected.ljust(n)
    body = b"%x;\n" % n + protected + b"ab" + b"0;\n" + b"\r\n" + allowed + b"\r\n0\r\n\r\n"
    return body, {"x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                  "x-amz-decoded-content-length": str(n)}


def _desync_trailer() -> tuple[bytes, dict[str, str]]:
    head, dropped = b"<Delete><Object><Key>", b"tmp/"
    rest = b"locked/x</Key></Object></Delete>"
    first = head + dropped
    body = (b"%x\n" % len(first) + b" " * (len(dropped) - 2) + b"\r\n" + first + b"\r\n"
            + b"%x\r\n" % len(rest) + rest + b"\r\n0\r\n\r\n")
    return body, {"x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER"}


_CRAFTED_CASES = {   # case: the one action the bucket policy denies, which the request dodged
    "chunk-desync-signed": "s3:DeleteObject*",
    "chunk-desync-trailer": "s3:DeleteObject*",
    "host-header-elsewhere": "s3:DeleteObject*",
    "query-twice": "s3:GetObjectVersion",
    "get-retention": "s3:GetObject",
    "delete-with-body": "s3:DeleteObjectVersion",
    "bypass-false": "s3:BypassGovernanceRetention",
}


@pytest.mark.parametrize("case", sorted(_CRAFTED_CASES))
def test_requests_moto_could_read_another_way_are_refused(case: str) -> None:
    """Where the emulation and moto could read one request two ways, it is refused, and moto
    never carries it out (each case was carried out by moto before)."""
    with Sandbox() as sb:
        bucket = sb.resources.bucket("audit")                 # versioned, Object Lock on
        s3 = sb.session.client("s3")
        old = s3.put_object(Bucket=bucket, Key="locked/x", Body=b"old take",
                            ChecksumAlgorithm="SHA256")["VersionId"]
        until = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        version = s3.put_object(Bucket=bucket, Key="locked/x", Body=b"voice",
                                ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until,
                                ChecksumAlgorithm="SHA256")["VersionId"]
        _deny(s3, bucket, _CRAFTED_CASES[case], "locked/*")
        send = _crafted(sb)
        url = f"https://{bucket}.s3.amazonaws.com"
        if case.startswith("chunk-desync"):
            body, headers = (_desync_signed() if case.endswith("signed") else _desync_trailer())
            answer = send("POST", f"{url}/?delete", headers, body)
        elif case == "host-header-elsewhere":
            answer = send("POST", f"https://decoy.s3.amazonaws.com/{bucket}/?delete",
                          {"Host": "s3.amazonaws.com"}, _xml("locked/x"))
        elif case == "query-twice":
            answer = send("GET", f"{url}/locked/x?versionId={old}&versionId=")
        elif case == "get-retention":
            answer = send("GET", f"{url}/locked/x?retention")
        elif case == "delete-with-body":
            answer = send("DELETE", f"{url}/locked/x?x=1", {"Content-Type": "application/json"},
                          json.dumps({"versionId": old}).encode())
        else:
            answer = send("DELETE", f"{url}/locked/x?versionId={version}",
                          {"x-amz-bypass-governance-retention": "false"})
        assert answer.status_code == 403
        assert b"voice" not in answer.content and b"old take" not in answer.content
        s3.delete_bucket_policy(Bucket=bucket)
        versions = s3.list_object_versions(Bucket=bucket, Prefix="locked/")
        assert sorted(v["VersionId"] for v in versions.get("Versions", [])) == sorted(
            [old, version])
        assert not versions.get("DeleteMarkers")


def test_contractor_session_refuses_expired_or_wrong_arguments(sandbox: Sandbox) -> None:
    past = ContractorCredentials("AKIA", "secret", "token",
                                 dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1), "c1",
                                 "contractor-c1", "{}")
    with pytest.raises(InvalidParameterError, match="expired"):
        contractor_session(sandbox.session, past)
    with pytest.raises(InvalidParameterError):
        contractor_session(NoAws(), past)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError):
        contractor_session(sandbox.session, ("AKIA", "secret", "token"))  # type: ignore[arg-type]


def test_contractor_session_keeps_the_server_mode_endpoint() -> None:
    with Sandbox(server=True) as sb:
        res = sb.resources
        role = ensure_contractor_role(sb.session, bucket=res.bucket("raw"),
                                      key_arn=res.kms_key_arn)
        sb.session.client("s3").put_object(Bucket=res.bucket("raw"), Key="raw/c1/a", Body=b"v")
        me = contractor_session(sb.session, _vend(sb, role, "c1"))
        assert me.region_name == sb.session.region_name
        assert me.client("s3").meta.endpoint_url == sb.endpoint_url
        assert me.client("sts").meta.endpoint_url == sb.endpoint_url
        assert me.client("sts").get_caller_identity()["Arn"].endswith(
            ":assumed-role/securepipe-contractor/contractor-c1")
        url = presign_get(me, bucket=res.bucket("raw"), key="raw/c1/a", expires_in=60)
        assert url.startswith(sb.endpoint_url)
        query = parse_qs(urlsplit(url).query)
        assert query["X-Amz-Expires"] == ["60"]
        assert query["X-Amz-Credential"][0].startswith(
            me.get_credentials().access_key)  # signed by the contractor's temporary key
        assert "X-Amz-Security-Token" in query
        assert urllib.request.urlopen(url, timeout=10).read() == b"v"
        sb.move_clock(dt.timedelta(seconds=61))
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url, timeout=10)
        assert err.value.code == 403


@pytest.mark.parametrize("expires_in", [0, -1, MAX_PRESIGN_S + 1, 7 * 86400, True, 300.0, "300",
                                        None])
def test_presign_caps(expires_in: object) -> None:
    with pytest.raises(InvalidParameterError):
        presign_get(NoAws(), bucket=BUCKET, key="raw/c1/a",  # type: ignore[arg-type]
                    expires_in=expires_in)  # type: ignore[arg-type]


def test_presign_within_caps(sandbox: Sandbox) -> None:
    bucket = sandbox.resources.bucket("raw")
    for seconds in (1, 300, MAX_PRESIGN_S):
        url = presign_get(sandbox.session, bucket=bucket, key="raw/c1/a", expires_in=seconds)
        assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == [str(seconds)]
    for bad in ({"key": ""}, {"key": "x" * 1025}, {"key": None}, {"bucket": "*"}):
        kwargs: dict[str, Any] = {"bucket": bucket, "key": "raw/c1/a", **bad}
        with pytest.raises(InvalidParameterError):
            presign_get(NoAws(), **kwargs)  # type: ignore[arg-type]


def test_presigned_urls_fetched_in_process_with_requests_are_checked(sandbox: Sandbox,
                                                                      role: str) -> None:
    """moto answers the `requests` library through `responses`, past botocore's before-send:
    the emulation checks those requests too (expiry, and whose key signed the URL)."""
    import requests

    bucket = sandbox.resources.bucket("raw")
    admin = sandbox.session.client("s3")
    for key in ("raw/c1/a", "raw/c2/a"):
        admin.put_object(Bucket=bucket, Key=key, Body=b"voice")
    me = contractor_session(sandbox.session, _vend(sandbox, role, "c1"))
    own = presign_get(me, bucket=bucket, key="raw/c1/a", expires_in=60)
    other = presign_get(me, bucket=bucket, key="raw/c2/a", expires_in=60)
    assert requests.get(own, timeout=10).content == b"voice"
    refused = requests.get(other, timeout=10)
    assert refused.status_code == 403 and b"AccessDenied" in refused.content
    sandbox.move_clock(dt.timedelta(seconds=61))
    expired = requests.get(own, timeout=10)
    assert expired.status_code == 403 and b"expired" in expired.content


# -- the access review --------------------------------------------------------------------------


def test_access_matrix_for_five_contractors(sandbox: Sandbox, role: str) -> None:
    the_role = role_principal(sandbox.session, "securepipe-contractor")
    assert the_role.arn == role and the_role.session is None
    sessions = [session_principal(the_role, c, _vend(sandbox, role, c).session_policy)
                for c in CONTRACTORS]
    prefixes = [contractor_prefix(c) for c in CONTRACTORS]
    bucket = sandbox.resources.bucket("raw")
    matrix = access_matrix([the_role, *sessions], bucket=bucket, prefixes=prefixes)
    assert isinstance(matrix, AccessMatrix)
    assert len(matrix.cells) == (1 + len(CONTRACTORS)) * len(prefixes) * len(ACTIONS)
    for contractor in CONTRACTORS:
        for action in ACTIONS:
            assert matrix.allowed_prefixes(contractor, action) == [contractor_prefix(contractor)]
        assert matrix.decision(contractor, contractor_prefix(contractor), "List").statement == (
            f"{contractor}/session#ListOwnPrefix")
    for action in ACTIONS:
        assert matrix.allowed_prefixes(the_role.name, action) == prefixes
    assert broad_grants(matrix) == [BroadGrant(the_role.name, action, tuple(prefixes))
                                    for action in ACTIONS]
    rows = matrix.rows()
    assert len(rows) == len(matrix.cells)
    assert set(rows[0]) == {"principal", "prefix", "action", "decision", "statement"}
    assert {r["decision"] for r in rows} == {"Allow", "ImplicitDeny"}
    # Only the sessions: nobody reaches more than one contractor's prefix.
    assert broad_grants(access_matrix(sessions, bucket=bucket, prefixes=prefixes)) == []


def test_role_principal_reads_managed_policies(sandbox: Sandbox, role: str) -> None:
    iam = sandbox.session.client("iam")
    doc = {"Version": "2012-10-17", "Statement": [
        {"Sid": "Audit", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": "arn:aws:s3:::elsewhere/*"}]}
    arn = iam.create_policy(PolicyName="extra", PolicyDocument=json.dumps(doc))["Policy"]["Arn"]
    iam.attach_role_policy(RoleName="securepipe-contractor", PolicyArn=arn)
    principal = role_principal(sandbox.session, "securepipe-contractor")
    assert [p.name for p in principal.identity] == [
        "securepipe-contractor/securepipe-contractor-raw-access", "extra"]
    assert evaluate(Request("s3:GetObject", "arn:aws:s3:::elsewhere/x"),
                    identity=list(principal.identity)).allowed


def test_bucket_policy_takes_part() -> None:
    me = session_principal(ROLE, "c1", contractor_session_policy("c1", bucket=BUCKET,
                                                                 key_arn=KEY_ARN))
    assert me.arn is None
    deny = Policy.from_document("bucket-policy", {"Version": "2012-10-17", "Statement": [
        {"Sid": "NoDeletes", "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject",
         "Resource": f"arn:aws:s3:::{BUCKET}/*"},
        {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
         "Resource": f"arn:aws:s3:::{BUCKET}/*",
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})
    matrix = access_matrix([me], bucket=BUCKET, prefixes=["raw/c1/"], bucket_policy=deny)
    assert matrix.decision("c1", "raw/c1/", "Delete").effect == "ExplicitDeny"
    assert matrix.decision("c1", "raw/c1/", "Delete").statement == "bucket-policy#NoDeletes"
    assert matrix.allowed_prefixes("c1", "Get") == ["raw/c1/"]  # requests use TLS


def test_session_principal_arn_is_the_session() -> None:
    role = Principal("securepipe-contractor", ROLE.identity, None, ROLE_ARN)
    me = session_principal(role, "contractor-c1", "{\"Statement\": []}")
    assert me.arn == ("arn:aws:sts::210000000001:assumed-role/securepipe-contractor/"
                      "contractor-c1")


@pytest.mark.parametrize("kwargs", [
    {"principals": ["c1"]}, {"principals": [ROLE, ROLE]}, {"prefixes": ["a", "a"]},
    {"prefixes": [None]}, {"bucket": "*"}, {"bucket_policy": "{}"},
])
def test_access_matrix_refuses_bad_arguments(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"principals": [ROLE], "bucket": BUCKET, "prefixes": ["raw/c1/"]}
    args.update(kwargs)
    principals = args.pop("principals")
    with pytest.raises(InvalidParameterError):
        access_matrix(principals, **args)
    with pytest.raises(InvalidParameterError):
        access_matrix([ROLE], bucket=BUCKET, prefixes=["raw/c1/"]).allowed_prefixes("x", "Get")


def test_plot_access_matrix() -> None:
    from securepipe.lessons.viz import plot_access_matrix

    me = session_principal(ROLE, "c1", contractor_session_policy("c1", bucket=BUCKET,
                                                                 key_arn=KEY_ARN))
    prefixes = ["raw/c1/", "raw/c2/"]
    matrix = access_matrix([ROLE, me], bucket=BUCKET, prefixes=prefixes)
    fig = plot_access_matrix(matrix)
    ax = fig.axes[0]
    assert len(ax.get_xticklabels()) == len(prefixes) * len(ACTIONS)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["role", "c1"]
    grid = ax.images[0].get_array()
    assert grid.tolist() == [[1.0] * 8, [1.0] * 4 + [0.0] * 4]


def test_contractor_cannot_encrypt_for_another_contractor(tmp_path) -> None:
    """KMS (emulated policy) refuses a data key for c02's context: a typed EncryptionError."""
    from securepipe.encryption.envelope import Envelope, EnvelopeConfig, SampleContext
    from securepipe.errors import EncryptionError

    with Sandbox() as sb:
        raw, key_arn = sb.resources.bucket("raw"), sb.resources.kms_key_arn
        role = ensure_contractor_role(sb.session, bucket=raw, key_arn=key_arn)
        creds = vend_contractor_credentials(sb.session, role_arn=role, contractor="c01",
                                            bucket=raw, key_arn=key_arn)
        envelope = Envelope(contractor_session(sb.session, creds), EnvelopeConfig(key_arn))
        src = tmp_path / "clip.wav"
        src.write_bytes(b"RIFF" + bytes(1000))
        envelope.encrypt_file(src, tmp_path / "ok.msg", SampleContext("c01", "s1", "train"))
        with pytest.raises(EncryptionError, match="AccessDeniedException"):
            envelope.encrypt_file(src, tmp_path / "forged.msg", SampleContext("c02", "s1", "train"))
        assert not (tmp_path / "forged.msg").exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.wav", "ok.msg"]


@pytest.mark.parametrize(("grantee", "c02_allowed"), [
    ("account", False),   # the account delegates to IAM: the session policy still decides
    ("role", False),      # the role: added before the session policy, which still limits it
    ("session", True),    # the session itself: added after the session policy
])
def test_review_answers_the_three_principal_cases_as_aws(grantee: str,
                                                         c02_allowed: bool) -> None:
    """A bucket-policy Allow on every object, naming the account, the role or the session
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies.html#policies_session)."""
    role = Principal("securepipe-contractor", ROLE.identity, None, ROLE_ARN)
    me = session_principal(role, "contractor-c1", contractor_session_policy(
        "c1", bucket=BUCKET, key_arn=KEY_ARN))
    assert me.arn is not None
    account = ROLE_ARN.split(":")[4]
    named = {"account": f"arn:aws:iam::{account}:root", "role": ROLE_ARN,
             "session": me.arn}[grantee]
    grant = Policy.from_document("bucket-policy", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": named}, "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{BUCKET}/*"}]})
    matrix = access_matrix([me], bucket=BUCKET, prefixes=["raw/c1/", "raw/c2/"],
                           bucket_policy=grant)
    assert matrix.decision("contractor-c1", "raw/c1/", "Get").allowed
    assert matrix.decision("contractor-c1", "raw/c2/", "Get").allowed is c02_allowed


def test_contractor_session_checks_expiry_by_the_sandbox_clock(sandbox: Sandbox,
                                                               role: str) -> None:
    res = sandbox.resources
    creds = vend_contractor_credentials(sandbox.session, role_arn=role, contractor="c1",
                                        bucket=res.bucket("raw"), key_arn=res.kms_key_arn)
    contractor_session(sandbox.session, creds)
    sandbox.move_clock(dt.timedelta(seconds=901))
    with pytest.raises(InvalidParameterError, match="expired"):
        contractor_session(sandbox.session, creds)


def test_a_one_character_contractor_id_is_refused_before_assume_role(sandbox: Sandbox,
                                                                      role: str) -> None:
    res = sandbox.resources
    with pytest.raises(InvalidParameterError, match="SourceIdentity"):
        vend_contractor_credentials(sandbox.session, role_arn=role, contractor="c",
                                    bucket=res.bucket("raw"), key_arn=res.kms_key_arn)


def test_rerun_keeps_a_narrowed_trust_policy(sandbox: Sandbox, role: str) -> None:
    res = sandbox.resources
    iam = sandbox.session.client("iam")

    def trust() -> dict[str, Any]:
        doc = iam.get_role(RoleName="securepipe-contractor")["Role"]["AssumeRolePolicyDocument"]
        return json.loads(doc) if isinstance(doc, str) else doc

    vendor = f"arn:aws:iam::{res.account_id}:role/vendor"
    narrowed = {"Version": "2012-10-17", "Statement": [
        {"Sid": "OnlyTheVendor", "Effect": "Allow", "Principal": {"AWS": vendor},
         "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"]}]}
    iam.update_assume_role_policy(RoleName="securepipe-contractor",
                                  PolicyDocument=json.dumps(narrowed))
    ensure_contractor_role(sandbox.session, bucket=res.bucket("raw"), key_arn=res.kms_key_arn)
    assert trust() == narrowed  # a re-run without trusted_principals leaves it alone

    ensure_contractor_role(sandbox.session, bucket=res.bucket("raw"), key_arn=res.kms_key_arn,
                           trusted_principals=[vendor])
    statements = trust()["Statement"]
    assert [s["Sid"] for s in statements] == ["OnlyTheVendor", "AccountMayAssume"]
    assert statements[1]["Principal"] == {"AWS": vendor}
    for bad in ([], "arn:aws:iam::123456789012:root", ["*"], ["arn:aws:iam::1:root"]):
        with pytest.raises(InvalidParameterError):
            ensure_contractor_role(sandbox.session, bucket=res.bucket("raw"),
                                   key_arn=res.kms_key_arn,
                                   trusted_principals=bad)  # type: ignore[arg-type]


def test_rerun_keeps_statements_added_to_the_inline_policy(sandbox: Sandbox, role: str) -> None:
    res = sandbox.resources
    iam = sandbox.session.client("iam")
    name = "securepipe-contractor-raw-access"
    doc = iam.get_role_policy(RoleName="securepipe-contractor", PolicyName=name)["PolicyDocument"]
    doc = json.loads(doc) if isinstance(doc, str) else doc
    doc["Statement"].append({"Sid": "Extra", "Effect": "Deny", "Action": "s3:DeleteObject",
                             "Resource": f"arn:aws:s3:::{res.bucket('raw')}/raw/*"})
    iam.put_role_policy(RoleName="securepipe-contractor", PolicyName=name,
                        PolicyDocument=json.dumps(doc))
    ensure_contractor_role(sandbox.session, bucket=res.bucket("raw"), key_arn=res.kms_key_arn)
    again = iam.get_role_policy(RoleName="securepipe-contractor", PolicyName=name)[
        "PolicyDocument"]
    again = json.loads(again) if isinstance(again, str) else again
    assert again == doc
