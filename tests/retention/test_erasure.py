"""Step 5: per-speaker erasure reaches every version and every copy, with a receipt."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from speaker_world import CONSENT_DAY, MANIFEST, World, make_world

from securepipe import clock
from securepipe.audit.records import JsonAuditFormatter
from securepipe.encryption.envelope import Envelope, EnvelopeConfig, SampleContext
from securepipe.encryption.hardening import apply_bucket_hardening, sse_kms_put_args
from securepipe.encryption.signing import PublicKeyVerifier
from securepipe.encryption.upload import upload_sample
from securepipe.errors import (
    ConsentRecordError,
    DecryptionError,
    ErasureError,
    ErasureInProgressError,
    InvalidParameterError,
    JournalRollbackError,
    SignatureError,
    UnknownSpeakerError,
)
from securepipe.features.ingest import IngestConfig, ingest_batch, items_from_manifest
from securepipe.retention.consent import lease_time
from securepipe.retention.erasure import erase_speaker, verify_receipt
from securepipe.retention.shredding import SpeakerKeyConfig
from securepipe.retention.sweeper import sweep


@pytest.fixture
def world() -> Iterator[World]:
    yield from make_world()


def _erase(world: World, speaker: str, **kwargs: Any) -> Any:
    """The default call: no mapping, attribution from metadata and the registry's index."""
    return erase_speaker(world.sb.session, speaker=speaker, registry=world.registry,
                         buckets=world.buckets, signer=world.signer,
                         anchor_bucket=world.bucket("audit"), **kwargs)


def test_erasure_through_the_real_pipeline(world: World,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """Ingest with speaker keys, then erase one speaker: nothing left, no copy decrypts."""
    sb, res = world.sb, world.sb.resources
    clock.set_to(CONSENT_DAY)                          # every speaker's consent stands
    for role, key in (("raw", res.kms_key_arn), ("features", res.kms_key_arn),
                      ("archive", res.archive_key_arn)):
        apply_bucket_hardening(sb.session, res.bucket(role), key)
    config = IngestConfig(raw_bucket=res.bucket("raw"), features_bucket=res.bucket("features"),
                          archive_bucket=res.bucket("archive"), key_arn=res.kms_key_arn,
                          archive_key_arn=res.archive_key_arn, consent_table=world.registry.table,
                          speaker_keys=SpeakerKeyConfig(world.registry.table, res.kms_key_arn))
    items = [i for i in items_from_manifest(MANIFEST) if i.speaker in ("spk09", "spk02")]
    uploads = Envelope(sb.session, EnvelopeConfig(key_arns=res.kms_key_arn))
    for item in items:
        upload_sample(sb.session, uploads, MANIFEST.path_of(item.sample_id),
                      bucket=res.bucket("raw"), key_arn=res.kms_key_arn,
                      context=SampleContext(item.contractor, item.sample_id,
                                            "speech-model-training"),
                      speaker=item.speaker, consent=world.registry)   # attributed at write time
    report = ingest_batch(items[:-1], config, lambda: sb.session)   # the last upload stays raw
    assert report.summary()["processed"] == 7 and report.summary()["archived"] == 1
    s3 = world.s3
    key = world.feature_key("spk09_u1")
    stolen = s3.get_object(Bucket=world.bucket("features"), Key=key)["Body"].read()  # a copy
    s3.delete_object(Bucket=world.bucket("features"), Key=key)       # "deleted": a marker only
    ctx = SampleContext("c01", "spk09_u1", "speech-features")
    assert world.keys.envelope("spk09").decrypt_bytes(
        s3.get_object(Bucket=world.bucket("features"), Key=key,
                      VersionId=_versions(world, key)[0])["Body"].read(), ctx)
    other_key = world.feature_key("spk02_u1")
    other = s3.get_object(Bucket=world.bucket("features"), Key=other_key)["Body"].read()
    before_other = world.versions_of("spk02")
    spk09 = world.versions_of("spk09")
    assert len(spk09) == 4 + 1 + 1    # 4 features (one with a delete marker), 1 archive copy

    with caplog.at_level(logging.INFO, logger="securepipe.audit.records"):
        receipt = _erase(world, "spk09")
    assert receipt.status == "erased" and receipt.complete and receipt.remaining_after == 0
    assert world.versions_of("spk09") == set()                       # nothing in any bucket
    assert {(d.bucket, d.key, d.version_id) for d in receipt.deleted} == spk09
    digests = {d.key: d for d in receipt.deleted if d.kind == "version"}
    assert digests[key].sha256 == hashlib.sha256(stolen).hexdigest()
    assert digests["archive/c01/spk09_u2"].sha256_source == "s3-checksum"   # DEEP_ARCHIVE
    assert receipt.shredding is not None and receipt.shredding.shredded
    with pytest.raises(DecryptionError):                              # the stolen copy is noise
        world.keys.envelope("spk09").decrypt_bytes(stolen, ctx)
    assert world.keys.envelope("spk02").decrypt_bytes(other, SampleContext(
        "c02", "spk02_u1", "speech-features"))                       # everyone else decrypts
    assert world.versions_of("spk02") == before_other
    actions = [getattr(r, "action", "") for r in caplog.records]
    assert actions.count("erasure.delete-version") == len(spk09) and "erasure.erased" in actions
    lines = [json.loads(JsonAuditFormatter().format(r)) for r in caplog.records
             if getattr(r, "action", "").startswith("erasure.")]
    assert all("dropped_fields" not in line for line in lines)      # all in the audit vocabulary
    assert {line["speaker"] for line in lines} == {"spk09"}
    assert {line["version_id"] for line in lines if "version_id" in line} == {
        v for _, _, v in spk09}


def _versions(world: World, key: str) -> list[str]:
    out = world.s3.list_object_versions(Bucket=world.bucket("features"), Prefix=key)
    return [v["VersionId"] for v in out.get("Versions", [])]


def test_every_version_marker_raw_and_quarantine_copy_goes(world: World) -> None:
    world.populate("spk01", "spk03")
    s3, key_arn = world.s3, world.sb.resources.kms_key_arn
    key = world.feature_key("spk01_u2")
    for _ in range(2):                                               # more old versions
        s3.put_object(Bucket=world.bucket("features"), Key=key, Body=b"v",
                      **sse_kms_put_args(key_arn))
    s3.delete_object(Bucket=world.bucket("raw"), Key="raw/c01/spk01_u3")       # a marker
    s3.put_object(Bucket=world.bucket("raw"), Key="quarantine/c01/spk01_u4", Body=b"q",
                  **sse_kms_put_args(key_arn))
    mine, others = world.versions_of("spk01"), world.versions_of("spk03")
    receipt = _erase(world, "spk01")
    assert receipt.complete and {(d.bucket, d.key, d.version_id) for d in receipt.deleted} == mine
    assert {d.kind for d in receipt.deleted} == {"version", "delete-marker"}
    assert world.versions_of("spk01") == set() and world.versions_of("spk03") == others
    assert all(d.sha256 for d in receipt.deleted if d.kind == "version")
    rows = receipt.rows()
    assert len(rows) == len(mine) and {r["outcome"] for r in rows} == {"deleted"}


def test_legal_hold_keeps_the_object_and_the_key_until_released(world: World) -> None:
    world.populate("spk05", "spk06")                  # archive/c01/spk05_u2 is under legal hold
    stolen = world.s3.get_object(Bucket=world.bucket("features"),
                                 Key=world.feature_key("spk05_u1"))["Body"].read()
    held = receipt = _erase(world, "spk05")
    assert receipt.status == "held" and not receipt.complete
    assert [(k.key, k.reason) for k in receipt.kept] == [
        ("archive/c01/spk05_u2", "S3 Object Lock legal hold is ON")]
    assert receipt.shredding is None and "legal hold" in (receipt.key_kept_reason or "")
    assert {k for _, k, _ in world.versions_of("spk05")} == {"archive/c01/spk05_u2"}
    assert world.registry.get("spk05").status == "erasure-held"
    archive = world.s3                                              # the held copy stays readable
    [version] = [v for b, k, v in world.versions_of("spk05")]
    archive.restore_object(Bucket=world.bucket("archive"), Key="archive/c01/spk05_u2",
                           VersionId=version, RestoreRequest={"Days": 1})
    body = archive.get_object(Bucket=world.bucket("archive"), Key="archive/c01/spk05_u2",
                              VersionId=version)["Body"].read()
    assert world.keys.envelope("spk05").decrypt_bytes(
        body, SampleContext("c01", "spk05_u2", "legal-archive")) == b"wav-spk05_u2"

    archive.put_object_legal_hold(Bucket=world.bucket("archive"), Key="archive/c01/spk05_u2",
                                  VersionId=version, LegalHold={"Status": "OFF"})
    receipt = _erase(world, "spk05")                                 # the hold is released
    assert receipt.status == "erased" and receipt.complete and receipt.resumed
    assert len(receipt.deleted) == len(held.deleted) + 1              # both runs, one receipt
    assert world.versions_of("spk05") == set()
    with pytest.raises(DecryptionError):
        world.keys.envelope("spk05").decrypt_bytes(stolen, SampleContext(
            "c01", "spk05_u1", "speech-features"))


def test_object_lock_retention_is_reported(world: World) -> None:
    world.populate("spk07", archive=False)
    world.s3.put_object(Bucket=world.bucket("archive"), Key="archive/c03/spk07_u1", Body=b"x",
                        ObjectLockMode="COMPLIANCE",
                        ObjectLockRetainUntilDate=dt.datetime.now(dt.UTC) + dt.timedelta(days=30),
                        **sse_kms_put_args(world.sb.resources.archive_key_arn))
    receipt = _erase(world, "spk07")
    assert receipt.status == "held" and receipt.remaining_after == 1
    assert "COMPLIANCE retention until" in receipt.kept[0].reason
    assert world.registry.get("spk07").has_key


class Crash(Exception):
    pass


def test_crash_half_way_then_rerun_completes_without_touching_others(world: World) -> None:
    world.populate("spk01", "spk05", "spk09")
    mine = world.versions_of("spk01")
    others = {s: world.versions_of(s) for s in ("spk05", "spk09")}
    calls = []

    def crash(step: str, detail: str) -> None:
        calls.append(step)
        if len(calls) == 3:
            raise Crash(detail)

    with pytest.raises(Crash):
        _erase(world, "spk01", after_step=crash)
    assert len(world.versions_of("spk01")) == len(mine) - 3
    assert world.registry.get("spk01").status == "erasing"
    assert world.registry.get("spk01").has_key                        # not shredded yet
    receipt = _erase(world, "spk01")
    assert receipt.complete and receipt.resumed
    assert {(d.bucket, d.key, d.version_id) for d in receipt.deleted} == mine   # both runs
    assert world.versions_of("spk01") == set()
    assert {s: world.versions_of(s) for s in others} == others


def test_second_erasure_is_idempotent(world: World) -> None:
    world.populate("spk01")
    first = _erase(world, "spk01", clock=lambda: dt.datetime(2027, 1, 2, tzinfo=dt.UTC))
    second = _erase(world, "spk01")
    # built from the verified journal: everything the first run deleted, nothing new
    assert second.status == "already-erased" and second.complete
    assert first.deleted and second.deleted == first.deleted
    assert first.when == dt.datetime(2027, 1, 2, tzinfo=dt.UTC)
    assert world.registry.get("spk01").erased_at == first.when      # the erasure date stays
    assert second.when >= second.started                             # never dated in the past
    assert second.shredding is None
    # a straggler written later (a late ingest) is removed by the next call
    world.s3.put_object(Bucket=world.bucket("raw"), Key="raw/c01/spk01_u1", Body=b"late",
                        **sse_kms_put_args(world.sb.resources.kms_key_arn))
    third = _erase(world, "spk01")
    assert third.status == "already-erased" and third.deleted[:-1] == first.deleted
    assert third.deleted[-1].key == "raw/c01/spk01_u1"
    assert "found after the speaker was erased" in third.deleted[-1].attribution
    assert _erase(world, "spk01").deleted == third.deleted        # and stays in every receipt


def test_a_rerun_after_a_crash_at_shred_lists_every_deletion(world: World) -> None:
    """The first run deleted everything and shredded, then crashed before its receipt; the
    re-run (already erased) returns the receipt of everything deleted, from the journal."""
    world.populate("spk03", archive=False)
    mine = world.versions_of("spk03")

    def crash(step: str, detail: str) -> None:
        if step == "shred":
            raise Crash(detail)
    with pytest.raises(Crash):
        _erase(world, "spk03", after_step=crash)
    receipt = _erase(world, "spk03")
    assert receipt.status == "already-erased" and receipt.complete
    assert {(d.bucket, d.key, d.version_id) for d in receipt.deleted} == mine


def test_bad_input(world: World) -> None:
    world.populate("spk02", archive=False)
    before = world.versions()
    with pytest.raises(UnknownSpeakerError):
        _erase(world, "spk42")
    assert world.versions() == before

    calls: list[str] = []
    world.sb.session.events.register("before-call", lambda **kw: calls.append(kw["model"].name))
    world.registry._ddb.meta.events.register(
        "before-call", lambda **kw: calls.append(kw["model"].name))
    for hostile in ["", "spk/01", "*", "spk01\n", "../spk01", None, 42]:
        with pytest.raises(InvalidParameterError):
            _erase(world, hostile)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError):
        erase_speaker(world.sb.session, speaker="spk02", registry=world.registry, buckets=[],
                      signer=world.signer, anchor_bucket=world.bucket("audit"))
    with pytest.raises(InvalidParameterError):
        erase_speaker(world.sb.session, speaker="spk02", registry=world.registry,
                      buckets=world.buckets[0], signer=world.signer,
                      anchor_bucket=world.bucket("audit"))  # a str, not a list
    with pytest.raises(InvalidParameterError):                   # the anchor is not erased
        erase_speaker(world.sb.session, speaker="spk02", registry=world.registry,
                      buckets=world.buckets, signer=world.signer,
                      anchor_bucket=world.buckets[0])
    assert calls == []                                           # refused before any AWS call

    missing = "securepipe-missing-bucket"
    with pytest.raises(ErasureError):
        erase_speaker(world.sb.session, speaker="spk02", registry=world.registry,
                      buckets=[missing], signer=world.signer,
                      anchor_bucket=world.bucket("audit"))
    assert world.registry.get("spk02").has_key                   # nothing shredded


