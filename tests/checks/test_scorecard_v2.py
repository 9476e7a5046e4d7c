"""Scorecard v2 (issue 17): every version, voice data anywhere, trail coverage from the
selectors, honest empty results, and the identity and key guards.

Each test builds its own hardened account and introduces one misconfiguration; the breaker
for each new check (fails exactly its check) lives with the others in ``test_checks.py``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hardened_world import Hardened, hardened_world
from hypothesis import given
from hypothesis import strategies as st

from securepipe.checks import Scorecard
from securepipe.checks.discovery import (
    OBJECTS_PER_BUCKET,
    list_versions,
    recognise,
    stratified,
)
from securepipe.checks.scenarios import hardened_account
from securepipe.encryption.hardening import sse_kms_put_args
from securepipe.sandbox.account import Sandbox

logging.getLogger("aws_encryption_sdk").setLevel(logging.CRITICAL)


@pytest.fixture
def hardened() -> Iterator[Hardened]:
    with hardened_world() as world:
        yield world


def _failed(card: Scorecard) -> set[str]:
    return {r.check.id for r in card.results if r.status == "fail"}


def _wav(h: Hardened) -> bytes:
    from securepipe.data.dataset import load_manifest

    manifest = load_manifest()
    return manifest.path_of(manifest.utterances[0]).read_bytes()


def _esdk_feature(h: Hardened) -> tuple[str, bytes]:
    s3 = h.session.client("s3")
    key = next(o["Key"] for o in s3.list_objects_v2(Bucket=h.bucket("features"))["Contents"])
    return key, s3.get_object(Bucket=h.bucket("features"), Key=key)["Body"].read()


# -- (1) every version ----------------------------------------------------------------------------


def test_plaintext_wav_under_a_delete_marker_fails(hardened: Hardened) -> None:
    s3 = hardened.session.client("s3")
    features = hardened.bucket("features")
    # Attributed like every object the kit writes for a speaker (issue 14: speaker metadata at
    # write time), so the retention sweep can place it and only the encryption check fails.
    from securepipe.encryption.upload import META_SAMPLE, META_SPEAKER

    feature = next(o["Key"] for o in s3.list_objects_v2(Bucket=features, Prefix="features/c02/")[
        "Contents"])
    meta = s3.head_object(Bucket=features, Key=feature)["Metadata"]
    attributed = {m: meta[m] for m in (META_SPEAKER, META_SAMPLE)}
    key = f"{feature.rsplit('/', 1)[0]}/leftover.wav"
    s3.put_object(Bucket=features, Key=key, Body=_wav(hardened), Metadata=attributed,
                  **sse_kms_put_args(hardened.sb.resources.kms_key_arn))
    s3.delete_object(Bucket=features, Key=key)  # versioned: only a delete marker on top
    assert not any(o["Key"] == key for o in s3.list_objects_v2(Bucket=features).get(
        "Contents", []))
    card = hardened.run()
    assert _failed(card) == {"s3_objects_client_side_encrypted"}, card.table()
    evidence = card.result("s3_objects_client_side_encrypted").evidence
    assert key in evidence and "noncurrent version" in evidence and "WAV" in evidence


def test_plaintext_npy_under_an_encrypted_current_version_fails(hardened: Hardened) -> None:
    s3 = hardened.session.client("s3")
    key, esdk = _esdk_feature(hardened)
    buf = io.BytesIO()
    np.save(buf, np.zeros((4, 4), dtype=np.float32))
    kms = sse_kms_put_args(hardened.sb.resources.kms_key_arn)
    s3.put_object(Bucket=hardened.bucket("features"), Key=key, Body=buf.getvalue(), **kms)
    s3.put_object(Bucket=hardened.bucket("features"), Key=key, Body=esdk, **kms)  # current: ESDK
    card = hardened.run()
    assert _failed(card) == {"s3_objects_client_side_encrypted"}, card.table()
    assert ".npy" in card.result("s3_objects_client_side_encrypted").evidence


def test_sampling_is_bounded_and_stratified() -> None:
    """A bucket with endless versions costs a fixed number of list calls; the sample always
    holds noncurrent versions when there are any."""
    calls = {"n": 0}

    class Endless:
        def list_object_versions(self, **kwargs: Any) -> dict[str, Any]:
            calls["n"] += 1
            base = calls["n"] * 1000
            return {"IsTruncated": True, "NextKeyMarker": f"k{base}",
                    "Versions": [{"Key": f"k{base + i}", "VersionId": f"v{i}",
                                  "IsLatest": i % 10 == 0, "Size": 10} for i in range(1000)]}

    versions, more = list_versions(Endless(), "bucket-x", 3)
    assert calls["n"] == 3 and more and len(versions) == 3000
    sample = stratified(versions, 20)
    assert len(sample) == 20
    assert sum(not v["IsLatest"] for v in sample) == 10  # half noncurrent
    assert len({v["Key"] for v in sample}) == 20


# -- (2) voice data anywhere ----------------------------------------------------------------------


def _flac_and_ogg() -> list[tuple[str, bytes]]:
    import soundfile as sf

    y = np.zeros(1600, dtype=np.float32)
    out = []
    for fmt, sub in (("FLAC", None), ("OGG", "VORBIS")):
        buf = io.BytesIO()
        sf.write(buf, y, 16000, format=fmt, subtype=sub)
        out.append((fmt, buf.getvalue()))
    return out


def test_recognise_names_voice_formats_by_their_bytes() -> None:
    from securepipe.features.extract import FORMAT_MAGIC

    assert recognise(b"RIFF\x24\x00\x00\x00WAVEfmt ").kind == "a plaintext WAV recording"
    for fmt, blob in _flac_and_ogg():
        content = recognise(blob[:64])
        assert content.voice, (fmt, content)
    assert recognise(b"OggS\x00\x02" + b"\x00" * 22 + b"OpusHead").kind.endswith("Opus recording")
    assert recognise(b"ID3\x04\x00\x00\x00\x00\x00\x00").voice
    assert recognise(bytes([0xFF, 0xFB, 0x90, 0x64])).voice  # MPEG-1 layer III, 128 kbit/s
    assert not recognise(bytes([0xFF, 0xFB, 0xF0, 0x64])).voice  # bitrate index 15: invalid
    buf = io.BytesIO()
    np.save(buf, np.zeros(3))
    assert recognise(buf.getvalue()[:64]).voice
    assert recognise(FORMAT_MAGIC + b"\x00" * 8).voice
    assert not recognise(b'{"json": true}').biometric
    assert not recognise(b"gAAAAABk").biometric


@given(st.binary(min_size=0, max_size=64))
def test_arbitrary_bytes_never_read_as_esdk_unless_the_header_is(blob: bytes) -> None:
    content = recognise(blob)
    if content.esdk:
        assert blob[:1] == b"\x02" or blob[:2] == b"\x01\x80"


def _shadow(h: Hardened, body: bytes, key: str = "exports/spk01_u1.wav") -> str:
    s3 = h.session.client("s3")
    name = f"voice-exports-{h.sb.account_id}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={
        "LocationConstraint": h.sb.resources.region})
    s3.put_object(Bucket=name, Key=key, Body=body)
    return name


def test_a_shadow_bucket_with_a_plaintext_wav_fails_like_a_kit_bucket(hardened: Hardened
                                                                      ) -> None:
    shadow = _shadow(hardened, _wav(hardened))
    hardened.rediscover()
    assert shadow in [b.name for b in hardened.config.data_buckets]
    card = hardened.run()
    for check_id in ("s3_voice_data_only_in_kit_buckets", "s3_objects_client_side_encrypted",
                     "s3_bucket_default_encryption_cmk", "s3_bucket_tls_only_policy",
                     "s3_lifecycle_expires_data", "s3_bucket_public_access_block",
                     "cloudtrail_s3_data_events", "iam_no_wildcard_admin_over_data"):
        result = card.result(check_id)
        assert result.status == "fail", (check_id, card.table())
        failing = [r for r in result.resources if r.status == "fail"]
        assert all(shadow in f"{r.resource} {r.evidence}" for r in failing), check_id
    assert "plaintext WAV" in card.result("s3_voice_data_only_in_kit_buckets").evidence


def test_a_bucket_without_voice_data_is_sampled_and_passes(hardened: Hardened) -> None:
    name = _shadow(hardened, b'{"build": 7}', key="ci/build.json")
    hardened.rediscover()
    assert name not in [b.name for b in hardened.config.buckets]
    result = hardened.run(checks=["s3_voice_data_only_in_kit_buckets"]).results[0]
    assert result.status == "pass" and "no voice data recognised" in result.evidence


# -- (3) trail coverage from the selectors --------------------------------------------------------


def _selectors(h: Hardened, *field_sets: list[dict[str, Any]]) -> None:
    h.session.client("cloudtrail").put_event_selectors(
        TrailName="securepipe-data-events", AdvancedEventSelectors=[
            {"Name": f"s{i}", "FieldSelectors": [
                {"Field": "eventCategory", "Equals": ["Data"]},
                {"Field": "resources.type", "Equals": ["AWS::S3::Object"]}, *fields]}
            for i, fields in enumerate(field_sets)] + [
            {"Name": "management", "FieldSelectors": [
                {"Field": "eventCategory", "Equals": ["Management"]}]}])


def _data_prefix_arns(h: Hardened) -> list[str]:
    from securepipe.retention.lifecycle import DATA_PREFIXES

    return [f"arn:aws:s3:::{h.bucket(role)}/{p}" for role in ("raw", "features", "archive")
            for p in DATA_PREFIXES[role]]


def test_selectors_scoped_exactly_to_the_data_prefixes_pass(hardened: Hardened) -> None:
    _selectors(hardened, [{"Field": "resources.ARN", "StartsWith": _data_prefix_arns(hardened)}])
    result = hardened.run(checks=["cloudtrail_s3_data_events"]).results[0]
    assert result.status == "pass", result.evidence


def test_selectors_logging_only_raw_everywhere_fail_naming_each_prefix(hardened: Hardened
                                                                       ) -> None:
    buckets = [hardened.bucket(r) for r in ("raw", "features", "archive")]
    _selectors(hardened, [{"Field": "resources.ARN",
                           "StartsWith": [f"arn:aws:s3:::{b}/raw/" for b in buckets]}])
    card = hardened.run()
    assert _failed(card) == {"cloudtrail_s3_data_events"}, card.table()
    result = card.result("cloudtrail_s3_data_events")
    failing = {r.resource: r.evidence for r in result.resources if r.status == "fail"}
    assert set(failing) == {hardened.bucket("raw"), hardened.bucket("features"),
                            hardened.bucket("archive")}
    assert "quarantine/ GetObject, PutObject, DeleteObject" in failing[hardened.bucket("raw")]
    assert "raw/" not in failing[hardened.bucket("raw")].split(";")[0].split(":", 1)[1].split(
        " (")[0].replace("quarantine/", "")
    assert "features/ GetObject" in failing[hardened.bucket("features")]


@pytest.mark.parametrize(("extra", "missing"), [
    ([{"Field": "readOnly", "Equals": ["true"]}], "PutObject, DeleteObject"),
    ([{"Field": "eventName", "Equals": ["GetObject"]}], "PutObject, DeleteObject"),
    ([{"Field": "eventName", "NotEquals": ["GetObject"]}], "GetObject"),
    ([{"Field": "resources.ARN", "NotStartsWith": ["{raw}/raw/c02/"]}], "raw/ GetObject"),
    ([{"Field": "resources.ARN", "Equals": ["{raw}/raw/c02/spk02_u4"]}], "raw/ GetObject"),
], ids=["reads-only", "get-only", "all-but-get", "one-contractor-excluded", "one-object"])
def test_selectors_that_miss_an_operation_or_a_part_fail(hardened: Hardened,
                                                         extra: list[dict[str, Any]],
                                                         missing: str) -> None:
    raw = f"arn:aws:s3:::{hardened.bucket('raw')}"
    fields = json.loads(json.dumps(extra).replace("{raw}", raw))
    arns = [a for a in _data_prefix_arns(hardened)]
    scoped = fields if any(f["Field"] == "resources.ARN" for f in fields) else [
        {"Field": "resources.ARN", "StartsWith": arns}, *fields]
    _selectors(hardened, scoped)
    result = hardened.run(checks=["cloudtrail_s3_data_events"]).results[0]
    assert result.status == "fail"
    assert missing in result.evidence, result.evidence


def test_classic_selectors_on_bucket_arns_are_evaluated(hardened: Hardened) -> None:
    buckets = [hardened.bucket(r) for r in ("raw", "features", "archive")]
    ct = hardened.session.client("cloudtrail")
    # A trail of its own: moto keeps a trail's advanced selectors when classic ones are put
    # (AWS replaces them; a trail has one kind or the other).
    ct.stop_logging(Name="securepipe-data-events")
    ct.create_trail(Name="classic-trail", S3BucketName=hardened.bucket("audit"),
                    IsMultiRegionTrail=True, EnableLogFileValidation=True)
    ct.start_logging(Name="classic-trail")

    def classic(rw: str) -> None:
        ct.put_event_selectors(TrailName="classic-trail", EventSelectors=[{
            "ReadWriteType": rw, "IncludeManagementEvents": True, "DataResources": [{
                "Type": "AWS::S3::Object", "Values": [f"arn:aws:s3:::{b}/" for b in buckets]}]}])

    classic("All")
    assert hardened.run(checks=["cloudtrail_s3_data_events"]).results[0].status == "pass"
    classic("ReadOnly")
    result = hardened.run(checks=["cloudtrail_s3_data_events"]).results[0]
    assert result.status == "fail" and "PutObject, DeleteObject" in result.evidence


# -- (4) honest results ---------------------------------------------------------------------------


def test_a_check_that_evaluated_nothing_is_unverifiable_never_a_pass(hardened: Hardened) -> None:
    nothing = dataclasses.replace(hardened.config, buckets=(), key_arns=())
    card = hardened.run(config=nothing, checks=["s3_presigned_url_expiry_cap",
                                                "s3_bucket_versioning"])
    for result in card.results:
        assert result.status == "unverifiable", result.evidence
        assert "evaluated no resource" in result.evidence


def test_a_discovery_failure_is_an_error_and_the_table_says_why(hardened: Hardened) -> None:
    noted = dataclasses.replace(hardened.config, buckets=(), notes=(
        "buckets not listed (could not evaluate: BotoCoreError: SSL validation failed)",))
    card = hardened.run(config=noted, checks=["s3_bucket_versioning"])
    assert card.results[0].status == "error"
    table = card.table()
    assert "discovery notes:" in table and "could not evaluate:" in table
    assert table.count("SSL validation failed") >= 2  # the note, and the check's reason


# -- (6) identity and key guards ------------------------------------------------------------------


def test_the_issues_wildcard_admin_fails_the_guards(hardened: Hardened) -> None:
    iam = hardened.session.client("iam")
    iam.create_user(UserName="ops-admin")
    iam.put_user_policy(UserName="ops-admin", PolicyName="admin", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*",
                                                "Resource": "*"}]}))
    iam.create_access_key(UserName="ops-admin")
    card = hardened.run()
    assert {"iam_no_wildcard_admin_over_data", "iam_decrypt_identities_mfa",
            "access_review_broad_grants"} <= _failed(card), card.table()
    wildcard = card.result("iam_no_wildcard_admin_over_data")
    assert [r.resource for r in wildcard.resources if r.status == "fail"] == ["user/ops-admin"]
    assert "kms:Decrypt" in wildcard.evidence
    mfa = card.result("iam_decrypt_identities_mfa").evidence
    assert "without MFA" in mfa and "no MFA device" in mfa


def test_the_runner_is_reviewed_not_exempt(hardened: Hardened) -> None:
    from securepipe.access.guards import GUARD_POLICY_NAME
    from securepipe.sandbox.account import ADMIN_USER

    hardened.session.client("iam").delete_user_policy(UserName=ADMIN_USER,
                                                      PolicyName=GUARD_POLICY_NAME)
    card = hardened.run(checks=["iam_no_wildcard_admin_over_data", "iam_decrypt_identities_mfa",
                                "access_review_broad_grants"])
    for result in card.results:
        assert result.status == "fail"
        bad = [r for r in result.resources if r.status == "fail"]
        assert [r.resource for r in bad] == [f"user/{ADMIN_USER}"]
        assert "runs this review" in bad[0].evidence or "running these checks" in bad[0].evidence


def test_an_unreadable_version_is_unverifiable_and_the_run_goes_on(hardened: Hardened) -> None:
    from botocore.exceptions import ClientError

    def refuse(params: dict[str, Any], **_: Any) -> None:
        if params.get("Bucket") == hardened.bucket("features"):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "kms:Decrypt"}},
                              "GetObject")

    hardened.session.events.register("provide-client-params.s3.GetObject", refuse)
    card = hardened.run(checks=["s3_objects_client_side_encrypted", "kms_cmk_rotation_enabled"])
    content, rotation = card.results
    assert content.status == "unverifiable", content.evidence
    features = next(r for r in content.resources if r.resource == hardened.bucket("features"))
    assert features.status == "unverifiable" and "AccessDenied" in features.evidence
    assert {r.status for r in content.resources if r is not features} == {"pass"}
    assert rotation.status == "pass"


def test_guard_alarm_patterns_are_evaluated_not_matched_as_text(hardened: Hardened) -> None:
    from securepipe.audit.alarms import CIS_PATTERNS, pattern_matches

    logs = hardened.session.client("logs")
    # Equivalent to CIS 4.7, written differently: passes.
    logs.delete_metric_filter(logGroupName="securepipe-cloudtrail",
                              filterName="securepipe-kms-key-disable-or-deletion")
    logs.put_metric_filter(
        logGroupName="securepipe-cloudtrail", filterName="securepipe-kms-key-disable-or-deletion",
        filterPattern='{ ($.eventName = "ScheduleKeyDeletion" || $.eventName = DisableKey) && '
                      '$.eventSource = "kms.amazonaws.com" }',
        metricTransformations=[{"metricName": "securepipe-kms-key-disable-or-deletion",
                                "metricNamespace": "securepipe/guards", "metricValue": "1"}])
    result = hardened.run(checks=["cloudwatch_key_and_policy_change_alarms"]).results[0]
    assert result.status == "pass", result.evidence
    # Misses ScheduleKeyDeletion: fails, though it looks like the CIS filter. (moto adds a
    # second filter of the same name where AWS replaces it: delete first.)
    logs.delete_metric_filter(logGroupName="securepipe-cloudtrail",
                              filterName="securepipe-kms-key-disable-or-deletion")
    logs.put_metric_filter(
        logGroupName="securepipe-cloudtrail", filterName="securepipe-kms-key-disable-or-deletion",
        filterPattern="{($.eventSource = kms.amazonaws.com) && ($.eventName = DisableKey)}",
        metricTransformations=[{"metricName": "securepipe-kms-key-disable-or-deletion",
                                "metricNamespace": "securepipe/guards", "metricValue": "1"}])
    result = hardened.run(checks=["cloudwatch_key_and_policy_change_alarms"]).results[0]
    assert result.status == "fail" and "ScheduleKeyDeletion" in result.evidence
    event = {"eventSource": "kms.amazonaws.com", "eventName": "ScheduleKeyDeletion"}
    assert pattern_matches(CIS_PATTERNS["kms-key-disable-or-deletion"], event) is True
    assert pattern_matches("{ $.eventName = %unparsed% }", event) is None
    assert pattern_matches("ScheduleKeyDeletion", event) is None  # not a JSON pattern


def test_objects_per_bucket_bound_is_stated() -> None:
    from securepipe.checks.discovery import DISCOVERY_BOUNDS

    assert f"{OBJECTS_PER_BUCKET} ranged GETs" in DISCOVERY_BOUNDS


# -- (7) OCSF Detection Findings ------------------------------------------------------------------


def _ocsf_schema() -> dict[str, Any]:
    from pathlib import Path

    path = Path(__file__).parent / "data" / "ocsf_1.1.0_detection_finding.schema.json"
    return dict(json.loads(path.read_text()))


def test_ocsf_findings_validate_against_the_detection_finding_schema(hardened: Hardened
                                                                     ) -> None:
    import jsonschema

    _shadow(hardened, _wav(hardened))
    hardened.rediscover()
    card = hardened.run()
    found = json.loads(card.to_ocsf())
    assert len(found) == sum(len(r.resources) for r in card.results)
    validator = jsonschema.Draft202012Validator(_ocsf_schema())
    for finding in found:
        validator.validate(finding)
    by_check: dict[str, set[str]] = {}
    for finding in found:
        by_check.setdefault(finding["metadata"]["event_code"], set()).add(finding["status_code"])
    assert "FAIL" in by_check["s3_voice_data_only_in_kit_buckets"]
    assert by_check["s3_bulk_read_alarms"] >= {"MANUAL"}  # unverifiable is not a PASS
    assert len({f["finding_info"]["uid"] for f in found}) == len(found)
    critical = [f for f in found
                if f["metadata"]["event_code"] == "s3_objects_client_side_encrypted"]
    assert {f["severity_id"] for f in critical} == {5}


def test_the_schema_refuses_what_is_not_a_detection_finding() -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(_ocsf_schema())
    good = {"class_uid": 2004, "category_uid": 2, "activity_id": 1, "type_uid": 200401,
            "time": 1, "severity_id": 4, "finding_info": {"uid": "x", "title": "t"},
            "metadata": {"version": "1.1.0", "product": {"name": "p"}},
            "cloud": {"provider": "AWS"}}
    validator.validate(good)
    for broken in ({**good, "class_uid": 2001}, {**good, "severity_id": 7},
                   {k: v for k, v in good.items() if k != "finding_info"},
                   {**good, "finding_info": {"uid": "x"}}, {**good, "made_up": 1}):
        assert not validator.is_valid(broken), broken


# -- (5) real-account attribution -----------------------------------------------------------------


@pytest.mark.parametrize("manifest", [False, True], ids=["write-time-metadata", "manifest"])
def test_check_profile_on_the_hardened_sandbox_server_is_green(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        manifest: bool) -> None:
    """The real-account path (``--profile``, discovery, no scenario config, nothing injected)
    against a hardened sandbox in server mode with TLS. The raw uploads are attributed by the
    speaker metadata written at upload; with ``--manifest`` by the manifest as well."""
    import os

    from securepipe.cli import main
    from securepipe.data.dataset import default_data_dir

    with Sandbox(server=True, tls=True) as sb:
        hardened_account(sb, contractors=("c02", "c03"), pending=1)
        monkeypatch.setenv("AWS_CONFIG_FILE", str(sb.config_file))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        # An AWS_CA_BUNDLE in the environment wins over the profile's ca_bundle (botocore's
        # precedence): as for any profile whose endpoint has its own CA, unset it.
        monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
        report = tmp_path / "card.json"
        extra = ["--manifest", str(default_data_dir() / "manifest.json")] if manifest else []
        code = main(["check", "--profile", Sandbox.PROFILE, *extra, "--json", str(report),
                     "--ocsf", str(tmp_path / "card.ocsf.json"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    data = json.loads(report.read_text())
    assert data["endpoint"].startswith("https://127.0.0.1:")
    statuses = {c["id"]: c["status"] for c in data["checks"]}
    assert statuses.pop("s3_bulk_read_alarms") == "unverifiable"  # moto: no request metrics
    assert set(statuses.values()) == {"pass"}, out
    assert json.loads((tmp_path / "card.ocsf.json").read_text())[0]["class_uid"] == 2004


def test_manifest_argument_accepts_a_plain_mapping_and_refuses_nonsense(tmp_path: Any) -> None:
    from securepipe.checks import sample_speakers_from
    from securepipe.errors import InvalidParameterError

    plain = tmp_path / "map.json"
    plain.write_text(json.dumps({"spk02_u4": "spk02"}))
    assert sample_speakers_from(plain) == {"spk02_u4": "spk02"}
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(InvalidParameterError):
        sample_speakers_from(bad)


def test_a_guard_alarm_that_notifies_nobody_or_a_stopped_trail_fails(hardened: Hardened
                                                                     ) -> None:
    cw = hardened.session.client("cloudwatch")
    alarm = cw.describe_alarms(AlarmNames=["securepipe-kms-key-disable-or-deletion"])[
        "MetricAlarms"][0]
    cw.put_metric_alarm(AlarmName=alarm["AlarmName"], Namespace=alarm["Namespace"],
                        MetricName=alarm["MetricName"], Statistic="Sum", Period=300,
                        EvaluationPeriods=1, Threshold=1.0,
                        ComparisonOperator="GreaterThanOrEqualToThreshold", AlarmActions=[])
    card = hardened.run(checks=["cloudwatch_key_and_policy_change_alarms"])
    failing = [r for r in card.results[0].resources if r.status == "fail"]
    assert [r.resource for r in failing] == ["kms-key-disable-or-deletion"]
    assert "no enabled alarm" in failing[0].evidence
    hardened.session.client("cloudtrail").stop_logging(Name="securepipe-data-events")
    card = hardened.run(checks=["cloudwatch_key_and_policy_change_alarms"])
    assert {r.status for r in card.results[0].resources} == {"fail"}
    assert "no logging multi-region trail" in card.results[0].evidence


def test_a_bucket_whose_region_does_not_answer_is_unverifiable_not_skipped() -> None:
    from botocore.exceptions import EndpointConnectionError

    from securepipe.checks.discovery import discover_voice_buckets

    class Silent:
        def list_object_versions(self, **kwargs: Any) -> dict[str, Any]:
            raise EndpointConnectionError(endpoint_url="https://s3.ap-east-1.amazonaws.com")

    class Session:
        def client(self, service: str) -> Silent:
            return Silent()

    seen, notes = discover_voice_buckets(Session(), names=["far-away-bucket"])  # type: ignore[arg-type]
    assert [(s.bucket, s.status) for s in seen] == [("far-away-bucket", "unverifiable")]
    assert "EndpointConnectionError" in seen[0].evidence and notes
