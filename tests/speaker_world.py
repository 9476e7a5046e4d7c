"""A sandbox with a consent registry and objects laid out the way ingest leaves them (step 5).

Shared by test_retention.py and test_erasure.py (pytest puts this folder on sys.path).
:meth:`World.populate` writes, per utterance, what ingest would: a raw upload (contractor
written, no speaker metadata: attributed only by the registry's index of the speaker's samples,
which populate fills), a feature object encrypted with the speaker's key and carrying
``securepipe-speaker``, and an archive copy (archival class, legal hold where the manifest says
so). It skips feature extraction, so a test costs milliseconds per object, not a librosa run.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from securepipe import clock
from securepipe.data.dataset import Manifest, load_manifest
from securepipe.encryption.envelope import SampleContext
from securepipe.encryption.hardening import sse_kms_put_args
from securepipe.encryption.signing import KmsSigner
from securepipe.features.ingest import META_SPEAKER
from securepipe.retention.consent import ConsentRegistry
from securepipe.retention.shredding import SpeakerKeys
from securepipe.retention.sweeper import attributed_versions, sample_speakers
from securepipe.sandbox.account import Sandbox

logging.getLogger("aws_encryption_sdk").setLevel(logging.CRITICAL)
MANIFEST: Manifest = load_manifest()
SAMPLES = sample_speakers(MANIFEST)
FEATURES_PURPOSE = "speech-features"
ARCHIVE_PURPOSE = "legal-archive"


def at(year: int, month: int, day: int) -> dt.datetime:
    """An aware UTC datetime, for injected clocks."""
    return dt.datetime(year, month, day, tzinfo=dt.UTC)


@dataclass
class World:
    sb: Sandbox
    registry: ConsentRegistry
    keys: SpeakerKeys

    @property
    def signer(self) -> KmsSigner:
        return KmsSigner(self.sb.session, self.sb.resources.signing_key_arn)

    @property
    def s3(self) -> Any:
        return self.sb.session.client("s3")

    def bucket(self, role: str) -> str:
        return self.sb.resources.bucket(role)

    @property
    def buckets(self) -> list[str]:
        return [self.bucket(r) for r in ("raw", "features", "archive")]

    def feature_key(self, sample_id: str) -> str:
        u = MANIFEST.utterance(sample_id)
        return f"features/{u.contractor}/{sample_id}/mel-fs1"

    def features_context(self, sample_id: str) -> SampleContext:
        u = MANIFEST.utterance(sample_id)
        return SampleContext(u.contractor, sample_id, FEATURES_PURPOSE)

    def populate(self, *speakers: str, raw: bool = True, archive: bool = True) -> None:
        """Write raw uploads, speaker-keyed features and archive copies for ``speakers``."""
        s3, res = self.s3, self.sb.resources
        for u in MANIFEST.utterances:
            if u.speaker not in speakers:
                continue
            self.registry.index_samples(u.speaker, [u.sample_id])
            if raw:
                s3.put_object(Bucket=self.bucket("raw"), Key=f"raw/{u.contractor}/{u.sample_id}",
                              Body=b"contractor-ciphertext-" + u.sample_id.encode(),
                              **sse_kms_put_args(res.kms_key_arn))
            self.keys.ensure(u.speaker)
            envelope = self.keys.envelope(u.speaker)
            message = envelope.encrypt_bytes(b"mel-matrix-" + u.sample_id.encode(),
                                             self.features_context(u.sample_id))
            s3.put_object(Bucket=self.bucket("features"), Key=self.feature_key(u.sample_id),
                          Body=message, ChecksumAlgorithm="SHA256",
                          Metadata={META_SPEAKER: u.speaker},
                          **sse_kms_put_args(res.kms_key_arn))
            if archive and (u.legal_hold or u.archive_required):
                copy = envelope.encrypt_bytes(b"wav-" + u.sample_id.encode(), SampleContext(
                    u.contractor, u.sample_id, ARCHIVE_PURPOSE))
                extra = {"ObjectLockLegalHoldStatus": "ON"} if u.legal_hold else {}
                s3.put_object(Bucket=self.bucket("archive"),
                              Key=f"archive/{u.contractor}/{u.sample_id}", Body=copy,
                              StorageClass="DEEP_ARCHIVE", ChecksumAlgorithm="SHA256",
                              Metadata={META_SPEAKER: u.speaker},
                              **sse_kms_put_args(res.archive_key_arn), **extra)

    def versions(self) -> set[tuple[str, str, str, str | None]]:
        """Every (bucket, key, version id, speaker) in the three data buckets."""
        return {(v.bucket, v.key, v.version_id, v.speaker)
                for b in self.buckets for v in attributed_versions(self.sb.session, b, SAMPLES)}

    def versions_of(self, speaker: str) -> set[tuple[str, str, str]]:
        """Versions any source attributes to ``speaker`` (metadata, manifest, same key)."""
        return {(v.bucket, v.key, v.version_id) for b in self.buckets
                for v in attributed_versions(self.sb.session, b, SAMPLES)
                if speaker in v.candidates}


#: A day on which every manifest speaker's consent stands (the manifest's reference day): tests
#: that ingest set the kit clock here, so they pass on any real date.
CONSENT_DAY = at(2026, 11, 26)


def make_world() -> Iterator[World]:
    with Sandbox() as sb:
        clock.set_to(CONSENT_DAY)     # the sandbox resets the clock when it closes
        registry = ConsentRegistry(sb.session, "securepipe-consent-test")
        registry.load_manifest_consents(MANIFEST)
        yield World(sb, registry, SpeakerKeys(sb.session, registry, sb.resources.kms_key_arn))