# -- every copy, by default; signed receipts and journal ------------------------------------


def _pending(world: World) -> set[tuple[str, str, str]]:
    return {(b, u["Key"], u["UploadId"]) for b in world.buckets
            for u in world.s3.list_multipart_uploads(Bucket=b).get("Uploads", [])}


def test_default_call_finds_every_shape_and_nothing_of_theirs_decrypts(world: World) -> None:
    """Versions, delete markers, quarantine, features, archive, an unfinished multipart upload,
    an export with metadata, and a raw upload attributed only by the registry's index: the
    default call (no mapping) erases them all; other speakers' versions are unchanged."""
    world.populate("spk01", "spk02")
    s3, res = world.s3, world.sb.resources
    raw, features = world.bucket("raw"), world.bucket("features")
    sse = sse_kms_put_args(res.kms_key_arn)
    env = world.keys.envelope("spk01")
    feat = world.feature_key("spk01_u1")
    stolen = s3.get_object(Bucket=features, Key=feat)["Body"].read()      # a copy outside
    s3.put_object(Bucket=features, Key=feat, Body=env.encrypt_bytes(
        b"again", world.features_context("spk01_u1")), Metadata={"securepipe-speaker": "spk01"},
        **sse)                                                          # a second version
    s3.delete_object(Bucket=raw, Key="raw/c01/spk01_u2")                # a delete marker
    s3.put_object(Bucket=raw, Key="quarantine/c01/spk01_u3", Body=b"bad",  # quarantine copy
                  Metadata={"securepipe-speaker": "spk01", "securepipe-sample": "spk01_u3"},
                  **sse)
    export = env.encrypt_bytes(b"export", world.features_context("spk01_u4"))
    s3.put_object(Bucket=features, Key="exports/2026-11/batch7.enc", Body=export,
                  Metadata={"securepipe-speaker": "spk01", "securepipe-sample": "spk01_u4"},
                  **sse)                                              # an export, odd key
    upload = s3.create_multipart_upload(Bucket=raw, Key="raw/c01/spk01_u4", **sse)
    s3.upload_part(Bucket=raw, Key="raw/c01/spk01_u4", UploadId=upload["UploadId"],
                   PartNumber=1, Body=b"first part of the recording")
    other_upload = s3.create_multipart_upload(Bucket=raw, Key="raw/c02/spk02_u4", **sse)
    # the raw uploads carry no speaker metadata: only the registry's index attributes them
    head = s3.head_object(Bucket=raw, Key="raw/c01/spk01_u1")
    assert "securepipe-speaker" not in head.get("Metadata", {})
    mine = world.versions_of("spk01")
    others = world.versions_of("spk02")
    assert {k for _, k, _ in mine} >= {"raw/c01/spk01_u1", "raw/c01/spk01_u2",
                                       "quarantine/c01/spk01_u3", "exports/2026-11/batch7.enc"}

    receipt = _erase(world, "spk01")                                  # the default call

    assert receipt.status == "erased" and receipt.complete, receipt.summary()
    assert receipt.remaining_after == 0 and not receipt.unattributed
    assert world.versions_of("spk01") == set()                        # nothing left
    assert {(d.bucket, d.key, d.version_id) for d in receipt.deleted
            if d.kind != "multipart-upload"} == mine
    assert [(d.key, d.version_id) for d in receipt.deleted if d.kind == "multipart-upload"] == [
        ("raw/c01/spk01_u4", upload["UploadId"])]
    assert _pending(world) == {(raw, "raw/c02/spk02_u4", other_upload["UploadId"])}
    # (completing the aborted upload is impossible: AWS answers NoSuchUpload; moto 5 raises a
    # bare KeyError inside its backend, so the listing above is what this test checks)
    for message, sid in ((stolen, "spk01_u1"), (export, "spk01_u4")):  # no copy decrypts
        with pytest.raises(DecryptionError):
            world.keys.envelope("spk01").decrypt_bytes(message, world.features_context(sid))
    assert world.versions_of("spk02") == others                       # others unchanged
    receipt.verify(PublicKeyVerifier.from_kms(world.sb.session, res.signing_key_arn))


