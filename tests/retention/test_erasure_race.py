"""Step 5: a write admitted just before an erasure never outlives it (the B4 race).

The erasure is injected at the exact points: between the upload's consent check and its
PutObject (inside the gate's ``admit``, after the real one returned), and between ingest's gate
and its features write (ingest's ``after_step("extract")``). The writer's post-write consent
re-check (``fence_write``) must delete what it wrote and refuse; a writer that dies between its
write and its re-check leaves an object the sweeper and a re-run of the erasure remove.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from speaker_world import MANIFEST, World, make_world

from securepipe import clock
from securepipe.encryption.envelope import Envelope, EnvelopeConfig, SampleContext
from securepipe.encryption.hardening import apply_bucket_hardening
from securepipe.encryption.upload import META_SPEAKER, upload_sample
from securepipe.errors import ConsentError
from securepipe.features.ingest import IngestConfig, IngestItem, ingest_sample
from securepipe.retention.consent import ConsentRegistry
from securepipe.retention.erasure import ErasureReceipt, erase_speaker
from securepipe.retention.sweeper import sweep


@pytest.fixture
def world() -> Iterator[World]:
    yield from make_world()


class Crash(Exception):
    pass


class RacingGate:
    """The registry, with an erasure run right after ``admit`` returned (so between the
    writer's consent check and its write), and optionally a writer that dies in its re-check."""

    def __init__(self, registry: ConsentRegistry, erase: Callable[[], ErasureReceipt],
                 die_in_recheck: bool = False) -> None:
        self.registry, self.erase, self.die = registry, erase, die_in_recheck
        self.receipts: list[ErasureReceipt] = []

    def admit(self, speaker: str, sample_id: str, *, contractor: str,
              at: dt.datetime) -> object:
        # consent stands: admitted
        record = self.registry.admit(speaker, sample_id, contractor=contractor, at=at)
        self.receipts.append(self.erase())                          # ... the erasure runs
        return record

    def check_consent(self, speaker: str, at: dt.datetime) -> object:
        if self.die:
            raise Crash("the writer stopped between its write and its re-check")
        return self.registry.check_consent(speaker, at)


def world_now() -> dt.datetime:
    return clock.now()


def _erase(world: World, speaker: str) -> ErasureReceipt:
    return erase_speaker(world.sb.session, speaker=speaker, registry=world.registry,
                         buckets=world.buckets, signer=world.signer,
                         anchor_bucket=world.bucket("audit"))


def _raw_versions(world: World, key: str) -> list[dict[str, Any]]:
    out = world.s3.list_object_versions(Bucket=world.bucket("raw"), Prefix=key)
    return [*out.get("Versions", []), *out.get("DeleteMarkers", [])]


def _upload(world: World, sample_id: str, gate: Any) -> Any:
    u = MANIFEST.utterance("spk09_u1")
    envelope = Envelope(world.sb.session, EnvelopeConfig(key_arns=world.sb.resources.kms_key_arn))
    return upload_sample(world.sb.session, envelope, MANIFEST.path_of(u),
                         bucket=world.bucket("raw"), key_arn=world.sb.resources.kms_key_arn,
                         context=SampleContext(u.contractor, sample_id, "speech-model-training"),
                         speaker="spk09", consent=gate)


def test_an_upload_admitted_before_the_erasure_is_refused_and_leaves_nothing(
        world: World) -> None:
    world.populate("spk09", "spk02", archive=False)
    others = world.versions_of("spk02")
    gate = RacingGate(world.registry, lambda: _erase(world, "spk09"))
    with pytest.raises(ConsentError) as refused:
        _upload(world, "spk09_late", gate)
    assert refused.value.reason == "revoked-after-write" and "was deleted" in str(refused.value)
    [receipt] = gate.receipts
    assert receipt.complete            # signed while the upload was between check and write
    assert _raw_versions(world, "raw/c01/spk09_late") == []         # nothing landed for good
    assert world.versions_of("spk09") == set()
    assert world.versions_of("spk02") == others


def test_ingest_admitted_before_the_erasure_deletes_its_features_and_refuses(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    """The lesson-04 configuration (one shared key, no speaker keys): nothing but the fence
    stops a features write that was admitted before the erasure began."""
    sb, res = world.sb, world.sb.resources
    for role in ("raw", "features"):
        apply_bucket_hardening(sb.session, res.bucket(role), res.kms_key_arn)
    config = IngestConfig(raw_bucket=res.bucket("raw"), features_bucket=res.bucket("features"),
                          archive_bucket=res.bucket("archive"), key_arn=res.kms_key_arn,
                          archive_key_arn=res.archive_key_arn,
                          consent_table=world.registry.table)
    u = MANIFEST.utterance("spk09_u1")
    _upload(world, u.sample_id, world.registry)                    # an ordinary gated upload
    receipts: list[ErasureReceipt] = []

    def between_gate_and_write(step: str, item: IngestItem) -> None:
        if step == "extract":           # gate passed, features not yet encrypted or written
            receipts.append(_erase(world, "spk09"))

    with caplog.at_level(logging.INFO, logger="securepipe.audit.records"):
        outcome = ingest_sample(sb.session, config, IngestItem(u.contractor, u.sample_id,
                                                               speaker="spk09"),
                                after_step=between_gate_and_write)
    actions = [getattr(r, "action", "") for r in caplog.records]
    # the features really were written after the erasure, then removed by ingest's fence
    assert actions.index("ingest.store-features") < actions.index("ingest.fence-delete")
    [receipt] = receipts
    assert receipt.complete
    assert outcome.status == "refused" and "revoked-after-write" in (outcome.reason or "")
    assert world.versions_of("spk09") == set()                       # features deleted again
    listing = world.s3.list_object_versions(Bucket=res.bucket("features"),
                                            Prefix=f"features/{u.contractor}/{u.sample_id}")
    assert not listing.get("Versions") and not listing.get("DeleteMarkers")


class AdmittedEarlier:
    """Writers whose (real) ``admit`` ran before the erasure began, writing after it, and
    dying between their write and their re-check."""

    def admit(self, speaker: str, sample_id: str, *, contractor: str,
              at: dt.datetime) -> object:
        return None

    def check_consent(self, speaker: str, at: dt.datetime) -> object:
        raise Crash("the writer stopped between its write and its re-check")


def test_a_writer_that_dies_before_its_recheck_is_cleaned_by_the_sweeper_and_a_rerun(
        world: World) -> None:
    world.populate("spk09", "spk02", archive=False)
    others = world.versions_of("spk02")
    late = ("spk09_late1", "spk09_late2", "spk09_late3")
    for sample_id in late:                                  # admitted while consent stood
        world.registry.admit("spk09", sample_id, contractor="c01", at=world_now())
    assert _erase(world, "spk09").complete
    for sample_id in late[:2]:
        with pytest.raises(Crash):
            _upload(world, sample_id, AdmittedEarlier())
    # both writes landed after the erasure and stayed, named by their metadata
    for sample_id in late[:2]:
        [left] = _raw_versions(world, f"raw/c01/{sample_id}")
        head = world.s3.head_object(Bucket=world.bucket("raw"), Key=left["Key"],
                                    VersionId=left["VersionId"])
        assert head["Metadata"][META_SPEAKER] == "spk09"

    again = _erase(world, "spk09")                                  # a re-run finds them
    assert again.status == "already-erased" and again.complete
    stragglers = [d for d in again.deleted if "found after the speaker was erased" in d.attribution]
    assert {d.key for d in stragglers} == {f"raw/c01/{s}" for s in late[:2]}
    assert world.versions_of("spk09") == set()

    with pytest.raises(Crash):
        _upload(world, late[2], AdmittedEarlier())
    report = sweep(world.sb.session, buckets=world.buckets, registry=world.registry,
                   dry_run=False)
    [entry] = [e for e in report.deleted if e.speaker == "spk09"]
    assert entry.key == f"raw/c01/{late[2]}" and "speaker erased on" in entry.reason
    assert "recorded at write time" in entry.reason
    assert world.versions_of("spk09") == set()
    assert world.versions_of("spk02") == others
