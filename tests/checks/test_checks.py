"""The posture scorecard (securepipe.checks): every check passes on the hardened sandbox account
and fails on exactly the misconfiguration it targets, introduced alone; a check that cannot read
what it needs reports ``error`` with the reason and the run goes on.

Each test builds its own hardened account (two contractors, one upload left for the next
ingest run) so that breakers never leak into each other.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from hardened_world import Hardened, hardened_world

from securepipe.checks import REGISTRY, CheckConfig, Scorecard, run_checks
from securepipe.checks.scenarios import hardened_account
from securepipe.sandbox.account import Sandbox

logging.getLogger("aws_encryption_sdk").setLevel(logging.CRITICAL)

#: The only check that is not a plain pass on the hardened sandbox, and why.
SANDBOX_UNVERIFIABLE = {"s3_bulk_read_alarms"}  # moto does not store request metrics


#: moto answers HeadObject with a VersionId in a bucket whose versioning is Suspended with a 400
#: (AWS answers it): step 5's sweep, which heads every version, then cannot evaluate, and says so.
#: Breakers whose one misconfiguration is, by design, also another check's finding.
#: ``kms:*`` on ``*`` reaches every key, the audit signing key included: the role may kms:Sign
#: and so forge the trail, which is what audit_signing_key_separation exists to report.
ALSO_FAILS = {"iam_no_wildcard_admin_over_data": {"audit_signing_key_separation"}}

MOTO_SIDE_EFFECTS = {"s3_bucket_versioning": {"retention_no_expired_objects":
                                              "failed (400)"}}  # HeadObject


@pytest.fixture(scope="module", autouse=True)
def _one_botocore_loader() -> Iterator[None]:
    """Test speed only: every botocore session in this module shares one data loader, so the
    service models (megabytes of JSON) are parsed once, not once per session (the scenarios make
    a session per contractor and per envelope)."""
    import botocore.session

    original = botocore.session.create_loader
    loaders: dict[Any, Any] = {}

    def shared(search_path_string: Any = None) -> Any:
        if search_path_string not in loaders:
            loaders[search_path_string] = original(search_path_string)
        return loaders[search_path_string]

    botocore.session.create_loader = shared
    yield
    botocore.session.create_loader = original


@pytest.fixture
def hardened() -> Iterator[Hardened]:
    with hardened_world() as world:
        yield world


def _statuses(card: Scorecard) -> dict[str, str]:
    return {r.check.id: r.status for r in card.results}


def test_every_check_passes_on_the_hardened_sandbox(hardened: Hardened) -> None:
    card = hardened.run()
    statuses = _statuses(card)
    assert set(statuses) == set(REGISTRY)
    problems = {c: s for c, s in statuses.items() if s != "pass"}
    assert problems == dict.fromkeys(SANDBOX_UNVERIFIABLE, "unverifiable"), card.table()
    metrics = card.result("s3_bulk_read_alarms")
    assert {r.status for r in metrics.resources} == {"pass", "unverifiable"}
    assert "moto does not store request-metrics" in metrics.evidence
    assert card.exit_code("low") == 0
    review = card.access_review
    assert review is not None and review.contractors == ("c02", "c03")
    sessions = [n for n, k in review.kinds.items() if k == "contractor session"]
    for name in sessions:  # each contractor session reaches exactly its own prefix
        cid = name.split("/", 1)[1].split(" ", 1)[0]
        assert review.matrix.allowed_prefixes(name, "Get") == [f"raw/{cid}/"]
    assert "role/securepipe-contractor" in review.exempt
    assert "user/securepipe-admin" not in review.exempt  # the runner is reviewed, not exempt
    assert review.kinds["user/securepipe-admin"] == "user (runs this review)"


# -- one breaker per check ------------------------------------------------------------------------


def _policy(h: Hardened, bucket: str) -> dict[str, Any]:
    return json.loads(h.session.client("s3").get_bucket_policy(Bucket=bucket)["Policy"])


def _put_policy(h: Hardened, bucket: str, drop: set[str]) -> None:
    doc = _policy(h, bucket)
    doc["Statement"] = [st for st in doc["Statement"] if st.get("Sid") not in drop]
    h.session.client("s3").put_bucket_policy(Bucket=bucket, Policy=json.dumps(doc))


def _encryption(h: Hardened, *, key: bool, bucket_key: bool) -> None:
    default: dict[str, str] = {"SSEAlgorithm": "aws:kms"}
    if key:
        default["KMSMasterKeyID"] = h.sb.resources.kms_key_arn
    h.session.client("s3").put_bucket_encryption(
        Bucket=h.bucket("raw"), ServerSideEncryptionConfiguration={"Rules": [{
            "ApplyServerSideEncryptionByDefault": default, "BucketKeyEnabled": bucket_key}]})


def _account_pab_off(h: Hardened) -> None:
    from securepipe.encryption.hardening import s3control_client

    flags = dict.fromkeys(("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy",
                           "RestrictPublicBuckets"), True)
    s3control_client(h.session).put_public_access_block(
        AccountId=h.sb.account_id,
        PublicAccessBlockConfiguration={**flags, "BlockPublicPolicy": False})


def _plaintext_npy(h: Hardened) -> None:
    from securepipe.encryption.hardening import sse_kms_put_args

    buf = io.BytesIO()
    np.save(buf, np.zeros((4, 4), dtype=np.float32))
    h.session.client("s3").put_object(  # a debug export, attributed to its speaker
        Bucket=h.bucket("features"), Key="features/c02/spk02_u3/debug.npy",
        Body=buf.getvalue(), Metadata={"securepipe-speaker": "spk02",
                                       "securepipe-sample": "spk02_u3"},
        **sse_kms_put_args(h.sb.resources.kms_key_arn))


def _later(h: Hardened) -> None:
    ahead = h.config.clock() + dt.timedelta(days=8)
    h.config = dataclasses.replace(h.config, clock=lambda: ahead)


def _disable_raw_expiry(h: Hardened) -> None:
    from securepipe.retention.lifecycle import apply_lifecycle, lifecycle_rules

    rules = lifecycle_rules("raw")
    for rule in rules:
        if rule["ID"] == "raw-uploads":
            rule["Status"] = "Disabled"
    apply_lifecycle(h.session, h.bucket("raw"), rules)


def _withdraw(h: Hardened) -> None:
    from securepipe.retention.consent import ConsentRegistry

    registry = ConsentRegistry(h.session, create=False)
    registry.withdraw("spk03", h.config.clock().date() - dt.timedelta(days=1))


def _management_events_only(h: Hardened) -> None:
    h.session.client("cloudtrail").put_event_selectors(
        TrailName="securepipe-data-events", AdvancedEventSelectors=[{
            "Name": "management only",
            "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]}])


def _drop_get_alarm(h: Hardened) -> None:
    h.session.client("cloudwatch").delete_alarms(
        AlarmNames=[f"securepipe-GetRequests-{h.bucket('raw')}"])


def _tamper_trail(h: Hardened) -> None:
    from securepipe.audit.chain import read_shipped
    from securepipe.encryption.hardening import sse_kms_put_args

    key = h.scenario.extra["trail_key"]
    lines = read_shipped(h.session, h.bucket("audit"), key)
    edited = lines[:2] + lines[3:]  # one record quietly removed, as a new version
    h.session.client("s3").put_object(Bucket=h.bucket("audit"), Key=key,
                                      Body=("\n".join(edited) + "\n").encode(),
                                      **sse_kms_put_args(h.sb.resources.kms_key_arn))


def _contractor_may_sign(h: Hardened) -> None:
    role = h.scenario.extra["role_arn"].rsplit("/", 1)[-1]
    h.session.client("iam").put_role_policy(
        RoleName=role, PolicyName="sign-too", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": "kms:Sign",
                "Resource": h.sb.resources.signing_key_arn}]}))


def _no_rotation(h: Hardened) -> None:
    h.session.client("kms").disable_key_rotation(KeyId=h.sb.resources.kms_key_id)


def _public_key_policy(h: Hardened) -> None:
    kms = h.session.client("kms")
    key_id = h.sb.resources.kms_key_id
    doc = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    doc["Statement"].append({"Sid": "Everyone", "Effect": "Allow", "Principal": "*",
                             "Action": "kms:Decrypt", "Resource": "*"})
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps(doc))


def _contractor_key(h: Hardened) -> None:
    iam = h.session.client("iam")
    iam.create_user(UserName="contractor-c05")
    iam.create_access_key(UserName="contractor-c05")


def _long_sessions(h: Hardened) -> None:
    h.session.client("iam").update_role(RoleName="securepipe-contractor",
                                        MaxSessionDuration=43200)


def _day_long_links(h: Hardened) -> None:
    from securepipe.access.presigned import apply_presign_age_cap

    apply_presign_age_cap(h.session, h.bucket("raw"), max_age_s=86400)


def _broad_user(h: Hardened) -> None:
    iam = h.session.client("iam")
    iam.create_user(UserName="analyst")
    iam.put_user_policy(UserName="analyst", PolicyName="read-raw", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{h.bucket('raw')}/raw/*"}]}))


def _unused_role(h: Hardened) -> None:
    """A vendor role made 100 days ago (IAM dates follow the sandbox clock) and never used:
    older than the review window, so it is an unused grant, not a new role."""
    iam = h.session.client("iam")
    h.sb.move_clock(-dt.timedelta(days=100))
    try:
        _vendor_role(h, iam)
    finally:
        h.sb.move_clock(dt.timedelta(days=100))


def _vendor_role(h: Hardened, iam: Any) -> None:
    iam.create_role(RoleName="labelling-vendor", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{h.sb.account_id}:root"},
            "Action": "sts:AssumeRole"}]}))
    iam.put_role_policy(RoleName="labelling-vendor", PolicyName="one-prefix",
                        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
                            "Effect": "Allow", "Action": "s3:GetObject",
                            "Resource": f"arn:aws:s3:::{h.bucket('raw')}/raw/c02/*"}]}))


def _hardened_shadow_copy(h: Hardened) -> None:
    """A copy of an encrypted feature matrix in a bucket outside the kit's naming, hardened,
    logged and guarded exactly like a kit bucket: only the inventory check can see it."""
    from securepipe.access.guards import apply_admin_guard
    from securepipe.access.presigned import apply_presign_age_cap
    from securepipe.audit.monitoring import apply_monitoring
    from securepipe.encryption.hardening import apply_bucket_hardening, sse_kms_put_args
    from securepipe.retention.lifecycle import apply_lifecycle, lifecycle_rules
    from securepipe.sandbox.account import ADMIN_USER

    s3, res = h.session.client("s3"), h.sb.resources
    shadow = f"voice-exports-{h.sb.account_id}"
    s3.create_bucket(Bucket=shadow, CreateBucketConfiguration={"LocationConstraint": res.region})
    apply_bucket_hardening(h.session, shadow, res.kms_key_arn)
    apply_presign_age_cap(h.session, shadow)
    apply_lifecycle(h.session, shadow, lifecycle_rules("features"))
    src = next(o["Key"] for o in s3.list_objects_v2(Bucket=h.bucket("features"))["Contents"])
    body = s3.get_object(Bucket=h.bucket("features"), Key=src)["Body"].read()
    s3.put_object(Bucket=shadow, Key=src, Body=body, **sse_kms_put_args(res.kms_key_arn))
    data = [h.bucket("raw"), h.bucket("features"), h.bucket("archive"), shadow]
    # Re-applied over the existing trail: its log-group delivery (the guard alarms) is kept.
    apply_monitoring(h.session, data, h.bucket("audit"), kms_key_arn=res.kms_key_arn)
    # The same keys as the hardened scenario's guard, the signing key included (re-applying the
    # guard replaces the policy: leaving a key out would drop its kms:Sign deny).
    apply_admin_guard(h.session, ADMIN_USER,
                      key_arns=[res.kms_key_arn, res.archive_key_arn, res.signing_key_arn],
                      buckets=[*data, h.bucket("audit")])
    h.config = h.scenario.check_config(h.session)


def _key_admin_role(h: Hardened) -> None:
    iam = h.session.client("iam")
    iam.create_role(RoleName="key-admin", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{h.sb.account_id}:root"},
            "Action": "sts:AssumeRole"}]}))
    iam.put_role_policy(RoleName="key-admin", PolicyName="all-of-kms", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}))


def _decrypting_user_with_key(h: Hardened) -> None:
    iam = h.session.client("iam")
    iam.create_user(UserName="data-scientist")
    iam.put_user_policy(UserName="data-scientist", PolicyName="decrypt", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "kms:Decrypt",
            "Resource": h.sb.resources.kms_key_arn}]}))
    iam.create_access_key(UserName="data-scientist")


def _no_key_deletion_filter(h: Hardened) -> None:
    h.session.client("logs").delete_metric_filter(
        logGroupName="securepipe-cloudtrail", filterName="securepipe-kms-key-disable-or-deletion")


BREAKERS: dict[str, Callable[[Hardened], None]] = {
    "s3_bucket_default_encryption_cmk": lambda h: _encryption(h, key=False, bucket_key=True),
    "s3_bucket_key_enabled": lambda h: _encryption(h, key=True, bucket_key=False),
    "s3_bucket_tls_only_policy": lambda h: _put_policy(h, h.bucket("raw"),
                                                       {"DenyInsecureTransport"}),
    "s3_bucket_sse_kms_enforced": lambda h: _put_policy(
        h, h.bucket("raw"), {"DenyPutWithOtherEncryption", "DenyKmsPutWithoutKeyId",
                             "DenyPutWithOtherKmsKey"}),
    "s3_bucket_public_access_block": lambda h: h.session.client("s3").delete_public_access_block(
        Bucket=h.bucket("features")),
    "s3_account_public_access_block": _account_pab_off,
    "s3_bucket_versioning": lambda h: h.session.client("s3").put_bucket_versioning(
        Bucket=h.bucket("features"), VersioningConfiguration={"Status": "Suspended"}),
    "s3_bucket_object_ownership_enforced": lambda h: h.session.client(
        "s3").put_bucket_ownership_controls(Bucket=h.bucket("raw"), OwnershipControls={
            "Rules": [{"ObjectOwnership": "ObjectWriter"}]}),
    "s3_objects_client_side_encrypted": _plaintext_npy,
    "kms_cmk_rotation_enabled": _no_rotation,
    "kms_key_policy_not_public": _public_key_policy,
    "iam_contractor_no_access_keys": _contractor_key,
    "iam_contractor_role_session_duration": _long_sessions,
    "s3_presigned_url_expiry_cap": _day_long_links,
    "cloudtrail_s3_data_events": _management_events_only,
    "s3_bulk_read_alarms": _drop_get_alarm,
    "audit_trail_verifies": _tamper_trail,
    "s3_raw_uploads_within_ingest_window": _later,
    "s3_lifecycle_expires_data": _disable_raw_expiry,
    "retention_no_expired_objects": _withdraw,
    "access_review_broad_grants": _broad_user,
    "access_review_unused_grants": _unused_role,
    "audit_signing_key_separation": _contractor_may_sign,
    # scorecard v2 (issue 17)
    "s3_voice_data_only_in_kit_buckets": _hardened_shadow_copy,
    "iam_no_wildcard_admin_over_data": _key_admin_role,
    "iam_decrypt_identities_mfa": _decrypting_user_with_key,
    "cloudwatch_key_and_policy_change_alarms": _no_key_deletion_filter,
}


def test_every_registered_check_has_a_breaker() -> None:
    assert set(BREAKERS) == set(REGISTRY)
    for check in REGISTRY.values():
        assert check.rationale and check.remediation and check.title
        assert check.checklist  # an article item, or the note that the kit adds it


@pytest.mark.parametrize("check_id", list(BREAKERS))
def test_a_breaker_fails_exactly_its_check(hardened: Hardened, check_id: str) -> None:
    BREAKERS[check_id](hardened)
    card = hardened.run()
    statuses = _statuses(card)
    failed = {c for c, s in statuses.items() if s == "fail"}
    assert failed == {check_id, *ALSO_FAILS.get(check_id, ())}, card.table()
    errors = {c for c, s in statuses.items() if s == "error"}
    allowed = MOTO_SIDE_EFFECTS.get(check_id, {})
    assert errors <= set(allowed), card.table()
    for other in errors:
        assert allowed[other] in card.result(other).evidence
    assert {c for c, s in statuses.items() if s == "unverifiable"} <= SANDBOX_UNVERIFIABLE
    assert card.exit_code(card.result(check_id).check.severity) == 1


def test_missing_presign_cap_is_unverifiable_not_a_pass(hardened: Hardened) -> None:
    _put_policy(hardened, hardened.bucket("raw"), {"DenyOldSignatures"})
    result = hardened.run(checks=["s3_presigned_url_expiry_cap"]).results[0]
    assert result.status == "unverifiable"
    assert "cannot be seen from the account" in result.evidence


# -- could not evaluate ---------------------------------------------------------------------------


def test_a_bucket_that_does_not_exist_is_an_error_and_the_run_goes_on(hardened: Hardened
                                                                       ) -> None:
    config = hardened.config.with_resources({"features": "securepipe-features-does-not-exist"})
    card = hardened.run(config=config)
    assert len(card.results) == len(REGISTRY)
    for check_id in ("s3_bucket_default_encryption_cmk", "s3_bucket_versioning",
                     "s3_objects_client_side_encrypted", "s3_lifecycle_expires_data"):
        result = card.result(check_id)
        assert result.status == "error", check_id
        bad = [r for r in result.resources if r.status == "error"]
        assert [r.resource for r in bad] == ["securepipe-features-does-not-exist"]
        assert "NoSuchBucket" in bad[0].evidence
        assert [r.status for r in result.resources if r not in bad] == ["pass"] * (
            len(result.resources) - 1)
    assert card.result("kms_cmk_rotation_enabled").status == "pass"
    assert card.result("iam_contractor_role_session_duration").status == "pass"


def test_access_denied_everywhere_is_reported_never_passed(hardened: Hardened) -> None:
    from securepipe.access.credentials import ContractorCredentials, contractor_session

    iam = hardened.session.client("iam")
    role = iam.create_role(RoleName="auditor-without-permissions",
                           AssumeRolePolicyDocument=json.dumps({
                               "Version": "2012-10-17", "Statement": [{
                                   "Effect": "Allow", "Action": "sts:AssumeRole",
                                   "Principal": {"AWS": f"arn:aws:iam::"
                                                 f"{hardened.sb.account_id}:root"}}]}))
    creds = hardened.session.client("sts").assume_role(
        RoleArn=role["Role"]["Arn"], RoleSessionName="auditor")["Credentials"]
    nobody = contractor_session(hardened.session, ContractorCredentials(
        creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"],
        creds["Expiration"], "auditor", "auditor", ""))
    card = run_checks(nobody, config=hardened.config)
    assert len(card.results) == len(REGISTRY)
    # The sandbox's emulation refuses ListBuckets without s3:ListAllMyBuckets, as AWS does: the
    # inventory check cannot list the account's buckets either, and says so.
    assert {r.status for r in card.results} == {"error"}, card.table()
    for r in card.results:
        assert "AccessDenied" in r.evidence or "not authorized" in r.evidence, r.check.id
    assert card.exit_code("high") == 1  # a critical check could not be evaluated
    assert card.exit_code("high", errors_fail_on=None) == 0


def _throttle_response(url: str) -> AWSResponse:
    from moto.core.botocore_stubber import MockRawResponse

    body = (b"<Error><Code>Throttling</Code><Message>Rate exceeded</Message>"
            b"<RequestId>1</RequestId></Error>")
    return AWSResponse(url, 400, {"Content-Type": "application/xml"}, MockRawResponse(body))


def test_throttling_is_retried_then_reported(hardened: Hardened) -> None:
    calls = {"n": 0}
    raw = hardened.bucket("raw")

    def throttle_once(request: Any, **_: Any) -> AWSResponse | None:
        calls["n"] += 1
        return _throttle_response(request.url) if calls["n"] == 1 else None

    event = "before-send.s3.GetBucketVersioning"
    hardened.session.events.register_first(event, throttle_once, unique_id="once")
    card = hardened.run(checks=["s3_bucket_versioning"])
    hardened.session.events.unregister(event, unique_id="once")
    assert card.results[0].status == "pass" and calls["n"] == 5  # 4 buckets, 1 retry

    def always(request: Any, **_: Any) -> AWSResponse | None:
        return _throttle_response(request.url) if raw in request.url else None

    hardened.session.events.register_first(event, always, unique_id="always")
    config = dataclasses.replace(hardened.config, max_attempts=2)
    card = hardened.run(config=config, checks=["s3_bucket_versioning", "kms_cmk_rotation_enabled"])
    versioning, rotation = card.results
    assert versioning.status == "error" and "Throttling" in versioning.evidence
    assert "max retries" in versioning.evidence
    assert [r.status for r in versioning.resources] == ["error", "pass", "pass", "pass"]
    assert rotation.status == "pass"  # the run went on


def test_a_throttling_client_error_in_one_check_leaves_the_others(hardened: Hardened) -> None:
    def refuse(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}},
                          "GetKeyRotationStatus")

    hardened.session.events.register("before-call.kms.GetKeyRotationStatus", refuse)
    card = hardened.run()
    statuses = _statuses(card)
    assert statuses.pop("kms_cmk_rotation_enabled") == "error"
    assert "GetKeyRotationStatus answered Throttling" in card.result(
        "kms_cmk_rotation_enabled").evidence
    assert {s for c, s in statuses.items() if c not in SANDBOX_UNVERIFIABLE} == {"pass"}


# -- reports, exit codes, the CLI -----------------------------------------------------------------


def _card(*results: tuple[str, str, str]) -> Scorecard:
    """A scorecard of stand-in checks: (severity, status, evidence) each."""
    from securepipe.checks import Check, CheckResult, ResourceResult

    made = []
    for i, (severity, status, evidence) in enumerate(results):
        check = Check(id=f"fake_{i}", title=f"fake <b>{i}</b>", severity=severity,  # type: ignore[arg-type]
                      step=6, checklist_item=None, rationale="r", remediation="fix()",
                      evaluate=lambda ctx: [])
        made.append(CheckResult(check, status, evidence,  # type: ignore[arg-type]
                                (ResourceResult("res", status, evidence),)))  # type: ignore[arg-type]
    return Scorecard(tuple(made), "123456789012", "eu-west-1", None,
                     dt.datetime(2026, 1, 1, tzinfo=dt.UTC), 0.1, CheckConfig())


def test_exit_code_fails_on_severity_and_on_critical_errors() -> None:
    assert _card(("medium", "fail", "x")).exit_code("high") == 0
    assert _card(("medium", "fail", "x")).exit_code("medium") == 1
    assert _card(("high", "unverifiable", "x")).exit_code("low") == 0
    assert _card(("high", "error", "x")).exit_code("high") == 0
    assert _card(("high", "error", "x")).exit_code("high", errors_fail_on="high") == 1
    assert _card(("critical", "error", "x")).exit_code("high") == 1
    assert _card(("critical", "error", "x")).exit_code("high", errors_fail_on=None) == 0
    with pytest.raises(ValueError, match="unknown severity"):
        _card().exit_code("urgent")  # type: ignore[arg-type]


def test_cli_arguments_are_checked_before_anything_runs(capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    from securepipe import cli
    from securepipe.checks import SEVERITIES

    assert cli.SEVERITIES == SEVERITIES
    for argv in (["check", "--bucket", "nonsense"], ["check", "--bucket", "logs=x"],
                 ["check", "--profile", "p", "--scenario", "misconfigured"],
                 ["check", "--sandbox", "--profile", "p"], ["check", "--fail-on", "urgent"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 2, argv
    capsys.readouterr()


def test_html_report_is_standalone_and_escaped() -> None:
    hostile = '<script>alert("bucket")</script> & <img src=x onerror=1>'
    page = _card(("critical", "fail", hostile), ("low", "pass", "ok")).to_html()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page and "<img" not in page and "&lt;script&gt;" in page
    assert "fake &lt;b&gt;0&lt;/b&gt;" in page
    assert "http://" not in page and "https://" not in page and "<link" not in page
    assert 'class="s fail"' in page and 'class="s pass"' in page


def test_cli_check_on_the_sandbox_through_its_endpoint(tmp_path: Any,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    from html.parser import HTMLParser

    from securepipe.cli import main

    report, page = tmp_path / "card.json", tmp_path / "card.html"
    code = main(["check", "--sandbox", "--fail-on", "high", "--json", str(report),
                 "--html", str(page)])
    out, err = capsys.readouterr()
    assert code == 0, out
    assert "s3_bucket_default_encryption_cmk" in out
    assert f"[{len(REGISTRY)}/{len(REGISTRY)}]" in err
    data = json.loads(report.read_text())
    assert data["endpoint"].startswith("https://127.0.0.1:")  # TLS, through the endpoint URL
    assert data["counts"]["fail"] == 0 and data["counts"]["error"] == 0
    assert {c["id"] for c in data["checks"]} == set(REGISTRY)
    assert data["access_review"]["contractors"] == ["c02", "c03", "c04"]
    HTMLParser().feed(page.read_text())
    assert "Access review" in page.read_text()


def test_cli_subprocess_misconfigured_exits_non_zero(tmp_path: Any) -> None:
    import subprocess
    import sys
    from pathlib import Path

    report = tmp_path / "card.json"
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "securepipe", "check", "--scenario", "misconfigured",
         "--fail-on", "high", "--json", str(report), "--quiet"],
        cwd=root, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    data = json.loads(report.read_text())
    statuses = {c["id"]: c["status"] for c in data["checks"]}
    assert statuses.pop("s3_presigned_url_expiry_cap") == "unverifiable"  # no cap to observe
    assert statuses.pop("kms_key_policy_not_public") == "pass"
    assert statuses.pop("access_review_unused_grants") == "pass"
    # audit_signing_key_separation fails too: the common pattern's admin holds '*' on '*' with a
    # long-lived key and no guard, so it may kms:Sign with the signing key (the runner is
    # reviewed, not exempt; the hardened guard denies kms:Sign without MFA).
    assert set(statuses.values()) == {"fail"}, statuses
    assert "FAIL" in done.stdout and data["exit_code"]["high"] == 1


def test_hardened_scenario_is_green_years_from_now() -> None:
    """The synthetic consents have absolute dates; the scenario rebases them, so the hardened
    account stays inside retention whenever it is built (no date bomb in the tests)."""
    with Sandbox() as sb:
        sb.move_clock(dt.timedelta(days=4 * 365))
        scenario = hardened_account(sb, contractors=("c02",), pending=1)
        card = run_checks(sb.session, config=scenario.check_config(sb.session))
        assert card.result("retention_no_expired_objects").status == "pass", card.table()


# -- the access review and the kit's own roles ----------------------------------------------------


def test_a_role_never_used_is_new_within_the_window_and_unused_after_it(
        hardened: Hardened) -> None:
    """A role created today has not had the chance to be used: reported as new, passing.
    The same role still unused past the review window (90 days) is an unused grant."""
    _vendor_role(hardened, hardened.session.client("iam"))
    result = hardened.run(checks=["access_review_unused_grants"]).results[0]
    vendor = next(r for r in result.resources if r.resource == "role/labelling-vendor")
    assert result.status == "pass" and vendor.status == "pass", result.resources
    assert vendor.evidence.startswith("new: created")
    hardened.sb.move_clock(dt.timedelta(days=91))
    result = hardened.run(checks=["access_review_unused_grants"]).results[0]
    vendor = next(r for r in result.resources if r.resource == "role/labelling-vendor")
    assert result.status == "fail" and vendor.status == "fail"
    assert "never used" in vendor.evidence


def test_a_kit_role_is_exempt_only_while_it_holds_exactly_its_generated_policy(
        hardened: Hardened) -> None:
    from securepipe.provision import AccountLayout, ensure_kit_role

    layout = AccountLayout.discover(hardened.session,
                                    consent_table=hardened.config.consent_table)
    for role in ("ingest", "eraser", "auditor", "uploader"):
        ensure_kit_role(hardened.session, layout, role)  # type: ignore[arg-type]
    card = hardened.run(checks=["access_review_broad_grants", "audit_signing_key_separation"])
    assert {r.status for r in card.results} == {"pass"}, card.table()
    assert "role/securepipe-ingest: exempt" in card.results[0].resources[-1].evidence
    # one statement more than generated, and the ingest role is reviewed as it is: it reaches
    # every contractor's uploads
    _one_statement_more(hardened, layout, "ingest", {
        "Sid": "AlsoListEverything", "Effect": "Allow", "Action": "s3:ListAllMyBuckets",
        "Resource": "*"})
    result = hardened.run(checks=["access_review_broad_grants"]).results[0]
    assert result.status == "fail"
    assert [r.resource for r in result.resources if r.status == "fail"] == [
        "role/securepipe-ingest"]


def _one_statement_more(hardened: Hardened, layout: Any, role: str,
                        statement: dict[str, Any]) -> None:
    """Give kit role ``role`` its generated policy plus ``statement``."""
    from securepipe.provision import kit_role_policy
    from securepipe.provision.policies import KIT_ROLE_POLICY_NAME

    extra = kit_role_policy(role, layout)  # type: ignore[arg-type]
    extra["Statement"].append(statement)
    hardened.session.client("iam").put_role_policy(
        RoleName=f"securepipe-{role}", PolicyName=KIT_ROLE_POLICY_NAME,
        PolicyDocument=json.dumps(extra))


def test_the_access_review_accepts_the_trainer_with_speaker_keys_and_nothing_beyond(
        hardened: Hardened) -> None:
    """The trainer's speaker-key policy (AccountLayout(speaker_keys=True)) is one of its
    generated shapes: the review recognises the role as the kit's trainer. One statement more
    and the role is reviewed as it is, with a note saying why."""
    import dataclasses

    from securepipe.checks.review import access_review
    from securepipe.provision import AccountLayout, ensure_kit_role
    from securepipe.provision.policies import KIT_ROLE_POLICY_NAME

    layout = dataclasses.replace(AccountLayout.discover(
        hardened.session, consent_table=hardened.config.consent_table), speaker_keys=True)
    ensure_kit_role(hardened.session, layout, "trainer")
    assert "SpeakerKeyUnwrap" in json.dumps(hardened.session.client("iam").get_role_policy(
        RoleName="securepipe-trainer", PolicyName=KIT_ROLE_POLICY_NAME)["PolicyDocument"])
    review = access_review(hardened.session, hardened.config)
    assert review.kinds.get("role/securepipe-trainer") == "kit trainer role", review.kinds
    assert not [n for n in review.notes if "securepipe-trainer" in n], review.notes
    _one_statement_more(hardened, layout, "trainer", {
        "Sid": "AlsoGenerate", "Effect": "Allow", "Action": "kms:GenerateDataKey",
        "Resource": "*"})
    review = access_review(hardened.session, hardened.config)
    assert "role/securepipe-trainer" not in review.exempt
    assert [n for n in review.notes if "securepipe-trainer" in n and "holds more or other" in n]