def test_unattributable_versions_and_uploads_make_the_receipt_incomplete(world: World) -> None:
    world.populate("spk09", archive=False)
    s3, raw = world.s3, world.bucket("raw")
    sse = sse_kms_put_args(world.sb.resources.kms_key_arn)
    s3.put_object(Bucket=raw, Key="scratch/spk09_u1.enc", Body=b"?", **sse)   # odd key
    s3.put_object(Bucket=raw, Key="copies/x", Body=b"?", Tagging="speaker=spk09", **sse)
    receipt = _erase(world, "spk09")
    assert receipt.status == "erased" and not receipt.complete
    assert {u.key for u in receipt.unattributed} == {"scratch/spk09_u1.enc", "copies/x"}
    assert "UNATTRIBUTED" in " ".join(r["outcome"] for r in receipt.rows())
    assert world.versions_of("spk09") == set()


def test_edited_receipt_and_forged_journal_fail_verification(world: World) -> None:
    world.populate("spk01", "spk02", archive=False)
    verifier = PublicKeyVerifier.from_kms(world.sb.session, world.sb.resources.signing_key_arn)
    calls: list[str] = []

    def crash(step: str, detail: str) -> None:
        calls.append(step)
        if len(calls) == 2:
            raise Crash(detail)

    with pytest.raises(Crash):
        _erase(world, "spk01", after_step=crash)
    journal = world.registry.journal("spk01")
    assert len(journal) == 2 and all(isinstance(e["sig"], bytes) for e in journal)
    # a forged entry: another speaker's object claimed as deleted, with a copied signature
    [victim] = [(b, k, v) for b, k, v in world.versions_of("spk02")][:1]
    forged = {**journal[1], "seq": 2, "record": {**journal[1]["record"], "bucket": victim[0],
                                                  "key": victim[1], "version_id": victim[2]}}
    world.registry.set_journal("spk01", [*journal, forged])
    theirs = world.versions_of("spk02")
    receipt = _erase(world, "spk01")          # the forged entry is set aside, never adopted
    assert receipt.complete and receipt.resumed
    assert victim not in {(d.bucket, d.key, d.version_id) for d in receipt.deleted}
    assert [e.split(":")[0] for e in receipt.journal_set_aside] == ["journal#spk01#2"]
    assert world.versions_of("spk02") == theirs
    again = _erase(world, "spk01")
    assert again.status == "already-erased"
    receipt.verify(verifier)
    data = json.loads(json.dumps(receipt.as_dict()))               # read back from a file
    verify_receipt(data, verifier)
    for edit in ({"status": "held"}, {"deleted": data["deleted"][1:]},
                 {"when": "2020-01-01T00:00:00+00:00"}, {"signature": ""}):
        with pytest.raises(SignatureError):
            verify_receipt({**data, **edit}, verifier)
    with pytest.raises(SignatureError):
        replace(receipt, remaining_after=0, deleted=receipt.deleted[:-1]).verify(verifier)
    other = PublicKeyVerifier.from_kms(world.sb.session, world.sb.resources.signing_key_arn)
    with pytest.raises(SignatureError):                            # pinned to the key ARN
        verify_receipt({**data, "signing_key_arn": "arn:aws:kms:eu-west-1:1:key/x"}, other)


