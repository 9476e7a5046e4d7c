"""Step 5: lifecycle rules applied and verified, and the retention sweeper with a moved clock."""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from speaker_world import MANIFEST, SAMPLES, World, at, make_world

from securepipe.audit.records import JsonAuditFormatter
from securepipe.encryption.hardening import sse_kms_put_args
from securepipe.errors import InvalidParameterError
from securepipe.features.ingest import META_SPEAKER
from securepipe.lessons.antipatterns import ARTICLE_LIFECYCLE_RULE
from securepipe.retention.lifecycle import (
    DATA_PREFIXES,
    LIFECYCLE_CONTROLS,
    apply_lifecycle,
    features_expiration_days,
    inspect_lifecycle,
    lifecycle_rules,
)
from securepipe.retention.sweeper import sweep


@pytest.fixture
def world() -> Iterator[World]:
    yield from make_world()


def _failing(findings: list[Any]) -> set[str]:
    return {f.control for f in findings if f.status != "pass"}


# -- lifecycle rules ---------------------------------------------------------------------------


def test_rules_per_role() -> None:
    raw = {r["ID"]: r for r in lifecycle_rules("raw")}
    assert raw["raw-uploads"]["Expiration"] == {"Days": 7}
    assert raw["housekeeping"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    assert raw["housekeeping"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    longest = features_expiration_days(s.consent.term_days for s in MANIFEST.speakers)
    features = {r["ID"]: r for r in lifecycle_rules("features", max_term_days=longest)}
    assert features["features-consent-term"]["Expiration"] == {"Days": 1095}
    assert features_expiration_days([365, 730]) == 730
    assert features_expiration_days([365, 5000]) == 1095           # BIPA's 3-year cap
    assert lifecycle_rules("features", max_term_days=5000)[1]["Expiration"] == {"Days": 1095}
    archive = {r["ID"]: r for r in lifecycle_rules("archive")}
    assert archive["archive-cap"]["Transitions"] == [{"Days": 0, "StorageClass": "DEEP_ARCHIVE"}]
    assert archive["archive-cap"]["Expiration"] == {"Days": 1095}
    for bad in ({"role": "audit"}, {"role": "archive", "archive_class": "STANDARD_IA"},
                {"role": "raw", "raw_days": 0}, {"role": "archive", "archive_cap_days": 2000}):
        with pytest.raises(InvalidParameterError):
            lifecycle_rules(**bad)  # type: ignore[arg-type]  # a stand-in Session


def test_the_kit_rules_pass_inspection_on_every_bucket(world: World) -> None:
    for role in ("raw", "features", "archive"):
        apply_lifecycle(world.sb.session, world.bucket(role), lifecycle_rules(role))
        findings = inspect_lifecycle(world.sb.session, world.bucket(role),
                                     data_prefixes=DATA_PREFIXES[role])
        assert _failing(findings) == set(), [f for f in findings if not f.passed]
        assert {f.control for f in findings} == set(LIFECYCLE_CONTROLS)


def _mutate_raw(rule_id: str, change: Callable[[dict[str, Any]], None]
                ) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    def apply(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for rule in rules:
            if rule["ID"] == rule_id:
                change(rule)
        return rules
    return apply


def _transitions_only(rule: dict[str, Any]) -> None:
    del rule["Expiration"]
    rule["Transitions"] = [{"Days": 30, "StorageClass": "GLACIER"}]


MISCONFIGURATIONS: dict[str, tuple[Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
                                   set[str]]] = {
    "disabled": (_mutate_raw("raw-uploads", lambda r: r.update(Status="Disabled")),
                 {"lifecycle-rule", "lifecycle-expires-data"}),
    "transitions-only": (_mutate_raw("raw-uploads", _transitions_only),
                         {"lifecycle-rule", "lifecycle-expires-data"}),
    "prefix-matches-nothing": (_mutate_raw("raw-uploads",
                                           lambda r: r.update(Filter={"Prefix": "raw-samples/"})),
                               {"lifecycle-rule", "lifecycle-expires-data"}),
    "no-noncurrent-expiry": (_mutate_raw("housekeeping",
                                         lambda r: r.pop("NoncurrentVersionExpiration")),
                             {"lifecycle-noncurrent-expiry"}),
    "beyond-the-cap": (_mutate_raw("raw-uploads",
                                   lambda r: r.update(Expiration={"Days": 1500})),
                       {"lifecycle-expires-data"}),
    "ia-before-30-days": (_mutate_raw("raw-uploads", lambda r: r.update(
        Transitions=[{"Days": 5, "StorageClass": "STANDARD_IA"}])), {"lifecycle-transitions"}),
    "no-multipart-abort": (_mutate_raw("housekeeping",
                                       lambda r: r.pop("AbortIncompleteMultipartUpload")),
                           {"lifecycle-abort-multipart"}),
    # rules that exist, are enabled, and in effect never expire anything
    "expiration-date-2999": (_mutate_raw("raw-uploads", lambda r: r.update(
        Expiration={"Date": dt.datetime(2999, 1, 1, tzinfo=dt.UTC)})), {"lifecycle-expires-data"}),
    "raw-beyond-ingest-window": (_mutate_raw("raw-uploads", lambda r: r.update(
        Expiration={"Days": 30})), {"lifecycle-expires-data"}),
    "noncurrent-36500-days": (_mutate_raw("housekeeping", lambda r: r.update(
        NoncurrentVersionExpiration={"NoncurrentDays": 36500})), {"lifecycle-noncurrent-expiry"}),
    "abort-after-36500-days": (_mutate_raw("housekeeping", lambda r: r.update(
        AbortIncompleteMultipartUpload={"DaysAfterInitiation": 36500})),
        {"lifecycle-abort-multipart"}),
}


@pytest.mark.parametrize("name", MISCONFIGURATIONS)
def test_one_misconfiguration_at_a_time(world: World, name: str) -> None:
    mutate, expected = MISCONFIGURATIONS[name]
    rules = mutate(copy.deepcopy(lifecycle_rules("raw")))
    apply_lifecycle(world.sb.session, world.bucket("raw"), rules)
    findings = inspect_lifecycle(world.sb.session, world.bucket("raw"),
                                 data_prefixes=DATA_PREFIXES["raw"])
    assert _failing(findings) == expected


def test_no_configuration_at_all(world: World) -> None:
    findings = inspect_lifecycle(world.sb.session, world.bucket("raw"),
                                 data_prefixes=DATA_PREFIXES["raw"])
    assert _failing(findings) == {"lifecycle-configured", "lifecycle-expires-data",
                                  "lifecycle-noncurrent-expiry", "lifecycle-abort-multipart"}


def test_the_articles_one_rule_is_flagged(world: World) -> None:
    world.populate("spk01", archive=False)           # data under raw/ (prefixes inferred)
    apply_lifecycle(world.sb.session, world.bucket("raw"), [ARTICLE_LIFECYCLE_RULE])
    findings = {f.control: f for f in inspect_lifecycle(world.sb.session, world.bucket("raw"))}
    assert {c for c, f in findings.items() if not f.passed} == {
        "lifecycle-rule", "lifecycle-expires-data", "lifecycle-noncurrent-expiry",
        "lifecycle-abort-multipart"}
    assert "raw-samples/" in findings["lifecycle-rule"].evidence
    assert "matches none of the data" in findings["lifecycle-rule"].evidence
    caveat = findings["lifecycle-transitions"].evidence
    assert "128 KB" in caveat and "96 KB" in caveat and "30 days" in caveat


# -- the sweeper -----------------------------------------------------------------------------


def _expected_expired(world: World, when: dt.datetime) -> set[tuple[str, str, str]]:
    expired = {r.speaker for r in world.registry.speakers() if r.expired(when)}
    return {(b, k, v) for b, k, v, s in world.versions() if s in expired}


def test_sweep_deletes_exactly_the_expired_set(world: World,
                                               caplog: pytest.LogCaptureFixture) -> None:
    world.populate("spk01", "spk02", "spk09", "spk10", archive=True)
    s3 = world.s3
    key = world.feature_key("spk01_u1")                          # an old version and a marker
    s3.put_object(Bucket=world.bucket("features"), Key=key, Body=b"v2",
                  Metadata={META_SPEAKER: "spk01"},
                  **sse_kms_put_args(world.sb.resources.kms_key_arn))
    s3.delete_object(Bucket=world.bucket("features"), Key=key)
    when = at(2027, 3, 1)       # spk09 (2027-01-02) and spk01 (2027-02-10) have expired
    expected = _expected_expired(world, when)
    assert {k.split("/")[2][:5] for _, k, _ in expected} == {"spk01", "spk09"}
    before = world.versions()

    dry = sweep(world.sb.session, buckets=world.buckets, registry=world.registry,
                clock=lambda: when, sample_speakers=SAMPLES)
    assert {(e.bucket, e.key, e.version_id) for e in dry.would_delete} == expected
    assert world.versions() == before and not dry.deleted         # a dry run deletes nothing
    assert dry.speakers() == ["spk01", "spk09"]

    with caplog.at_level(logging.INFO, logger="securepipe.audit.records"):
        real = sweep(world.sb.session, buckets=world.buckets, registry=world.registry,
                     clock=lambda: when, dry_run=False, sample_speakers=SAMPLES)
    assert {(e.bucket, e.key, e.version_id) for e in real.deleted} == expected
    assert any(e.kind == "delete-marker" for e in real.deleted)
    assert world.versions() == {v for v in before if v[:3] not in expected}
    assert real.retained == len(before) - len(expected) and not real.kept
    audited = [r for r in caplog.records if getattr(r, "action", "") ==
               "retention.delete-version"]
    assert {(r.bucket, r.key, r.version_id) for r in audited} == expected
    lines = [json.loads(JsonAuditFormatter().format(r)) for r in audited]
    assert all("dropped_fields" not in line and line["reason"] for line in lines)


def test_withdrawal_is_enforced_by_the_next_sweep(world: World) -> None:
    world.populate("spk02", "spk03", archive=False)
    when = at(2027, 1, 15)
    report = sweep(world.sb.session, buckets=world.buckets, registry=world.registry,
                   clock=lambda: when, dry_run=False, sample_speakers=SAMPLES)
    assert not report.deleted                                     # nobody has expired yet
    world.registry.withdraw("spk03", at(2027, 1, 10))
    report = sweep(world.sb.session, buckets=world.buckets, registry=world.registry,
                   clock=lambda: when, dry_run=False, sample_speakers=SAMPLES)
    assert report.speakers() == ["spk03"] and len(report.deleted) == 8   # 4 raw + 4 features
    assert all("withdrawn" in e.reason for e in report.deleted)
    assert world.versions_of("spk03") == set() and world.versions_of("spk02")


def test_legal_hold_and_object_lock_retention_are_reported_not_deleted(world: World) -> None:
    world.populate("spk05", raw=False)                      # spk05_u2 is under legal hold
    s3 = world.s3
    s3.put_object(Bucket=world.bucket("archive"), Key="archive/c01/spk05_u3", Body=b"x",
                  Metadata={META_SPEAKER: "spk05"}, ObjectLockMode="COMPLIANCE",
                  ObjectLockRetainUntilDate=dt.datetime.now(dt.UTC) + dt.timedelta(days=400),
                  **sse_kms_put_args(world.sb.resources.archive_key_arn))
    when = at(2027, 5, 1)                                   # spk05 expired on 2027-04-10
    report = sweep(world.sb.session, buckets=world.buckets, registry=world.registry,
                   clock=lambda: when, dry_run=False, sample_speakers=SAMPLES)
    kept = {e.key: e.reason for e in report.kept}
    assert set(kept) == {"archive/c01/spk05_u2", "archive/c01/spk05_u3"}
    assert "legal hold" in kept["archive/c01/spk05_u2"]
    assert "COMPLIANCE retention" in kept["archive/c01/spk05_u3"]
    assert len(report.deleted) == 4                          # the four feature objects
    assert {k for _, k, _ in world.versions_of("spk05")} == set(kept)


def test_unattributable_objects_are_reported_never_deleted(world: World) -> None:
    s3, key_arn = world.s3, world.sb.resources.kms_key_arn
    s3.put_object(Bucket=world.bucket("raw"), Key="stray.bin", Body=b"?",
                  **sse_kms_put_args(key_arn))
    s3.put_object(Bucket=world.bucket("features"), Key="features/c01/spk01_u1/mel-fs1",
                  Body=b"?", Metadata={META_SPEAKER: "spk02"}, **sse_kms_put_args(key_arn))
    s3.put_object(Bucket=world.bucket("features"), Key="features/c01/spk77_u1/mel-fs1",
                  Body=b"?", Metadata={META_SPEAKER: "spk77"}, **sse_kms_put_args(key_arn))
    report = sweep(world.sb.session, buckets=world.buckets, registry=world.registry,
                   clock=lambda: at(2030, 1, 1), dry_run=False, sample_speakers=SAMPLES)
    reasons = {e.key: e.reason for e in report.unattributed}
    assert "no speaker metadata" in reasons["stray.bin"]
    assert "metadata names 'spk02'" in reasons["features/c01/spk01_u1/mel-fs1"]
    assert "the registry does not know" in reasons["features/c01/spk77_u1/mel-fs1"]
    assert not report.deleted and len(world.versions()) == 3


def test_sweep_arguments_are_checked(world: World) -> None:
    kwargs: dict[str, Any] = {"buckets": world.buckets, "registry": world.registry}
    with pytest.raises(InvalidParameterError):
        sweep(world.sb.session, **kwargs, clock=lambda: dt.datetime(2027, 1, 1))   # naive
    with pytest.raises(InvalidParameterError):
        sweep(world.sb.session, **{**kwargs, "buckets": []})
    with pytest.raises(InvalidParameterError):
        sweep(world.sb.session, **{**kwargs, "buckets": ["Not_A_Bucket"]})
    with pytest.raises(InvalidParameterError):
        sweep(world.sb.session, **kwargs, dry_run="no")  # type: ignore[arg-type]  # a stand-in Session
    world.sb.move_clock(dt.timedelta(days=3650))           # default clock: the sandbox's
    report = sweep(world.sb.session, **kwargs)
    assert report.at.year >= 2036 and report.dry_run


def test_thresholds_come_from_the_registry_and_fail_with_the_number(world: World) -> None:
    rules = lifecycle_rules("features", max_term_days=1095)
    apply_lifecycle(world.sb.session, world.bucket("features"), rules)
    ok = inspect_lifecycle(world.sb.session, world.bucket("features"),
                           data_prefixes=DATA_PREFIXES["features"])
    assert _failing(ok) == set()
    by_registry = {f.control: f for f in inspect_lifecycle(
        world.sb.session, world.bucket("features"), data_prefixes=DATA_PREFIXES["features"],
        registry=_short_registry(world))}                         # the longest term: 400 days
    bad = by_registry["lifecycle-expires-data"]
    assert not bad.passed and "1095 days, beyond the 400-day limit by 695 days" in bad.evidence
    rules = lifecycle_rules("raw")
    rules[1]["Expiration"] = {"Date": dt.datetime(2999, 1, 1, tzinfo=dt.UTC)}
    apply_lifecycle(world.sb.session, world.bucket("raw"), rules)
    dated = {f.control: f for f in inspect_lifecycle(
        world.sb.session, world.bucket("raw"), data_prefixes=DATA_PREFIXES["raw"],
        clock=lambda: at(2030, 1, 1))}
    away = (dt.datetime(2999, 1, 1, tzinfo=dt.UTC) - at(2030, 1, 1)).days
    assert f"raw/ expires after {away} days, beyond the 7-day limit by {away - 7} days" in dated[
        "lifecycle-expires-data"].evidence


def _only_short_terms() -> Any:
    from types import SimpleNamespace

    from securepipe.data.dataset import Consent, Speaker

    return SimpleNamespace(speakers=[Speaker("spk99", "c09", {}, Consent(
        "speech-model-training", dt.date(2026, 1, 1), 400, dt.date(2027, 2, 5)))])


def _short_registry(world: World) -> Any:
    from securepipe.retention.consent import ConsentRegistry

    registry = ConsentRegistry(world.sb.session, "consent-short")
    registry.load_manifest_consents(_only_short_terms())
    return registry


class _StoredRules:
    """An S3 client that answers with exactly the rules given. moto 5 drops
    ``NewerNoncurrentVersions`` from a stored ``NoncurrentVersionExpiration`` (it keeps it only
    for transitions), so that field is checked against a configuration as AWS returns it."""

    def __init__(self, rules: list[dict[str, Any]]) -> None:
        self._rules = rules

    def client(self, _: str) -> Any:
        return self

    def get_bucket_versioning(self, **_: Any) -> dict[str, Any]:
        return {"Status": "Enabled"}

    def get_bucket_lifecycle_configuration(self, **_: Any) -> dict[str, Any]:
        return {"Rules": self._rules}


def test_newer_noncurrent_versions_keep_old_versions_for_ever() -> None:
    rules = copy.deepcopy(lifecycle_rules("raw"))
    stored: Any = _StoredRules(rules)            # duck-typed stand-in for a boto3.Session
    assert _failing(inspect_lifecycle(stored, "securepipe-raw",
                                      data_prefixes=DATA_PREFIXES["raw"])) == set()
    rules[0]["NoncurrentVersionExpiration"]["NewerNoncurrentVersions"] = 100
    findings = {f.control: f for f in inspect_lifecycle(
        stored, "securepipe-raw", data_prefixes=DATA_PREFIXES["raw"])}
    bad = findings["lifecycle-noncurrent-expiry"]
    assert not bad.passed and "NewerNoncurrentVersions 100" in bad.evidence


def test_sweep_aborts_stale_uploads_and_reports_malformed_consent(world: World) -> None:
    """No mapping passed: the registry's index attributes raw uploads; an unfinished upload
    older than the ingest window is aborted; a malformed consent item is reported and the
    sweep goes on."""
    world.populate("spk01", "spk02", archive=False)
    s3, raw = world.s3, world.bucket("raw")
    sse = sse_kms_put_args(world.sb.resources.kms_key_arn)
    stale = s3.create_multipart_upload(Bucket=raw, Key="raw/c09/unknown_u1", **sse)
    world.sb.session.client("dynamodb").update_item(
        TableName=world.registry.table, Key={"speaker": {"S": "spk04"}},
        UpdateExpression="REMOVE consent_date")
    when = at(2030, 1, 1)                                  # every manifest speaker expired
    report = sweep(world.sb.session, buckets=world.buckets, registry=world.registry,
                   clock=lambda: when, dry_run=False)
    assert [(e.key, e.version_id, e.action) for e in report.aborted] == [
        ("raw/c09/unknown_u1", stale["UploadId"], "aborted")]
    assert not s3.list_multipart_uploads(Bucket=raw).get("Uploads")
    assert report.registry_errors and "'spk04'" in report.registry_errors[0]
    assert "consent_date" in report.registry_errors[0]
    assert report.speakers() == ["spk01", "spk02"] and not report.unattributed
    assert world.versions_of("spk01") == set() == world.versions_of("spk02")


def test_an_out_of_range_consent_item_is_reported_and_the_sweep_goes_on(world: World) -> None:
    """A term of 99999999999 days or a last interaction on 9999-12-30 would overflow date
    arithmetic: the item is a typed registry error, its versions unattributed, the rest swept."""
    world.populate("spk04", "spk02", archive=False)
    ddb = world.sb.session.client("dynamodb")
    ddb.update_item(TableName=world.registry.table, Key={"speaker": {"S": "spk04"}},
                    UpdateExpression="SET term_days = :t, last_interaction = :l",
                    ExpressionAttributeValues={":t": {"N": "99999999999"},
                                               ":l": {"S": "9999-12-30"}})
    report = sweep(world.sb.session, buckets=world.buckets, registry=world.registry,
                   clock=lambda: at(2031, 1, 1), dry_run=False)
    assert any("spk04" in e and "term_days" in e for e in report.registry_errors)
    assert {e.speaker for e in report.unattributed} >= {"spk04"}
    assert "spk02" in report.speakers()                              # the rest was swept
    assert world.versions_of("spk02") == set()


def test_a_version_deleted_after_the_listing_is_skipped_any_other_error_is_typed(
        world: World) -> None:
    """Ingest deletes raw versions all the time: one gone between the listing and its HeadObject
    is not there any more (skipped), never an error that stops a sweep or another erasure."""
    from botocore.exceptions import ClientError

    from securepipe.errors import RetentionError
    from securepipe.retention.erasure import erase_speaker
    from securepipe.retention.sweeper import attributed_versions
    world.populate("spk01", "spk03", archive=False)
    s3, raw = world.s3, world.bucket("raw")
    listed = attributed_versions(world.sb.session, raw, registry=world.registry)
    first = next(listed)                                # the bucket is listed now
    for v in s3.list_object_versions(Bucket=raw)["Versions"]:
        if v["VersionId"] != first.version_id:
            s3.delete_object(Bucket=raw, Key=v["Key"], VersionId=v["VersionId"])
    assert list(listed) == []

    world.populate("spk01", "spk03", archive=False)

    def retire_spk03(step: str, detail: str) -> None:   # meanwhile, ingest retires spk03's raw
        for v in s3.list_object_versions(Bucket=raw, Prefix="raw/").get("Versions", []):
            if "spk03" in v["Key"]:
                s3.delete_object(Bucket=raw, Key=v["Key"], VersionId=v["VersionId"])
    receipt = erase_speaker(world.sb.session, speaker="spk01", registry=world.registry,
                            buckets=world.buckets, signer=world.signer,
                            anchor_bucket=world.bucket("audit"), after_step=retire_spk03)
    assert receipt.remaining_after == 0 and receipt.deleted
    report = sweep(world.sb.session, buckets=world.buckets, registry=world.registry,
                   clock=lambda: at(2040, 1, 1), dry_run=False)
    assert report.deleted

    class Denied:                                        # any other failure: typed, named
        def __init__(self, real: Any) -> None:
            self._real = real

        def __getattr__(self, name: str) -> Any:
            return getattr(self._real, name)

        def head_object(self, **kwargs: Any) -> Any:
            raise ClientError({"Error": {"Code": "AccessDenied"}}, "HeadObject")

    class Session:
        def client(self, name: str, *args: Any, **kwargs: Any) -> Any:
            return Denied(world.sb.session.client(name, *args, **kwargs))
    world.populate("spk03", archive=False)
    with pytest.raises(RetentionError, match=f"s3://{world.bucket('features')}/features/"):
        list(attributed_versions(Session(), world.bucket("features"),  # type: ignore[arg-type]  # a stand-in Session
                                 registry=world.registry))


def test_a_sample_written_while_the_bucket_is_listed_is_attributed_by_the_index(
        world: World) -> None:
    """Admission writes a sample's index entry before its object, and attribution reads the
    index after listing the bucket, so a sample admitted and written just before the listing is
    attributed, by :func:`attributed_versions` and by a pass over every bucket alike (read
    before the listing, the index missed it: those two assertions fail with the old order).
    The erasure then finds both late writes (not sensitive to the order: the speaker is
    erasing, so nothing more is admitted for them during its own listing)."""
    from securepipe.retention.erasure import erase_speaker
    from securepipe.retention.sweeper import attribute_buckets, attributed_versions
    world.populate("spk01", archive=False)
    session, raw = world.sb.session, world.bucket("raw")
    writer = session.client("s3")                      # made before the hook: not hooked
    written: list[str] = []

    def admit_and_write(**kwargs: Any) -> None:        # a writer lands as the bucket is listed
        if kwargs["params"].get("Bucket") != raw or len(written) == 2:
            return
        sample = f"late{len(written)}"
        world.registry.admit("spk01", sample, contractor="c01", at=at(2026, 6, 1))
        writer.put_object(Bucket=raw, Key=f"raw/c01/{sample}", Body=b"no speaker metadata",
                          **sse_kms_put_args(world.sb.resources.kms_key_arn))
        written.append(f"raw/c01/{sample}")

    session.events.register("before-parameter-build.s3.ListObjectVersions", admit_and_write)
    try:
        one = {v.key: v.speaker for v in attributed_versions(session, raw,
                                                             registry=world.registry)}
        assert one[written[0]] == "spk01"
        every = {v.key: v.speaker for listed in attribute_buckets(
            session, world.buckets, registry=world.registry) for v in listed.versions}
        assert every[written[1]] == "spk01"
        receipt = erase_speaker(session, speaker="spk01", registry=world.registry,
                                buckets=world.buckets, signer=world.signer,
                                anchor_bucket=world.bucket("audit"))
    finally:
        session.events.unregister("before-parameter-build.s3.ListObjectVersions", admit_and_write)
    # both late writes are the speaker's: the erasure deletes them, none is left unattributed
    assert {d.key for d in receipt.deleted} >= set(written)
    assert not receipt.unattributed and receipt.remaining_after == 0
    assert world.versions_of("spk01") == set()
