"""Step 4 ingest: features kept, raw deleted (every version), malformed quarantined, crash-safe."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError

from securepipe import clock
from securepipe.data.dataset import load_manifest
from securepipe.encryption.envelope import Envelope, EnvelopeConfig, SampleContext
from securepipe.encryption.hardening import apply_bucket_hardening
from securepipe.encryption.upload import CONSENT_NOT_CHECKED, upload_sample
from securepipe.errors import ConsentError, InvalidParameterError
from securepipe.features.audio import malformed_examples, validate_wav
from securepipe.features.extract import extract, from_bytes
from securepipe.features.ingest import (
    STEPS,
    IngestConfig,
    IngestItem,
    RawVersion,
    ingest_batch,
    ingest_sample,
    items_from_manifest,
    raw_left,
)
from securepipe.retention.consent import ConsentRegistry
from securepipe.sandbox.account import Sandbox

logging.getLogger("aws_encryption_sdk").setLevel(logging.CRITICAL)
MANIFEST = load_manifest()


SPEAKER_OF = {u.sample_id: u.speaker for u in MANIFEST.utterances}
#: A day every manifest speaker's consent stands on (the tests run on any real date).
CONSENT_DAY = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)


@dataclass
class World:
    sb: Sandbox
    config: IngestConfig
    envelope: Envelope
    registry: ConsentRegistry

    def upload(self, item: IngestItem, src: Path) -> None:
        """The kit's upload: names its speaker (the item's, the manifest's, else spk01) and
        passes the consent gate."""
        speaker = item.speaker or SPEAKER_OF.get(item.sample_id, "spk01")
        upload_sample(self.sb.session, self.envelope, src, bucket=self.config.raw_bucket,
                      context=SampleContext(item.contractor, item.sample_id,
                                            self.config.upload_purpose),
                      key_arn=self.config.key_arn, speaker=speaker, consent=self.registry)

    def upload_bytes(self, item: IngestItem, data: bytes, tmp: Path) -> None:
        path = tmp / f"{item.sample_id}.wav"
        path.write_bytes(data)
        self.upload(item, path)

    def feature_versions(self, item: IngestItem) -> int:
        s3 = self.sb.session.client("s3")
        out = s3.list_object_versions(Bucket=self.config.features_bucket,
                                      Prefix=self.config.features_key(item))
        return len(out.get("Versions", []))


@pytest.fixture
def world() -> Iterator[World]:
    with Sandbox() as sb:
        clock.set_to(CONSENT_DAY)                 # the sandbox resets it when it closes
        registry = ConsentRegistry(sb.session)
        registry.load_manifest_consents(MANIFEST)
        res = sb.resources
        for role, key in (("raw", res.kms_key_arn), ("features", res.kms_key_arn),
                          ("archive", res.archive_key_arn)):
            apply_bucket_hardening(sb.session, res.bucket(role), key)
        config = IngestConfig(raw_bucket=res.bucket("raw"), features_bucket=res.bucket("features"),
                              archive_bucket=res.bucket("archive"), key_arn=res.kms_key_arn,
                              archive_key_arn=res.archive_key_arn)
        yield World(sb, config, Envelope(sb.session, EnvelopeConfig(key_arns=res.kms_key_arn)),
                    registry)


def _items(*sample_ids: str) -> list[IngestItem]:
    wanted = set(sample_ids)
    return [i for i in items_from_manifest(MANIFEST) if i.sample_id in wanted]


def test_whole_set_keeps_features_and_leaves_no_raw(world: World) -> None:
    items = items_from_manifest(MANIFEST)
    for item in items:
        world.upload(item, MANIFEST.path_of(item.sample_id))
    report = ingest_batch(items, world.config, lambda: world.sb.session)
    assert report.summary() == {"samples": 40, "processed": 40, "quarantined": 0,
                                "archived": 3, "missing": 0, "failed": 0, "refused": 0}
    assert raw_left(world.sb.session, world.config.raw_bucket) == 0
    # Feature round trip: what is stored decrypts to exactly what extraction gives.
    item = items[0]
    body = world.sb.session.client("s3").get_object(
        Bucket=world.config.features_bucket, Key=world.config.features_key(item))["Body"].read()
    blob = world.envelope.decrypt_bytes(body, SampleContext(
        item.contractor, item.sample_id, world.config.features_purpose))
    matrix, spec = from_bytes(blob)
    audio = validate_wav(MANIFEST.path_of(item.sample_id).read_bytes())
    assert spec == world.config.spec
    np.testing.assert_array_equal(matrix, extract(audio.samples, audio.sample_rate, spec))


def test_archive_only_where_the_record_demands_it(world: World) -> None:
    hold = next(i for i in items_from_manifest(MANIFEST) if i.legal_hold)
    plain = next(i for i in items_from_manifest(MANIFEST)
                 if not i.legal_hold and not i.archive_required)
    for item in (hold, plain):
        world.upload(item, MANIFEST.path_of(item.sample_id))
    report = ingest_batch([hold, plain], world.config, lambda: world.sb.session)
    assert [o.archived for o in report.outcomes] == [True, False]
    s3 = world.sb.session.client("s3")
    head = s3.head_object(Bucket=world.config.archive_bucket, Key=world.config.archive_key(hold))
    assert head["StorageClass"] == "DEEP_ARCHIVE"
    assert head["SSEKMSKeyId"] == world.config.archive_key_arn != world.config.key_arn
    assert head["ObjectLockLegalHoldStatus"] == "ON"
    with pytest.raises(ClientError) as err:   # moto enforces the archival class on reads
        s3.get_object(Bucket=world.config.archive_bucket, Key=world.config.archive_key(hold))
    assert err.value.response["Error"]["Code"] == "InvalidObjectState"
    with pytest.raises(ClientError):          # and the legal hold on deletes
        s3.delete_object(Bucket=world.config.archive_bucket, Key=world.config.archive_key(hold),
                         VersionId=head["VersionId"])
    with pytest.raises(ClientError):
        s3.head_object(Bucket=world.config.archive_bucket, Key=world.config.archive_key(plain))


def test_malformed_corpus_is_quarantined_and_the_batch_completes(world: World,
                                                                 tmp_path: Path) -> None:
    good = MANIFEST.path_of("spk01_u1").read_bytes()
    corpus = malformed_examples(good)
    assert len(corpus) >= 15
    items = [IngestItem("c09", f"bad{n:02d}") for n in range(len(corpus))]
    for item, example in zip(items, corpus, strict=True):
        world.upload_bytes(item, example.data, tmp_path)
    # a ciphertext made for another contractor, stored under c09's name
    foreign = IngestItem("c09", "foreign")
    world.upload(IngestItem("c08", "foreign"), MANIFEST.path_of("spk02_u1"))
    s3 = world.sb.session.client("s3")
    s3.copy_object(Bucket=world.config.raw_bucket, Key="raw/c09/foreign",
                   CopySource={"Bucket": world.config.raw_bucket, "Key": "raw/c08/foreign"},
                   ServerSideEncryption="aws:kms", SSEKMSKeyId=world.config.key_arn)
    good_items = _items("spk01_u1", "spk02_u2")
    for item in good_items:
        world.upload(item, MANIFEST.path_of(item.sample_id))
    report = ingest_batch([*items, foreign, *good_items], world.config, lambda: world.sb.session)
    by_id = {o.item.sample_id: o for o in report.outcomes}
    for item, example in zip(items, corpus, strict=True):
        outcome = by_id[item.sample_id]
        assert (outcome.status, outcome.reason) == ("quarantined", example.reason), example.name
        head = s3.head_object(Bucket=world.config.raw_bucket,
                              Key=f"quarantine/c09/{item.sample_id}")
        assert head["Metadata"]["securepipe-quarantine-reason"] == example.reason
    assert (by_id["foreign"].status, by_id["foreign"].reason) == ("quarantined", "decrypt-failed")
    assert report.count("processed") == 2
    assert report.count("quarantined") == len(corpus) + 1
    assert sum(report.quarantine_reasons.values()) == len(corpus) + 1


class Crash(Exception):
    pass


@pytest.mark.parametrize("step", STEPS)
def test_crash_after_any_step_then_rerun_converges(world: World, step: str) -> None:
    item = IngestItem("c01", "spk05_u2", legal_hold=True)  # exercises every step
    world.upload(item, MANIFEST.path_of("spk05_u2"))
    world.upload(item, MANIFEST.path_of("spk05_u2"))         # two raw versions

    def crash(done: str, _: IngestItem) -> None:
        if done == step:
            raise Crash(step)

    with pytest.raises(Crash):
        ingest_sample(world.sb.session, world.config, item, after_step=crash)
    if step not in ("delete",):
        # before the delete step completes, the raw upload is still there: nothing lost
        assert raw_left(world.sb.session, world.config.raw_bucket) > 0
    outcome = ingest_sample(world.sb.session, world.config, item)
    assert outcome.status == "processed" and outcome.archived
    assert world.feature_versions(item) == 1
    assert raw_left(world.sb.session, world.config.raw_bucket) == 0
    s3 = world.sb.session.client("s3")
    archived = s3.list_object_versions(Bucket=world.config.archive_bucket,
                                       Prefix=world.config.archive_key(item))
    assert len(archived.get("Versions", [])) == 1


@pytest.mark.parametrize("step", ["listed", *STEPS])
def test_a_second_run_finishing_first_at_any_step_is_harmless(world: World, step: str) -> None:
    """A queue delivers an event twice, or a batch runs beside the worker: the other run
    finishes the sample while this one is at ``step``; this one ends processed, not failed."""
    item = IngestItem("c01", "spk05_u2", legal_hold=True)
    world.upload(item, MANIFEST.path_of("spk05_u2"))
    s3 = world.sb.session.client("s3")
    listing = s3.list_object_versions(Bucket=world.config.raw_bucket, Prefix="raw/c01/spk05_u2")
    stale = [RawVersion(v["VersionId"], v["IsLatest"]) for v in listing["Versions"]]
    other: list[str] = []

    def the_other_run_finishes(done: str, _: IngestItem) -> None:
        if done == step and not other:
            other.append(ingest_sample(world.sb.session, world.config, item).status)

    if step == "listed":   # this run's listing is from before the other run deleted the take
        the_other_run_finishes("listed", item)
    outcome = ingest_sample(world.sb.session, world.config, item, listed=stale,
                            after_step=the_other_run_finishes)
    assert other == ["processed"]
    assert outcome.status == "processed" and outcome.archived
    assert world.feature_versions(item) == 1
    assert raw_left(world.sb.session, world.config.raw_bucket) == 0
    np.testing.assert_array_equal(_stored_features(world, item),
                                  _expected_features(world, "spk05_u2"))


def test_every_raw_version_and_delete_marker_is_removed(world: World) -> None:
    item = _items("spk03_u1")[0]
    s3 = world.sb.session.client("s3")
    world.upload(item, MANIFEST.path_of("spk03_u2"))
    s3.delete_object(Bucket=world.config.raw_bucket, Key="raw/c03/spk03_u1")  # a delete marker
    world.upload(item, MANIFEST.path_of("spk03_u1"))
    versions = s3.list_object_versions(Bucket=world.config.raw_bucket, Prefix="raw/c03/spk03_u1")
    assert len(versions["Versions"]) == 2 and len(versions["DeleteMarkers"]) == 1
    outcome = ingest_sample(world.sb.session, world.config, item)
    assert outcome.raw_versions_deleted == 3
    assert raw_left(world.sb.session, world.config.raw_bucket) == 0


def _stored_features(world: World, item: IngestItem) -> np.ndarray:
    body = world.sb.session.client("s3").get_object(
        Bucket=world.config.features_bucket, Key=world.config.features_key(item))["Body"].read()
    matrix, _ = from_bytes(world.envelope.decrypt_bytes(body, SampleContext(
        item.contractor, item.sample_id, world.config.features_purpose)))
    return matrix


def _expected_features(world: World, sample_id: str) -> np.ndarray:
    audio = validate_wav(MANIFEST.path_of(sample_id).read_bytes())
    return extract(audio.samples, audio.sample_rate, world.config.spec)


def test_a_version_uploaded_mid_ingest_is_not_deleted_unprocessed(world: World) -> None:
    item = IngestItem("c02", "spk02_u1")
    world.upload(item, MANIFEST.path_of("spk02_u1"))

    def reupload(step: str, _: IngestItem) -> None:
        if step == "extract":   # the contractor sends a corrected take while we work
            world.upload(item, MANIFEST.path_of("spk02_u2"))

    first = ingest_sample(world.sb.session, world.config, item, after_step=reupload)
    assert (first.status, first.raw_versions_deleted) == ("processed", 1)
    assert raw_left(world.sb.session, world.config.raw_bucket) == 1   # the new take is kept
    np.testing.assert_array_equal(_stored_features(world, item),
                                  _expected_features(world, "spk02_u1"))
    second = ingest_sample(world.sb.session, world.config, item)
    # the features of the older take are replaced, not kept as if they were this one's
    assert (second.status, second.resumed) == ("processed", False)
    assert raw_left(world.sb.session, world.config.raw_bucket) == 0
    np.testing.assert_array_equal(_stored_features(world, item),
                                  _expected_features(world, "spk02_u2"))


@pytest.mark.parametrize("marker", [False, True], ids=["two-takes", "take-marker-take"])
def test_a_crash_part_way_through_the_delete_resumes_on_the_same_take(world: World,
                                                                       marker: bool) -> None:
    item = IngestItem("c04", "spk04_u1")
    world.upload(item, MANIFEST.path_of("spk04_u2"))          # an older take
    if marker:
        world.sb.session.client("s3").delete_object(Bucket=world.config.raw_bucket,
                                                    Key="raw/c04/spk04_u1")
    world.upload(item, MANIFEST.path_of("spk04_u1"))          # the current take
    session = world.sb.session
    deletes: list[str] = []

    def crash_after_first_delete(**_: object) -> None:
        deletes.append("DeleteObject")
        if len(deletes) == 1:
            raise Crash("after the first DeleteObject")

    session.events.register("after-call.s3.DeleteObject", crash_after_first_delete)
    try:
        with pytest.raises(Crash):
            ingest_sample(session, world.config, item)
    finally:
        session.events.unregister("after-call.s3.DeleteObject", crash_after_first_delete)
    outcome = ingest_sample(world.sb.session, world.config, item)
    assert (outcome.status, outcome.resumed) == ("processed", True)
    assert raw_left(world.sb.session, world.config.raw_bucket) == 0
    assert world.feature_versions(item) == 1
    np.testing.assert_array_equal(_stored_features(world, item),
                                  _expected_features(world, "spk04_u1"))


def test_an_unversioned_raw_bucket_fails_loudly_and_deletes_nothing(world: World) -> None:
    s3 = world.sb.session.client("s3")
    s3.put_bucket_versioning(Bucket=world.config.raw_bucket,
                             VersioningConfiguration={"Status": "Suspended"})
    item = IngestItem("c05", "spk05_u1")
    world.upload(item, MANIFEST.path_of("spk05_u1"))          # version id "null"
    report = ingest_batch([item], world.config, lambda: world.sb.session)
    assert report.outcomes[0].status == "failed"
    assert "not versioned" in (report.outcomes[0].reason or "")
    assert raw_left(world.sb.session, world.config.raw_bucket) == 1
    assert world.feature_versions(item) == 0


def test_stale_features_are_replaced_only_if_nobody_wrote_meanwhile(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from securepipe.features import ingest

    item = IngestItem("c06", "spk06_u1")
    world.upload(item, MANIFEST.path_of("spk06_u2"))
    ingest_sample(world.sb.session, world.config, item)       # features of the first take
    world.upload(item, MANIFEST.path_of("spk06_u1"))          # a re-upload: they are stale
    check = ingest._features_check

    def another_run_writes_meanwhile(*args: object, **kwargs: object) -> object:
        result = check(*args, **kwargs)                       # type: ignore[arg-type]
        world.sb.session.client("s3").put_object(
            Bucket=world.config.features_bucket, Key=world.config.features_key(item),
            Body=b"another run's features", ServerSideEncryption="aws:kms",
            SSEKMSKeyId=world.config.key_arn)
        return result

    monkeypatch.setattr(ingest, "_features_check", another_run_writes_meanwhile)
    report = ingest_batch([item], world.config, lambda: world.sb.session)
    assert report.outcomes[0].status == "failed"
    assert "changed while this run checked it" in (report.outcomes[0].reason or "")
    assert raw_left(world.sb.session, world.config.raw_bucket) == 1   # the new take is kept
    body = world.sb.session.client("s3").get_object(
        Bucket=world.config.features_bucket, Key=world.config.features_key(item))["Body"].read()
    assert body == b"another run's features"                  # not overwritten blindly


def test_a_current_delete_marker_fails_loudly_and_deletes_nothing(world: World) -> None:
    item = IngestItem("c03", "spk03_u2")
    world.upload(item, MANIFEST.path_of("spk03_u2"))
    s3 = world.sb.session.client("s3")
    s3.delete_object(Bucket=world.config.raw_bucket, Key="raw/c03/spk03_u2")
    report = ingest_batch([item], world.config, lambda: world.sb.session)
    assert report.outcomes[0].status == "failed"
    assert "delete marker" in (report.outcomes[0].reason or "")
    assert raw_left(world.sb.session, world.config.raw_bucket) == 2   # version + marker


def test_a_batch_lists_once_per_contractor_and_makes_five_s3_calls_per_sample(
        world: World) -> None:
    items = [i for i in items_from_manifest(MANIFEST)
             if i.contractor in ("c01", "c02") and not (i.legal_hold or i.archive_required)]
    for item in items:
        world.upload(item, MANIFEST.path_of(item.sample_id))
    calls: list[str] = []
    session = world.sb.session
    handler = lambda event_name, **_: calls.append(event_name.rsplit(".", 1)[-1])  # noqa: E731
    session.events.register("before-call.s3", handler)
    try:
        report = ingest_batch(items, world.config, lambda: session)
    finally:
        session.events.unregister("before-call.s3", handler)
    assert report.count("processed") == len(items) >= 6
    assert calls.count("ListObjectVersions") == 2
    # per sample: head the raw version (the consent gate reads the speaker it names), read it,
    # put the features, read them back, delete the version
    per_sample = [c for c in calls if c != "ListObjectVersions"]
    assert sorted(set(per_sample)) == ["DeleteObject", "GetObject", "HeadObject", "PutObject"]
    assert len(per_sample) == 5 * len(items)


def test_missing_upload_is_reported_not_dropped(world: World) -> None:
    report = ingest_batch([IngestItem("c01", "never_uploaded")], world.config,
                          lambda: world.sb.session)
    assert report.summary()["missing"] == 1


def test_s3_failure_leaves_the_raw_upload_in_place(world: World) -> None:
    item = _items("spk04_u1")[0]
    world.upload(item, MANIFEST.path_of("spk04_u1"))
    broken = IngestConfig(**{**world.config.__dict__, "features_bucket": "securepipe-missing"})
    report = ingest_batch([item], broken, lambda: world.sb.session)
    assert report.outcomes[0].status == "failed"
    assert "re-run" in (report.outcomes[0].reason or "")
    assert raw_left(world.sb.session, world.config.raw_bucket) == 1


def test_thread_pool_gives_the_same_report(world: World) -> None:
    items = _items("spk01_u1", "spk02_u1", "spk03_u1", "spk04_u2")
    for item in items:
        world.upload(item, MANIFEST.path_of(item.sample_id))
    with ThreadPoolExecutor(max_workers=2) as pool:
        report = ingest_batch(items, world.config, lambda: world.sb.session, executor=pool)
    assert [o.item for o in report.outcomes] == items
    assert report.count("processed") == 4
    assert raw_left(world.sb.session, world.config.raw_bucket) == 0


def test_config_is_validated() -> None:
    with pytest.raises(InvalidParameterError):
        IngestConfig(raw_bucket="a", features_bucket="b", archive_bucket="c", key_arn="k",
                     archive_key_arn="k", archive_storage_class="STANDARD")
    with pytest.raises(InvalidParameterError):
        IngestItem("C01", "x")
    from securepipe.retention.shredding import SpeakerKeyConfig

    key = "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000"
    for keys_anchor in (None, "other-audit-bucket"):    # key creation must read the same anchors
        with pytest.raises(InvalidParameterError, match="anchor_bucket"):
            IngestConfig(raw_bucket="a", features_bucket="b", archive_bucket="c", key_arn=key,
                         archive_key_arn=key, anchor_bucket="audit-bucket",
                         speaker_keys=SpeakerKeyConfig("t-1", key, anchor_bucket=keys_anchor))
    IngestConfig(raw_bucket="a", features_bucket="b", archive_bucket="c", key_arn=key,
                 archive_key_arn=key, anchor_bucket="audit-bucket",
                 speaker_keys=SpeakerKeyConfig("t-1", key, anchor_bucket="audit-bucket"))


def test_every_step_is_audited_in_json(world: World) -> None:
    import io
    import json

    from securepipe.audit.records import JsonAuditFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonAuditFormatter())
    audit = logging.getLogger("securepipe.audit.records")
    audit.addHandler(handler)
    audit.setLevel(logging.INFO)
    try:
        item = _items("spk06_u1")[0]
        world.upload(item, MANIFEST.path_of("spk06_u1"))
        ingest_sample(world.sb.session, world.config, item)
    finally:
        audit.removeHandler(handler)
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [r["action"] for r in records] == [
        "ingest.read-raw", "ingest.store-features", "ingest.delete-raw"]
    assert all(r["sample_id"] == "spk06_u1" and r["contractor"] == item.contractor
               for r in records)
    assert all("dropped_fields" not in r for r in records)


# -- step 5: speaker metadata and per-speaker keys ---------------------------------------------


def _speaker_config(world: World) -> IngestConfig:
    from securepipe.retention.shredding import SpeakerKeyConfig

    registry = world.registry
    return IngestConfig(**{**world.config.__dict__, "speaker_keys": SpeakerKeyConfig(
        registry.table, world.config.key_arn)})


def test_items_name_their_speaker() -> None:
    items = items_from_manifest(MANIFEST)
    assert [i.speaker for i in items] == [u.speaker for u in MANIFEST.utterances]
    with pytest.raises(InvalidParameterError):
        IngestItem("c01", "x", speaker="spk/01")


def test_every_derived_object_names_its_speaker(world: World) -> None:
    item = _items("spk09_u2")[0]                       # archive_required: features + archive
    world.upload(item, MANIFEST.path_of(item.sample_id))
    assert ingest_sample(world.sb.session, world.config, item).archived
    s3 = world.sb.session.client("s3")
    for bucket, key in ((world.config.features_bucket, world.config.features_key(item)),
                        (world.config.archive_bucket, world.config.archive_key(item))):
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["Metadata"]["securepipe-speaker"] == "spk09"
        assert len(head["Metadata"]["securepipe-ciphertext-sha256"]) == 64


def test_speaker_keys_encrypt_features_and_archive_for_the_speaker_only(world: World) -> None:
    from securepipe.errors import DecryptionError

    config = _speaker_config(world)
    items = _items("spk05_u1", "spk05_u2")             # spk05_u2: legal hold, archived
    for item in items:
        world.upload(item, MANIFEST.path_of(item.sample_id))
    report = ingest_batch(items, config, lambda: world.sb.session)
    assert report.summary()["processed"] == 2 and report.summary()["archived"] == 1
    keys = config.speaker_keys.keys(world.sb.session)  # type: ignore[union-attr]
    s3 = world.sb.session.client("s3")
    item = items[1]
    body = s3.get_object(Bucket=config.features_bucket, Key=config.features_key(item))[
        "Body"].read()
    context = SampleContext(item.contractor, item.sample_id, config.features_purpose)
    with pytest.raises(DecryptionError):               # not under the shared key any more
        world.envelope.decrypt_bytes(body, context)
    matrix, spec = from_bytes(keys.envelope("spk05").decrypt_bytes(body, context))
    assert spec == config.spec and matrix.size
    head = s3.head_object(Bucket=config.archive_bucket, Key=config.archive_key(item))
    s3.restore_object(Bucket=config.archive_bucket, Key=config.archive_key(item),
                      VersionId=head["VersionId"], RestoreRequest={"Days": 1})
    archived = s3.get_object(Bucket=config.archive_bucket, Key=config.archive_key(item))[
        "Body"].read()
    wav = keys.envelope("spk05").decrypt_bytes(archived, SampleContext(
        item.contractor, item.sample_id, config.archive_purpose))
    assert wav == MANIFEST.path_of(item.sample_id).read_bytes()
    assert head["SSEKMSKeyId"] == config.archive_key_arn   # the bucket's own SSE is unchanged
    again = ingest_batch(items, config, lambda: world.sb.session)   # a re-run changes nothing
    assert all(o.resumed for o in again.outcomes)
    assert world.feature_versions(item) == 1


@pytest.mark.parametrize("keyed", [False, True], ids=["shared-key", "speaker-keys"])
def test_consent_gates_every_sample_in_every_configuration(world: World, keyed: bool) -> None:
    """Withdrawn, expired, erased and unknown speakers are refused per sample; the batch goes on,
    nothing of theirs is written, nothing is lost."""
    from securepipe.retention.shredding import shred_speaker_key

    config = _speaker_config(world) if keyed else world.config    # lesson 04: no speaker keys
    s3 = world.sb.session.client("s3")
    good, withdrawn, expired, erased = (_items(sid)[0] for sid in (
        "spk02_u1", "spk01_u1", "spk09_u1", "spk05_u1"))
    for item in (good, withdrawn, expired, erased):
        world.upload(item, MANIFEST.path_of(item.sample_id))
    # uploads that never passed the gate (a legacy client): an unknown speaker, and nobody
    stranger = IngestItem("c01", "spk42_u1", speaker="spk42")
    nobody = IngestItem("c02", "anon_u1")
    for item in (stranger, nobody):
        upload_sample(world.sb.session, world.envelope, MANIFEST.path_of("spk02_u2"),
                      bucket=config.raw_bucket, key_arn=config.key_arn,
                      context=SampleContext(item.contractor, item.sample_id,
                                            config.upload_purpose),
                      consent=CONSENT_NOT_CHECKED)
    world.registry.withdraw("spk01", CONSENT_DAY)
    shred_speaker_key(world.registry, "spk05")
    clock.set_to(dt.datetime(2027, 1, 3, tzinfo=dt.UTC))    # spk09's term ended on 2027-01-02
    items = [good, withdrawn, expired, erased, stranger, nobody]
    report = ingest_batch(items, config, lambda: world.sb.session)
    outcome = {o.item.sample_id: o for o in report.outcomes}
    assert outcome["spk02_u1"].status == "processed"
    refused = {sid: o.reason or "" for sid, o in outcome.items() if o.status == "refused"}
    assert set(refused) == {"spk01_u1", "spk09_u1", "spk05_u1", "spk42_u1", "anon_u1"}
    assert "(withdrawn)" in refused["spk01_u1"] and "(expired)" in refused["spk09_u1"]
    assert "(erased)" in refused["spk05_u1"] and "(unknown)" in refused["spk42_u1"]
    assert "neither the item nor the upload names a speaker" in refused["anon_u1"]
    assert raw_left(world.sb.session, config.raw_bucket) == 5      # nothing lost, nothing read
    stored = s3.list_object_versions(Bucket=config.features_bucket).get("Versions", [])
    assert [v["Key"] for v in stored] == [config.features_key(good)]
    for speaker in ("spk01", "spk09", "spk05"):                    # no key material created
        assert not world.registry.get(speaker).has_key
    # an upload for a refused speaker is refused before anything is sent
    with pytest.raises(ConsentError):
        world.upload(_items("spk01_u2")[0], MANIFEST.path_of("spk01_u2"))
    assert raw_left(world.sb.session, config.raw_bucket) == 5


def test_a_conflicting_speaker_is_refused(world: World) -> None:
    item = _items("spk02_u1")[0]
    world.upload(item, MANIFEST.path_of(item.sample_id))            # the upload names spk02
    liar = IngestItem(item.contractor, item.sample_id, speaker="spk03")
    report = ingest_batch([liar], world.config, lambda: world.sb.session)
    assert report.outcomes[0].status == "refused"
    assert "conflict" in (report.outcomes[0].reason or "")


@pytest.mark.parametrize("step", ["store", "archive"])
def test_speaker_key_path_converges_after_a_crash(world: World, step: str) -> None:
    config = _speaker_config(world)
    item = _items("spk05_u2")[0]
    world.upload(item, MANIFEST.path_of(item.sample_id))

    def crash(done: str, _: IngestItem) -> None:
        if done == step:
            raise Crash(step)

    with pytest.raises(Crash):
        ingest_sample(world.sb.session, config, item, after_step=crash)
    outcome = ingest_sample(world.sb.session, config, item)
    assert outcome.status == "processed" and outcome.archived
    assert world.feature_versions(item) == 1
    assert raw_left(world.sb.session, world.config.raw_bucket) == 0


def test_shared_clients_keep_a_connection_per_thread_and_leave_the_session_alone(
        world: World) -> None:
    """prepare_clients sizes every client the samples share (S3, the consent registry's
    DynamoDB, the Encryption SDK's KMS) to the threads in flight, then restores the factory's
    session: a client made from it afterwards has botocore's default pool again."""
    from securepipe.encryption.envelope import botocore_session_of
    from securepipe.features import ingest as ingest_module
    from securepipe.features.ingest import prepare_clients

    session = world.sb.session

    def factory() -> Any:
        return session

    prepare_clients(world.config, factory, max_pool_connections=32)
    clients = ingest_module._shared["clients"][1]
    kms_clients = list(clients.envelope._provider._regional_clients.values())
    assert kms_clients
    for client in (clients.s3, clients.registry._ddb, *kms_clients):
        assert client.meta.config.max_pool_connections == 32
    assert botocore_session_of(session).get_default_client_config() is None
    assert session.client("s3").meta.config.max_pool_connections == 10
    with pytest.raises(InvalidParameterError):
        prepare_clients(world.config, factory, max_pool_connections=0)