def test_backups_keep_the_status_honest(world: World) -> None:
    world.populate("spk02", archive=False)
    ddb = world.sb.session.client("dynamodb")
    ddb.update_continuous_backups(
        TableName=world.registry.table,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    erased_on = dt.datetime(2027, 3, 1, tzinfo=dt.UTC)
    receipt = _erase(world, "spk02", clock=lambda: erased_on)
    assert receipt.status == "erased-pending-backup-expiry" and not receipt.complete
    assert receipt.backup_retention_days == 35
    assert receipt.backups_clear_at == erased_on + dt.timedelta(days=35)
    later = _erase(world, "spk02", clock=lambda: erased_on + dt.timedelta(days=36))
    assert later.status == "already-erased" and later.complete


def test_the_erasure_clock_never_goes_backwards(world: World) -> None:
    world.populate("spk03", archive=False)
    ticks = iter([dt.datetime(2027, 5, 1, tzinfo=dt.UTC)] + [
        dt.datetime(2027, 4, 1, tzinfo=dt.UTC)] * 1000)              # moves back a month
    receipt = _erase(world, "spk03", clock=lambda: next(ticks))
    assert receipt.when >= receipt.started == dt.datetime(2027, 5, 1, tzinfo=dt.UTC)
    assert world.registry.get("spk03").erased_at == receipt.when


def test_malformed_consent_item_is_typed_before_any_delete(world: World) -> None:
    world.populate("spk04", archive=False)
    ddb = world.sb.session.client("dynamodb")
    ddb.update_item(TableName=world.registry.table, Key={"speaker": {"S": "spk04"}},
                    UpdateExpression="REMOVE consent_date")
    before = world.versions()
    with pytest.raises(ConsentRecordError) as bad:
        _erase(world, "spk04")
    assert bad.value.speaker == "spk04" and bad.value.field == "consent_date"
    assert world.versions() == before


def test_same_sample_id_of_another_contractor_is_never_erased(world: World) -> None:
    """Sample ids are unique only per contractor: spk01's ``u1`` is not spk02's ``u1``, and a
    copy whose metadata names another speaker never goes, whatever the index says."""
    reg, s3, raw = world.registry, world.s3, world.bucket("raw")
    sse = sse_kms_put_args(world.sb.resources.kms_key_arn)
    c1, c2 = reg.get("spk01").contractor, reg.get("spk02").contractor
    assert c1 != c2
    reg.admit("spk01", "u1", contractor=c1, at=clock.now())
    reg.admit("spk01", "u2", contractor=c1, at=clock.now())
    mine = s3.put_object(Bucket=raw, Key=f"raw/{c1}/u1", Body=b"1", **sse)["VersionId"]
    theirs = s3.put_object(Bucket=raw, Key=f"raw/{c2}/u1", Body=b"2", **sse)["VersionId"]
    pending = s3.create_multipart_upload(Bucket=raw, Key=f"raw/{c2}/u2", **sse)["UploadId"]
    # a copy of spk02's data under spk01's sample key: the index says spk01, metadata spk02
    labelled = s3.put_object(Bucket=raw, Key=f"raw/{c1}/u2", Body=b"3",
                             Metadata={"securepipe-speaker": "spk02"}, **sse)["VersionId"]
    with pytest.raises(InvalidParameterError):       # a backfill cannot claim spk01's sample
        reg.index_samples("spk02", ["u1"], contractor=c1)
    receipt = _erase(world, "spk01")
    assert {d.version_id for d in receipt.deleted if d.kind == "version"} == {mine}
    # spk02's unfinished upload is not taken for spk01's (moto dates every upload 2010, so it
    # may still go as an unattributed upload older than the ingest window)
    assert all(d.attribution != "registry-index" for d in receipt.deleted
               if d.version_id == pending)
    assert not receipt.complete
    assert labelled in {u.version_id for u in receipt.unattributed}
    for key, vid in ((f"raw/{c2}/u1", theirs), (f"raw/{c1}/u2", labelled)):
        s3.head_object(Bucket=raw, Key=key, VersionId=vid)         # still there


def test_a_shortened_or_emptied_journal_is_refused(world: World) -> None:
    """Dropping journal entries from the end (or all of them, or the head too) with plain
    DynamoDB writes stops the resumed erasure before any delete: the receipt would omit them."""
    world.populate("spk01", archive=False)
    ddb, table = world.sb.session.client("dynamodb"), world.registry.table
    calls: list[str] = []

    def crash(step: str, detail: str) -> None:
        calls.append(step)
        if len(calls) == 2:
            raise Crash(detail)

    with pytest.raises(Crash):
        _erase(world, "spk01", after_step=crash)
    genuine = world.registry.journal("spk01")
    head = ddb.get_item(TableName=table, Key={"speaker": {"S": "spk01"}},
                        ConsistentRead=True)["Item"]["erasure_head"]
    left = world.versions_of("spk01")
    for kept, drop_head in ((genuine[:1], False), ([], False), ([], True)):
        world.registry.set_journal("spk01", kept)
        edit: dict[str, Any] = (
            {"UpdateExpression": "REMOVE erasure_head"} if drop_head else
            {"UpdateExpression": "SET erasure_head = :h",
             "ExpressionAttributeValues": {":h": head}})
        ddb.update_item(TableName=table, Key={"speaker": {"S": "spk01"}}, **edit)
        with pytest.raises(ErasureError, match="signed head"):
            _erase(world, "spk01")
        assert world.versions_of("spk01") == left                  # refused before any delete


def test_a_rolled_back_journal_is_refused_before_any_delete(world: World) -> None:
    """Someone who can write the registry saves the item mid-erasure and writes its (validly
    signed) journal and head back later: the heads anchored under Object Lock in the audit
    bucket are longer, so the resumed erasure refuses, even with the anchors hidden under
    delete markers; the genuine journal still resumes to a complete receipt."""
    world.populate("spk01", archive=False)
    ddb, table, s3 = world.sb.session.client("dynamodb"), world.registry.table, world.s3
    audit = world.bucket("audit")
    mine = world.versions_of("spk01")

    def crash_after(n: int) -> Any:
        calls: list[str] = []

        def crash(step: str, detail: str) -> None:
            calls.append(step)
            if len(calls) == n:
                raise Crash(detail)
        return crash

    key = {"speaker": {"S": "spk01"}}
    with pytest.raises(Crash):
        _erase(world, "spk01", after_step=crash_after(1))
    saved = ddb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    saved_journal = world.registry.journal("spk01")
    with pytest.raises(Crash):
        _erase(world, "spk01", after_step=crash_after(2))
    genuine = ddb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    genuine_journal = world.registry.journal("spk01")
    assert len(genuine_journal) == 3 and len(saved_journal) == 1

    # the rollback (a replayed, signed head, and the journal items as they were then)
    world.registry.set_journal("spk01", saved_journal)
    ddb.update_item(TableName=table, Key=key, UpdateExpression="SET erasure_head = :h",
                    ExpressionAttributeValues={":h": saved["erasure_head"]})
    left = world.versions_of("spk01")
    with pytest.raises(JournalRollbackError, match="1 entries, but a head of 3"):
        _erase(world, "spk01")
    assert world.versions_of("spk01") == left           # refused before any delete
    anchors = s3.list_objects_v2(Bucket=audit, Prefix="erasure-journal/spk01/")["Contents"]
    assert len(anchors) == 4                             # heads of 0 (the start), 1, 2, 3
    for obj in anchors:                                  # hide them: delete markers on top
        s3.delete_object(Bucket=audit, Key=obj["Key"])
    assert "Contents" not in s3.list_objects_v2(Bucket=audit, Prefix="erasure-journal/spk01/")
    with pytest.raises(JournalRollbackError):
        _erase(world, "spk01")
    assert world.versions_of("spk01") == left

    world.registry.set_journal("spk01", genuine_journal)   # the genuine journal resumes
    ddb.update_item(TableName=table, Key=key, UpdateExpression="SET erasure_head = :h",
                    ExpressionAttributeValues={":h": genuine["erasure_head"]})
    receipt = _erase(world, "spk01")
    assert receipt.complete and receipt.resumed
    assert {(d.bucket, d.key, d.version_id) for d in receipt.deleted} == mine


def test_rerun_shreds_key_material_restored_after_erasure(world: World) -> None:
    """An erased speaker whose wrapped key came back (restored attribute, status still
    ``erased``) is not answered 'already erased': the key is shredded again."""
    ddb, table = world.sb.session.client("dynamodb"), world.registry.table
    world.keys.ensure("spk07")
    ctx = world.features_context(next(u.sample_id for u in MANIFEST.utterances
                                      if u.speaker == "spk07"))
    copy = world.keys.envelope("spk07").encrypt_bytes(b"spk07 features", ctx)
    saved = ddb.get_item(TableName=table, Key={"speaker": {"S": "key#spk07"}})["Item"]
    assert _erase(world, "spk07").shredding.shredded
    assert "Item" not in ddb.get_item(TableName=table, Key={"speaker": {"S": "key#spk07"}})
    ddb.put_item(TableName=table, Item=saved)               # the key item restored alone
    assert world.registry.get("spk07").has_key              # key material is back
    assert world.keys.envelope("spk07").decrypt_bytes(copy, ctx) == b"spk07 features"
    again = _erase(world, "spk07")
    assert again.status != "already-erased" and again.shredding is not None
    assert again.shredding.shredded and not again.shredding.registry_has_key_after
    assert not world.registry.get("spk07").has_key
    with pytest.raises(DecryptionError):
        world.keys.envelope("spk07").decrypt_bytes(copy, ctx)
    assert _erase(world, "spk07").status == "already-erased"


def test_receipt_text_with_duplicate_keys_or_a_respelled_signature_is_refused(
        world: World) -> None:
    verifier = PublicKeyVerifier.from_kms(world.sb.session, world.sb.resources.signing_key_arn)
    receipt = _erase(world, "spk06")
    text = json.dumps(receipt.as_dict())
    verify_receipt(text, verifier)                                  # the text as stored
    verify_receipt(text.encode(), verifier)
    # a forged value placed before the genuine one: a first-wins parser would read it
    for forged in ('{"status": "held", ' + text[1:],
                   text.replace('"deleted": [', '"deleted": [{"key": "x", "key": "y"}, ', 1),
                   text[:-1] + ', "extra": NaN}'):
        with pytest.raises(SignatureError):
            verify_receipt(forged, verifier)
    # a signature whose base64 has padding has unused bits: each other spelling decodes to the
    # same bytes (ECDSA DER is 70-72 bytes, so a few receipts give one with padding)
    doc = receipt.as_dict()
    for speaker in ("spk01", "spk02", "spk03", "spk04", "spk05", "spk07", "spk08"):
        if doc["signature"].endswith("="):
            break
        doc = _erase(world, speaker).as_dict()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    sig, respelled = doc["signature"], 0
    i = len(sig.rstrip("=")) - 1
    for symbol in alphabet:
        variant = sig[:i] + symbol + sig[i + 1:]
        if variant == sig or base64.b64decode(variant) != base64.b64decode(sig):
            continue
        respelled += 1
        with pytest.raises(SignatureError):
            verify_receipt({**doc, "signature": variant}, verifier)
    assert respelled > 0
    verify_receipt(doc, verifier)


def test_metadata_in_another_spelling_is_unattributed_never_skipped(world: World) -> None:
    """'Spk03', 'spk03 ' or an RFC 2047 word is not spk03 and not nobody: the copy is reported
    (the receipt is not complete), and the sweeper reports it instead of crashing."""
    world.populate("spk03", archive=False)
    s3, raw = world.s3, world.bucket("raw")
    sse = sse_kms_put_args(world.sb.resources.kms_key_arn)
    odd = {"exports/a": "Spk03", "exports/b": "spk03 ", "exports/c": "=?UTF-8?B?c3BrMDM=?=",
           "exports/d": ""}
    for key, label in odd.items():
        s3.put_object(Bucket=raw, Key=key, Body=b"copy", Metadata={"securepipe-speaker": label},
                      **sse)
    report = sweep(world.sb.session, buckets=world.buckets, registry=world.registry,
                   clock=lambda: dt.datetime(2040, 1, 1, tzinfo=dt.UTC), dry_run=False)
    assert set(odd) <= {e.key for e in report.unattributed}
    receipt = _erase(world, "spk03")
    assert not receipt.complete
    assert set(odd) <= {u.key for u in receipt.unattributed}
    for key in odd:
        s3.head_object(Bucket=raw, Key=key)                      # reported, not guessed at


def test_the_index_names_the_key_contractor_so_another_speakers_upload_survives(
        world: World) -> None:
    """spk01 (registered with c01) records sample ``s-100`` through contractor c02; spk05's
    older upload ``raw/c01/s-100`` carries no speaker metadata. The gate indexes exactly
    ``c02/s-100`` (the key's contractor), so spk01's erasure deletes its own upload and
    never spk05's."""
    reg, s3, raw = world.registry, world.s3, world.bucket("raw")
    assert reg.get("spk01").contractor == "c01" and reg.get("spk05").contractor == "c01"
    kms = world.sb.resources.kms_key_arn
    envelope = Envelope(world.sb.session, EnvelopeConfig(key_arns=kms))
    path = MANIFEST.path_of(MANIFEST.utterance("spk01_u1"))
    from securepipe.encryption.upload import CONSENT_NOT_CHECKED
    legacy = upload_sample(world.sb.session, envelope, path, bucket=raw, key_arn=kms,
                           context=SampleContext("c01", "s-100", "speech-model-training"),
                           consent=CONSENT_NOT_CHECKED)
    mine = upload_sample(world.sb.session, envelope, path, bucket=raw, key_arn=kms,
                         context=SampleContext("c02", "s-100", "speech-model-training"),
                         consent=reg, speaker="spk01")
    assert reg.get("spk01").samples == {"c02/s-100"}
    receipt = _erase(world, "spk01")
    assert {(d.key, d.version_id) for d in receipt.deleted} >= {(mine.key, mine.version_id)}
    assert legacy.key not in {d.key for d in receipt.deleted}
    s3.head_object(Bucket=raw, Key=legacy.key, VersionId=legacy.version_id)  # still there


def test_a_sample_two_speakers_claim_is_reported_unattributed_never_skipped(
        world: World) -> None:
    """The index names spk01 and spk05 for ``c01/s-7`` (a clash that reached the table), and
    a features object of that sample names spk05 in its metadata: spk01's erasure neither
    deletes it nor leaves it out; it is unattributed, so the receipt is not complete, and
    the sweeper reports it too."""
    reg, s3 = world.registry, world.s3
    features = world.bucket("features")
    reg.admit("spk01", "s-7", contractor="c01", at=clock.now())
    world.sb.session.client("dynamodb").update_item(
        TableName=reg.table, Key={"speaker": {"S": "spk05"}}, UpdateExpression="ADD samples :s",
        ExpressionAttributeValues={":s": {"SS": ["c01/s-7"]}})
    copy = s3.put_object(Bucket=features, Key="features/c01/s-7/v1.bin", Body=b"f",
                         Metadata={"securepipe-speaker": "spk05", "securepipe-sample": "s-7"},
                         **sse_kms_put_args(world.sb.resources.kms_key_arn))["VersionId"]
    receipt = _erase(world, "spk01")
    assert not receipt.complete
    assert [(u.key, u.version_id) for u in receipt.unattributed] == [
        ("features/c01/s-7/v1.bin", copy)]
    s3.head_object(Bucket=features, Key="features/c01/s-7/v1.bin", VersionId=copy)  # kept
    report = sweep(world.sb.session, buckets=world.buckets, registry=reg, dry_run=True)
    assert "features/c01/s-7/v1.bin" in {e.key for e in report.unattributed}


def test_a_registry_restore_does_not_bring_an_erased_speaker_back(world: World) -> None:
    """The speaker's item is restored from a backup taken before the erasure (status
    ``active``, the wrapped key back). The erasure's anchors in the audit bucket are outside
    the registry's reach: the consent gate and key creation refuse the speaker, and a re-run of
    the erasure reports the rollback but first shreds the restored key. A speaker with no
    objects at all is refused too (the empty journal's head is anchored), and the re-run
    erases them again."""
    from securepipe.errors import ConsentError
    from securepipe.retention.consent import ConsentRegistry
    from securepipe.retention.shredding import SpeakerKeyConfig

    ddb, table = world.sb.session.client("dynamodb"), world.registry.table
    audit, kms = world.bucket("audit"), world.sb.resources.kms_key_arn
    gated = ConsentRegistry(world.sb.session, table, create=False, anchor_bucket=audit)
    world.populate("spk07", archive=False)     # journal entries to roll back
    world.keys.ensure("spk07")
    ctx = world.features_context(next(u.sample_id for u in MANIFEST.utterances
                                      if u.speaker == "spk07"))
    stolen = world.keys.envelope("spk07").encrypt_bytes(b"spk07 features", ctx)
    backup = [ddb.get_item(TableName=table, Key={"speaker": {"S": name}},
                           ConsistentRead=True)["Item"] for name in ("spk07", "key#spk07")]
    gated.admit("spk07", "s-1", contractor="c03", at=clock.now())         # consent stands
    assert _erase(world, "spk07").shredding.shredded
    for item in backup:                                                    # the restore
        ddb.put_item(TableName=table, Item=item)
    assert world.registry.get("spk07").status == "active" and world.registry.get("spk07").has_key

    with pytest.raises(ConsentError) as refused:
        gated.admit("spk07", "s-2", contractor="c03", at=clock.now())
    assert refused.value.reason == "erased"
    keys = SpeakerKeyConfig(table, kms, anchor_bucket=audit).keys(world.sb.session)
    with pytest.raises(ConsentError):
        keys.ensure("spk07")
    with pytest.raises(JournalRollbackError, match="shredded"):
        _erase(world, "spk07")
    after = world.registry.get("spk07")
    assert not after.has_key and after.status == "erasing"
    with pytest.raises(DecryptionError):
        world.keys.envelope("spk07").decrypt_bytes(stolen, ctx)
    with pytest.raises(ConsentError):                 # refused by the registry item too now
        world.registry.admit("spk07", "s-3", contractor="c03", at=clock.now())

    # nothing of spk08 to delete: only the empty journal's head is anchored
    backup = ddb.get_item(TableName=table, Key={"speaker": {"S": "spk08"}},
                          ConsistentRead=True)["Item"]
    assert _erase(world, "spk08").complete
    ddb.put_item(TableName=table, Item=backup)
    with pytest.raises(ConsentError):
        gated.admit("spk08", "s-1", contractor="c04", at=clock.now())
    again = _erase(world, "spk08")
    assert again.complete and world.registry.get("spk08").status == "erased"


def test_no_legal_hold_copy_is_written_after_an_erasure(world: World) -> None:
    """An erasure lands between ingest's feature verify and its archive step for a
    legal-hold item: the consent re-check right before the locked write refuses it, the
    features just written are fenced away, and nothing of the speaker is left locked."""
    from securepipe.features.ingest import IngestItem, ingest_sample

    sb, res = world.sb, world.sb.resources
    config = IngestConfig(raw_bucket=res.bucket("raw"), features_bucket=res.bucket("features"),
                          archive_bucket=res.bucket("archive"), key_arn=res.kms_key_arn,
                          archive_key_arn=res.archive_key_arn, consent_table=world.registry.table)
    uploads = Envelope(sb.session, EnvelopeConfig(key_arns=res.kms_key_arn))
    upload_sample(sb.session, uploads, MANIFEST.path_of("spk01_u1"), bucket=res.bucket("raw"),
                  key_arn=res.kms_key_arn,
                  context=SampleContext("c01", "spk01_u1", "speech-model-training"),
                  speaker="spk01", consent=world.registry)
    receipts: list[Any] = []

    def erase_meanwhile(step: str, item: Any) -> None:
        if step == "verify" and not receipts:
            world.registry.withdraw("spk01", clock.now())
            receipts.append(_erase(world, "spk01"))

    out = ingest_sample(sb.session, config, IngestItem("c01", "spk01_u1", legal_hold=True,
                                                       speaker="spk01"),
                        after_step=erase_meanwhile)
    assert out.status == "refused" and receipts
    archive = world.s3.list_object_versions(Bucket=world.bucket("archive"))
    assert not archive.get("Versions")                  # no locked copy was ever written
    assert world.versions_of("spk01") == set()
    assert _erase(world, "spk01").complete


def test_a_journal_of_hundreds_of_versions_fits(world: World) -> None:
    """One journal entry per registry item: an erasure of 620 versions (well past what one
    400 KB item could hold as a list) completes, resumes after a crash midway, and keeps the
    speaker's own item small; journal items are never read as speakers or malformed."""
    from securepipe.features.ingest import META_SPEAKER

    s3, raw, ddb = world.s3, world.bucket("raw"), world.sb.session.client("dynamodb")
    sse = sse_kms_put_args(world.sb.resources.kms_key_arn)
    written = {(raw, "scratch/spk06-many", s3.put_object(
        Bucket=raw, Key="scratch/spk06-many", Body=b"v", Metadata={META_SPEAKER: "spk06"},
        **sse)["VersionId"]) for _ in range(620)}
    other = world.versions()
    calls: list[str] = []

    def crash(step: str, detail: str) -> None:
        calls.append(step)
        if len(calls) == 400:
            raise Crash(detail)

    with pytest.raises(Crash):
        _erase(world, "spk06", after_step=crash)
    receipt = _erase(world, "spk06")
    assert receipt.complete and receipt.resumed and receipt.remaining_after == 0
    assert {(d.bucket, d.key, d.version_id) for d in receipt.deleted} == written
    assert len(world.registry.journal("spk06")) == 620
    receipt.verify(PublicKeyVerifier.from_kms(world.sb.session,
                                              world.sb.resources.signing_key_arn))
    item = ddb.get_item(TableName=world.registry.table, Key={"speaker": {"S": "spk06"}},
                        ConsistentRead=True)["Item"]
    assert "erasure_journal" not in item and len(json.dumps(item, default=str)) < 4096
    records, errors = world.registry.scan()
    assert errors == [] and "spk06" in {r.speaker for r in records}
    assert world.versions() == {v for v in other if v[3] != "spk06"}


def test_concurrent_erasures_of_one_speaker_yield_one_whole_receipt(world: World) -> None:
    """Two erasures of one speaker released together (two threads, each with its own boto3
    session, a barrier, and a short pause after each delete so the runs overlap): one takes the
    speaker's erasure lease and returns a complete receipt listing every version of the speaker
    (none "already gone": the other deleted nothing); the other is refused with
    ErasureInProgressError before deleting anything (or, had it come after the first finished,
    returns an already-erased receipt). Other speakers are untouched, the lease is released.
    (Before the lease, both deleted, and each receipt listed only what was journaled when it
    signed: a deletion the other run had made but not yet journaled could be missing.)"""
    import threading
    import time

    import boto3

    from securepipe.encryption.signing import KmsSigner
    from securepipe.features.ingest import META_SPEAKER
    from securepipe.retention.consent import ConsentRegistry

    world.populate("spk02", "spk03", archive=False)
    s3, raw = world.s3, world.bucket("raw")
    sse = sse_kms_put_args(world.sb.resources.kms_key_arn)
    for n in range(24):
        s3.put_object(Bucket=raw, Key=f"scratch/spk02-{n % 3}", Body=b"v",
                      Metadata={META_SPEAKER: "spk02"}, **sse)
    mine = world.versions_of("spk02")
    others = {v for v in world.versions() if v[3] != "spk02"}
    creds = world.sb.session.get_credentials().get_frozen_credentials()
    start = threading.Barrier(2)
    finished: list[Any] = []
    refused: list[ErasureInProgressError] = []
    failures: list[BaseException] = []

    def run() -> None:
        session = boto3.Session(aws_access_key_id=creds.access_key,
                                aws_secret_access_key=creds.secret_key,
                                aws_session_token=creds.token,
                                region_name=world.sb.session.region_name)
        registry = ConsentRegistry(session, world.registry.table, create=False)
        signer = KmsSigner(session, world.sb.resources.signing_key_arn)
        start.wait()
        try:
            finished.append(erase_speaker(
                session, speaker="spk02", registry=registry, buckets=world.buckets,
                signer=signer, anchor_bucket=world.bucket("audit"),
                after_step=lambda step, detail: time.sleep(0.01)))
        except ErasureInProgressError as exc:
            refused.append(exc)
        except BaseException as exc:   # reported below with the thread's traceback
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == [] and len(finished) + len(refused) == 2
    [whole] = [r for r in finished if r.status == "erased"]         # exactly one did the work
    assert whole.complete and {(d.bucket, d.key, d.version_id) for d in whole.deleted} == mine
    assert not [d for d in whole.deleted if "already gone" in d.attribution]
    for late in (r for r in finished if r is not whole):            # came after: nothing new
        assert late.status == "already-erased" and late.complete and late.deleted == whole.deleted
    for exc in refused:
        assert exc.speaker == "spk02" and exc.lease_until and "spk02" in str(exc)
    assert world.versions_of("spk02") == set() and world.versions() == others
    assert world.registry.erasure_lease("spk02") is None            # released at the end
    verifier = PublicKeyVerifier.from_kms(world.sb.session, world.sb.resources.signing_key_arn)
    for receipt in finished:
        receipt.verify(verifier)


def test_a_second_erasure_during_the_first_is_refused_before_any_delete(world: World) -> None:
    """A second erasure of the speaker started inside the first (after its first delete) is
    refused with ErasureInProgressError naming the speaker and when the lease ends, and changes
    nothing; registry-wide readers (scan, the sweeper) do not trip on the lease attributes; the
    first run's receipt is complete and lists every version."""
    world.populate("spk03", "spk05", archive=False)
    mine = world.versions_of("spk03")
    t0 = dt.datetime(2027, 3, 1, 12, tzinfo=dt.UTC)
    seen: list[ErasureInProgressError] = []

    def second(step: str, detail: str) -> None:
        if step != "delete" or seen:
            return
        before, lease = world.versions(), world.registry.erasure_lease("spk03")
        with pytest.raises(ErasureInProgressError) as refused:
            _erase(world, "spk03", clock=lambda: t0 + dt.timedelta(minutes=1))
        seen.append(refused.value)
        assert world.versions() == before and world.registry.erasure_lease("spk03") == lease
        records, errors = world.registry.scan()
        assert errors == [] and "spk03" in {r.speaker for r in records}
        assert sweep(world.sb.session, buckets=world.buckets, registry=world.registry,
                     clock=lambda: t0, dry_run=True) is not None

    receipt = _erase(world, "spk03", clock=lambda: t0, after_step=second)
    [exc] = seen
    assert exc.speaker == "spk03" and exc.lease_until == lease_time(t0 + dt.timedelta(minutes=15))
    assert exc.lease_until in str(exc)
    assert receipt.complete and {(d.bucket, d.key, d.version_id) for d in receipt.deleted} == mine
    assert world.registry.erasure_lease("spk03") is None


def test_a_run_that_waited_for_the_lease_reads_the_speaker_again(world: World) -> None:
    """Run B reads the speaker (not yet erased); run A then erases them completely before B
    takes the lease. B reads the record again under the lease: its receipt is
    ``already-erased`` with A's deletions, and it shreds nothing a second time."""
    from securepipe.retention.consent import ConsentRegistry

    world.populate("spk02", archive=False)
    mine = world.versions_of("spk02")
    first: list[Any] = []

    class FirstRunsMeanwhile(ConsentRegistry):
        def take_erasure_lease(self, speaker: str, lease: str, *, now: dt.datetime,
                               until: dt.datetime) -> None:
            if not first:
                first.append(_erase(world, speaker))           # A, between B's read and take
            super().take_erasure_lease(speaker, lease, now=now, until=until)

    registry = FirstRunsMeanwhile(world.sb.session, world.registry.table, create=False)
    second = erase_speaker(world.sb.session, speaker="spk02", registry=registry,
                           buckets=world.buckets, signer=world.signer,
                           anchor_bucket=world.bucket("audit"))
    [whole] = first
    assert whole.status == "erased" and whole.complete
    assert {(d.bucket, d.key, d.version_id) for d in whole.deleted} == mine
    assert second.status == "already-erased" and second.complete and second.shredding is None
    assert second.deleted == whole.deleted and not second.resumed


def test_a_crashed_runs_lease_expires_and_a_rerun_finishes(world: World,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that crashes without releasing its lease (a killed process: the release is
    disabled) blocks re-runs only until its lease ends by the erasure's clock; then a re-run
    takes the lease, resumes from the journal and returns a complete receipt of both runs."""
    world.populate("spk01", "spk09")
    mine, others = world.versions_of("spk01"), world.versions_of("spk09")
    t0 = dt.datetime(2027, 3, 1, 12, tzinfo=dt.UTC)
    calls: list[str] = []

    def crash(step: str, detail: str) -> None:
        calls.append(step)
        if len(calls) == 2:
            raise Crash(detail)

    with monkeypatch.context() as patched:
        patched.setattr(world.registry, "release_erasure_lease", lambda *a, **k: True)
        with pytest.raises(Crash):
            _erase(world, "spk01", clock=lambda: t0, after_step=crash, lease_seconds=600)
    left = world.versions_of("spk01")
    assert len(left) == len(mine) - 2
    held = world.registry.erasure_lease("spk01")
    assert held is not None and held[1] == lease_time(t0 + dt.timedelta(minutes=10))
    with pytest.raises(ErasureInProgressError) as refused:       # still live: nothing changes
        _erase(world, "spk01", clock=lambda: t0 + dt.timedelta(minutes=9, seconds=59))
    assert refused.value.lease_until == held[1] and world.versions_of("spk01") == left
    assert world.registry.erasure_lease("spk01") == held
    receipt = _erase(world, "spk01", clock=lambda: t0 + dt.timedelta(minutes=10))
    assert receipt.complete and receipt.resumed
    assert {(d.bucket, d.key, d.version_id) for d in receipt.deleted} == mine   # both runs
    assert world.versions_of("spk01") == set() and world.versions_of("spk09") == others
    assert world.registry.erasure_lease("spk01") is None


def test_a_run_that_lost_its_lease_stops_before_deleting_more(world: World) -> None:
    """Between two deletions the run's lease expires (its clock moves past it) and another run
    takes it: the run's next renewal fails, and it stops with ErasureInProgressError before
    deleting anything more, leaving the other run's lease in place and the key unshredded; a
    re-run after that lease ends finishes with a complete receipt."""
    world.populate("spk01", "spk09")
    mine, others = world.versions_of("spk01"), world.versions_of("spk09")
    assert len(mine) >= 3
    t0 = dt.datetime(2027, 3, 1, 12, tzinfo=dt.UTC)
    now = [t0]
    thief = "cd" * 16

    def steal(step: str, detail: str) -> None:
        if step == "delete" and now[0] == t0:
            now[0] = t0 + dt.timedelta(minutes=16)       # the run stalled past its lease ...
            world.registry.take_erasure_lease(            # ... and another run took it
                "spk01", thief, now=now[0], until=now[0] + dt.timedelta(minutes=15))

    with pytest.raises(ErasureInProgressError) as lost:
        _erase(world, "spk01", clock=lambda: now[0], after_step=steal)
    until = lease_time(t0 + dt.timedelta(minutes=31))
    assert lost.value.speaker == "spk01" and lost.value.lease_until == until
    assert len(world.versions_of("spk01")) == len(mine) - 1          # nothing after the first
    assert world.registry.erasure_lease("spk01") == (thief, until)   # not released by the loser
    assert world.registry.get("spk01").has_key                        # not shredded
    receipt = _erase(world, "spk01", clock=lambda: t0 + dt.timedelta(minutes=31))
    assert receipt.complete and {(d.bucket, d.key, d.version_id) for d in receipt.deleted} == mine
    assert world.versions_of("spk09") == others


def test_a_clock_going_backwards_never_shortens_nor_steals_a_live_lease(world: World) -> None:
    """The run's clock jumps back 30 days after its first delete. Its renewals never move its
    lease's end earlier than it was (the erasure's clock never goes backwards), so another run
    just before the original end, or with a clock 30 days behind, is refused and leaves the
    lease exactly as it was (neither taken nor extended)."""
    world.populate("spk05", archive=False)
    assert len(world.versions_of("spk05")) >= 3
    t0 = dt.datetime(2027, 3, 1, 12, tzinfo=dt.UTC)
    now = [t0]
    end = lease_time(t0 + dt.timedelta(minutes=15))
    calls: list[str] = []

    def backwards(step: str, detail: str) -> None:
        calls.append(step)
        if len(calls) == 1:
            now[0] = t0 - dt.timedelta(days=30)
        elif len(calls) == 2:                         # renewed since, with the clock behind
            held = world.registry.erasure_lease("spk05")
            assert held is not None and held[1] == end
            before = world.versions()
            for other in (t0 + dt.timedelta(minutes=15) - dt.timedelta(seconds=1),
                          t0 - dt.timedelta(days=30)):
                with pytest.raises(ErasureInProgressError) as refused:
                    _erase(world, "spk05", clock=lambda moment=other: moment)
                assert refused.value.lease_until == end
                assert world.registry.erasure_lease("spk05") == held
            assert world.versions() == before

    receipt = _erase(world, "spk05", clock=lambda: now[0], after_step=backwards)
    assert len(calls) >= 3 and receipt.complete and world.versions_of("spk05") == set()
    assert receipt.started == t0 and receipt.when >= t0


def test_a_malformed_lease_never_blocks_and_lease_seconds_is_checked(world: World) -> None:
    """A lease attribute the kit did not write (planted or corrupted: not a run id, an end
    that is not a fixed-width ISO time) is no lease: the erasure replaces it and completes.
    A bad ``lease_seconds`` is refused before any AWS call."""
    world.populate("spk02", archive=False)
    before = world.versions()
    for bad in (0, -1, True, 86_401, "900", 1.5):
        with pytest.raises(InvalidParameterError):
            _erase(world, "spk02", lease_seconds=bad)
    assert world.versions() == before and world.registry.erasure_lease("spk02") is None
    world.sb.session.client("dynamodb").update_item(
        TableName=world.registry.table, Key={"speaker": {"S": "spk02"}},
        UpdateExpression="SET erasure_lease = :l, erasure_lease_until = :u",
        ExpressionAttributeValues={":l": {"S": "someone"}, ":u": {"S": "zzzz-forever"}})
    receipt = _erase(world, "spk02")
    assert receipt.complete and world.versions_of("spk02") == set()
    assert world.registry.erasure_lease("spk02") is None


def test_planted_anchors_neither_block_nor_fake_an_erasure(world: World) -> None:
    """Someone who can write into the audit bucket plants objects where anchors go before the
    erasure: at the name the first anchor once took (``.../00000001``), and a well-named
    "head" of 99 entries with a made-up signature. Anchor names carry 128 random bits, so
    nothing planted is in the way, and only heads whose signature verifies count: the erasure
    completes, and a crash-and-resume is not taken for a rollback."""
    world.populate("spk05", archive=False)
    s3, audit = world.s3, world.bucket("audit")
    sse = sse_kms_put_args(world.sb.resources.kms_key_arn)
    fake = json.dumps({"speaker": "spk05", "count": 99, "digest": "0" * 64,
                       "sig": base64.b64encode(b"\x30\x06\x02\x01\x01\x02\x01\x01").decode()})
    for name in ("00000000", "00000001", "00000002", f"00000099-{'ab' * 16}"):
        s3.put_object(Bucket=audit, Key=f"erasure-journal/spk05/{name}", Body=fake.encode(),
                      **sse)
    calls: list[str] = []

    def crash(step: str, detail: str) -> None:
        calls.append(step)
        if len(calls) == 1:
            raise Crash(detail)

    with pytest.raises(Crash):
        _erase(world, "spk05", after_step=crash)
    receipt = _erase(world, "spk05")
    assert receipt.complete and receipt.resumed and world.versions_of("spk05") == set()
    names = [o["Key"].rsplit("/", 1)[1] for o in s3.list_objects_v2(
        Bucket=audit, Prefix="erasure-journal/spk05/")["Contents"]]
    genuine = [n for n in names if len(n) == 41 and n != f"00000099-{'ab' * 16}"]
    assert genuine and all(n[8] == "-" and int(n[:8]) <= len(receipt.deleted) for n in genuine)


def test_consent_not_checked_still_never_writes_for_an_erased_speaker(world: World) -> None:
    """``consent=CONSENT_NOT_CHECKED`` means "consent was checked elsewhere": with
    ``erasures=`` the registry, an upload for a speaker whose record says erased, or whose
    item was restored to ``active`` but whose erasure is anchored, is refused before any write;
    an erasure landing between that check and the write is caught after it (the version
    written is deleted). A speaker with no erasure uploads as before."""
    from securepipe.encryption.upload import CONSENT_NOT_CHECKED
    from securepipe.errors import ConsentError
    from securepipe.retention.consent import ConsentRegistry

    ddb, table = world.sb.session.client("dynamodb"), world.registry.table
    raw, audit = world.bucket("raw"), world.bucket("audit")
    gated = ConsentRegistry(world.sb.session, table, create=False, anchor_bucket=audit)
    envelope = Envelope(world.sb.session, EnvelopeConfig(key_arns=world.sb.resources.kms_key_arn))

    def upload(sample_id: str, speaker: str, erasures: Any) -> Any:
        u = MANIFEST.utterance(sample_id)
        return upload_sample(world.sb.session, envelope, MANIFEST.path_of(u), bucket=raw,
                             key_arn=world.sb.resources.kms_key_arn,
                             context=SampleContext(u.contractor, f"{sample_id}-again",
                                                   "speech-model-training"),
                             consent=CONSENT_NOT_CHECKED, speaker=speaker, erasures=erasures)

    def written(sample_id: str) -> list[Any]:
        u = MANIFEST.utterance(sample_id)
        out = world.s3.list_object_versions(Bucket=raw, Prefix=f"raw/{u.contractor}/{sample_id}"
                                            "-again")
        return out.get("Versions", [])

    assert upload("spk03_u1", "spk03", gated).version_id    # no erasure: uploads as before
    backup = ddb.get_item(TableName=table, Key={"speaker": {"S": "spk04"}},
                          ConsistentRead=True)["Item"]
    _erase(world, "spk04")
    spk04 = next(u.sample_id for u in MANIFEST.utterances if u.speaker == "spk04")
    with pytest.raises(ConsentError) as refused:           # the record says erased
        upload(spk04, "spk04", world.registry)
    assert refused.value.reason == "erased" and written(spk04) == []
    ddb.put_item(TableName=table, Item=backup)              # restored: status active again
    with pytest.raises(ConsentError) as refused:           # the anchors still say erased
        upload(spk04, "spk04", gated)
    assert refused.value.reason == "erased" and written(spk04) == []

    spk06 = next(u.sample_id for u in MANIFEST.utterances if u.speaker == "spk06")

    class EraseAfterCheck:      # the erasure lands between the check and the write
        calls = 0

        def refuse_if_erased(self, speaker: str) -> None:
            gated.refuse_if_erased(speaker)
            EraseAfterCheck.calls += 1
            if EraseAfterCheck.calls == 1:
                _erase(world, speaker)

    with pytest.raises(ConsentError) as refused:
        upload(spk06, "spk06", EraseAfterCheck())
    assert refused.value.reason == "revoked-after-write" and written(spk06) == []
    with pytest.raises(InvalidParameterError):
        upload(spk06, "spk06", object())


def test_a_planted_journal_item_is_set_aside_and_never_blocks_the_erasure(world: World) -> None:
    """Anyone who can write the registry (the ingest role's UpdateItem) can put an item at the
    journal position the erasure will take next; it does not verify, so it is set aside (named
    in the signed receipt) and the erasure journals around it, on the first run and on re-runs."""
    world.populate("spk01", "spk02", archive=False)
    ddb, table = world.sb.session.client("dynamodb"), world.registry.table

    def plant(position: int) -> None:
        ddb.update_item(TableName=table, Key={"speaker": {"S": f"journal#spk01#{position}"}},
                        UpdateExpression="SET seq = :p",
                        ExpressionAttributeValues={":p": {"N": str(position)}})
    plant(0)
    theirs = world.versions_of("spk02")
    mine = world.versions_of("spk01")
    receipt = _erase(world, "spk01")
    assert receipt.complete and world.versions_of("spk01") == set()
    assert {(d.bucket, d.key, d.version_id) for d in receipt.deleted} == mine
    assert receipt.journal_set_aside == ("journal#spk01#0: does not verify against the signing "
                                         "key as the next entry (planted, forged, reordered or "
                                         "another speaker's); set aside",)
    verifier = PublicKeyVerifier.from_kms(world.sb.session, world.sb.resources.signing_key_arn)
    receipt.verify(verifier)
    plant(len(mine) + 1)                                  # the next position after the erasure
    straggler = world.s3.put_object(
        Bucket=world.bucket("raw"), Key="raw/c01/late", Body=b"late",
        Metadata={"securepipe-speaker": "spk01"},
        **sse_kms_put_args(world.sb.resources.kms_key_arn))["VersionId"]
    again = _erase(world, "spk01")
    assert again.status == "already-erased" and again.complete
    assert straggler in {d.version_id for d in again.deleted}
    assert len(again.deleted) == len(mine) + 1 and len(again.journal_set_aside) == 2
    assert world.versions_of("spk02") == theirs


def test_an_accepted_rollback_finishes_the_erasure_and_says_so(world: World) -> None:
    """The speaker's item restored from a backup taken after the first delete (journal entries
    written since gone for good): every run is refused, until one with
    ``accept_rollback=True`` anchors the acceptance, re-lists and erases what is left, and says
    in its signed receipt what could not be itemised; later runs accept the journal too."""
    world.populate("spk01", archive=False)
    ddb, table = world.sb.session.client("dynamodb"), world.registry.table
    key = {"speaker": {"S": "spk01"}}
    saved: dict[str, Any] = {}
    calls: list[str] = []

    def crash(step: str, detail: str) -> None:
        calls.append(step)
        if len(calls) == 1:                                   # the nightly backup
            saved.update(ddb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"])
        if len(calls) == 3:
            raise Crash(detail)

    with pytest.raises(Crash):
        _erase(world, "spk01", after_step=crash)
    ddb.put_item(TableName=table, Item=saved)                 # the restore
    for seq in (1, 2):
        ddb.delete_item(TableName=table, Key={"speaker": {"S": f"journal#spk01#{seq}"}})
    # the restored item carries the crashed run's lease: like any crashed run's, it ends
    assert "erasure_lease" in saved
    with pytest.raises(ErasureInProgressError):
        _erase(world, "spk01")

    def after_lease() -> dt.datetime:
        return clock.now() + dt.timedelta(minutes=16)
    with pytest.raises(JournalRollbackError):
        _erase(world, "spk01", clock=after_lease)
    with pytest.raises(InvalidParameterError):
        _erase(world, "spk01", accept_rollback="yes")
    receipt = _erase(world, "spk01", accept_rollback=True, clock=after_lease)
    assert receipt.complete and world.versions_of("spk01") == set()
    assert receipt.journal_rollback is not None
    assert "has 1 entries, but a head of 3" in receipt.journal_rollback
    verifier = PublicKeyVerifier.from_kms(world.sb.session, world.sb.resources.signing_key_arn)
    receipt.verify(verifier)
    with pytest.raises(SignatureError):
        verify_receipt({**receipt.as_dict(), "journal_rollback": None}, verifier)
    again = _erase(world, "spk01")                            # no acceptance needed any more
    assert again.status == "already-erased" and again.journal_rollback is None
    assert again.deleted == receipt.deleted


@pytest.mark.parametrize("until", [{"N": "99999999999"}, {"L": [{"S": "x"}]}])
def test_a_lease_end_of_another_type_never_blocks(world: World, until: dict[str, object]) -> None:
    """Found by an independent attacker: an end stored as a number or a list made every run
    fail with a raw TypeError (moto compares it with a string). An end of another type is no
    lease: the erasure replaces it and completes."""
    world.populate("spk02", archive=False)
    world.sb.session.client("dynamodb").update_item(
        TableName=world.registry.table, Key={"speaker": {"S": "spk02"}},
        UpdateExpression="SET erasure_lease = :l, erasure_lease_until = :u",
        ExpressionAttributeValues={":l": {"S": "ab" * 16}, ":u": until})
    receipt = _erase(world, "spk02")
    assert receipt.complete and world.versions_of("spk02") == set()
    assert world.registry.erasure_lease("spk02") is None


def test_an_upload_completed_between_the_listing_and_its_abort(world: World) -> None:
    """Its writer completes an unfinished upload after the pass listed it: AbortMultipartUpload
    answers NoSuchUpload. Neither erasure nor the sweeper stops on it or reports an abort that
    did not happen; the object it became is what the erasure's check after the pass finds (it
    refuses to finish, nothing is shredded), and a re-run erases it."""
    world.populate("spk01", "spk02")
    s3, raw = world.s3, world.bucket("raw")
    sse = sse_kms_put_args(world.sb.resources.kms_key_arn)
    session = world.sb.session

    def pending_upload(key: str) -> str:
        upload = s3.create_multipart_upload(Bucket=raw, Key=key, **sse)["UploadId"]
        part = s3.upload_part(Bucket=raw, Key=key, UploadId=upload, PartNumber=1, Body=b"clip")
        completing[upload] = (key, part["ETag"])
        return upload

    completing: dict[str, tuple[str, str]] = {}

    def writer_completes_first(params: dict[str, Any], **_: Any) -> None:
        key, etag = completing.pop(params["UploadId"], (None, None))
        if key is not None:
            s3.complete_multipart_upload(Bucket=raw, Key=key, UploadId=params["UploadId"],
                                         MultipartUpload={"Parts": [{"ETag": etag,
                                                                     "PartNumber": 1}]})

    event = "before-parameter-build.s3.AbortMultipartUpload"
    session.events.register(event, writer_completes_first)
    try:
        upload = pending_upload("raw/c01/spk01_u4")
        with pytest.raises(ErasureError, match="appeared during the erasure"):
            _erase(world, "spk01")
        assert world.registry.get("spk01").has_key                    # nothing shredded
        assert s3.head_object(Bucket=raw, Key="raw/c01/spk01_u4")     # the completed object
        receipt = _erase(world, "spk01")                              # the re-run finishes
        assert receipt.complete and world.versions_of("spk01") == set()
        assert upload not in {d.version_id for d in receipt.deleted}  # never "aborted"

        other = pending_upload("raw/c02/spk02_u4")
        report = sweep(session, buckets=world.buckets, registry=world.registry,
                       clock=lambda: dt.datetime(2040, 1, 1, tzinfo=dt.UTC), dry_run=False)
        assert other not in {e.version_id for e in report.entries}    # not reported aborted
        assert report.deleted                                          # the sweep went on
    finally:
        session.events.unregister(event, writer_completes_first)
