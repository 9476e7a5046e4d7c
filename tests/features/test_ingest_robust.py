"""Ingest never jams: hostile uploads are quarantined, any exception is that sample's outcome,
and a re-run reports an earlier quarantine as quarantined."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from securepipe import clock
from securepipe.data.dataset import load_manifest
from securepipe.encryption.envelope import Envelope, EnvelopeConfig, SampleContext
from securepipe.encryption.hardening import apply_bucket_hardening
from securepipe.encryption.upload import upload_sample
from securepipe.features import ingest as ingest_module
from securepipe.features.audio import malformed_examples, validate_wav, wav_bytes
from securepipe.features.ingest import IngestConfig, IngestItem, ingest_batch, raw_left
from securepipe.retention.consent import ConsentRegistry
from securepipe.sandbox.account import Sandbox

logging.getLogger("aws_encryption_sdk").setLevel(logging.CRITICAL)
MANIFEST = load_manifest()


@pytest.fixture
def sb_config() -> Iterator[tuple[Sandbox, IngestConfig]]:
    with Sandbox() as sb:
        res = sb.resources
        for role, key in (("raw", res.kms_key_arn), ("features", res.kms_key_arn),
                          ("archive", res.archive_key_arn)):
            apply_bucket_hardening(sb.session, res.bucket(role), key)
        # consent gates every ingest (issue 14): the manifest's speakers, consenting today
        ConsentRegistry(sb.session).load_manifest_consents(MANIFEST,
                                                           rebase_to=clock.now().date())
        yield sb, IngestConfig(raw_bucket=res.bucket("raw"),
                               features_bucket=res.bucket("features"),
                               archive_bucket=res.bucket("archive"), key_arn=res.kms_key_arn,
                               archive_key_arn=res.archive_key_arn)


def _upload(sb: Sandbox, config: IngestConfig, item: IngestItem, data: bytes,
            tmp: Path, speaker: str = "spk01") -> None:
    """Upload as the kit does: naming a consenting speaker, past the consent gate."""
    path = tmp / f"{item.sample_id}.wav"
    path.write_bytes(data)
    upload_sample(sb.session, Envelope(sb.session, EnvelopeConfig(key_arns=config.key_arn)),
                  path, bucket=config.raw_bucket, key_arn=config.key_arn,
                  context=SampleContext(item.contractor, item.sample_id, config.upload_purpose),
                  speaker=speaker, consent=ConsentRegistry(sb.session, create=False))


def test_hostile_uploads_are_quarantined_and_a_rerun_says_so_again(
        sb_config: tuple[Sandbox, IngestConfig], tmp_path: Path) -> None:
    sb, config = sb_config
    good = MANIFEST.path_of("spk01_u1").read_bytes()
    hostile = malformed_examples(good)[-8:]   # parse as WAV, yet jam or fool an RMS check
    items = [IngestItem("c07", f"h{n}") for n in range(len(hostile))]
    for item, example in zip(items, hostile, strict=True):
        _upload(sb, config, item, example.data, tmp_path)
    ok = IngestItem("c07", "spk01_u1")
    _upload(sb, config, ok, good, tmp_path)
    first = ingest_batch([*items, ok], config, lambda: sb.session)
    assert [(o.status, o.reason) for o in first.outcomes] == [
        *(("quarantined", e.reason) for e in hostile), ("processed", None)]
    assert raw_left(sb.session, config.raw_bucket) == 0
    again = ingest_batch([*items, ok], config, lambda: sb.session)
    assert [(o.status, o.reason) for o in again.outcomes] == [
        (o.status, o.reason) for o in first.outcomes]
    assert again.count("missing") == 0


def test_an_exception_inside_extraction_quarantines_that_sample_only(
        sb_config: tuple[Sandbox, IngestConfig], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    sb, config = sb_config
    good = MANIFEST.path_of("spk01_u1").read_bytes()
    marker = validate_wav(good).samples.copy()
    marker[:4] = [0.5, -0.5, 0.5, -0.5]   # a signature the fake extractor trips on
    poison = wav_bytes((marker * 32767).astype("<i2").tobytes())
    real = ingest_module.extract

    def fragile(y: np.ndarray, sr: int, spec: Any) -> np.ndarray:
        if np.allclose(y[:4], [0.5, -0.5, 0.5, -0.5], atol=1e-3):
            raise MemoryError("an extractor bug the kit did not foresee")
        return real(y, sr, spec)

    monkeypatch.setattr(ingest_module, "extract", fragile)
    items = [IngestItem("c07", "poison"), IngestItem("c07", "fine")]
    _upload(sb, config, items[0], poison, tmp_path)
    _upload(sb, config, items[1], good, tmp_path)
    report = ingest_batch(items, config, lambda: sb.session)
    assert [(o.status, o.reason) for o in report.outcomes] == [
        ("quarantined", "extract-failed: MemoryError"), ("processed", None)]


def test_any_other_exception_is_a_failed_outcome_not_the_batchs(
        sb_config: tuple[Sandbox, IngestConfig], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    sb, config = sb_config
    good = MANIFEST.path_of("spk01_u1").read_bytes()
    items = [IngestItem("c07", "first"), IngestItem("c07", "second")]
    for item in items:
        _upload(sb, config, item, good, tmp_path)
    real_put = ingest_module._put_features   # the step to break

    def broken_put(clients: Any, cfg: Any, item: IngestItem, *args: Any) -> bool:
        if item.sample_id == "first":
            raise RuntimeError("the network stack fell over")
        return real_put(clients, cfg, item, *args)

    monkeypatch.setattr(ingest_module, "_put_features", broken_put)
    report = ingest_batch(items, config, lambda: sb.session)
    assert report.outcomes[0].status == "failed"
    assert "RuntimeError" in (report.outcomes[0].reason or "")
    assert report.outcomes[1].status == "processed"
    assert raw_left(sb.session, config.raw_bucket) == 1   # the failed one is still there


def test_an_upload_too_large_for_the_policy_is_quarantined_before_it_is_read(
        sb_config: tuple[Sandbox, IngestConfig], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The size check comes from the object's length: a raw object over the policy's
    ciphertext limit is quarantined as too-large and never decrypted; one whose ciphertext fits
    but whose plaintext is over the byte limit is refused by validation, with the same reason."""
    from securepipe.features.audio import AudioPolicy
    from securepipe.features.ingest import ciphertext_limit

    sb, config = sb_config
    policy = AudioPolicy(max_duration_s=2.0)          # 193,536 bytes of WAV at most
    small = IngestConfig(raw_bucket=config.raw_bucket, features_bucket=config.features_bucket,
                         archive_bucket=config.archive_bucket, key_arn=config.key_arn,
                         archive_key_arn=config.archive_key_arn, audio=policy)
    samples = validate_wav(MANIFEST.path_of("spk01_u1").read_bytes()).samples
    pcm = (samples * 32767).astype("<i2").tobytes()
    huge = wav_bytes(pcm * (ciphertext_limit(policy) // len(pcm) + 1))   # ciphertext too
    over = wav_bytes(pcm * 10)[: policy.byte_limit + 1000]   # only the plaintext is over
    assert len(huge) > ciphertext_limit(policy) and len(over) < ciphertext_limit(policy)
    items = [IngestItem("c07", "huge"), IngestItem("c07", "over")]
    _upload(sb, config, items[0], huge, tmp_path)
    _upload(sb, config, items[1], over, tmp_path)
    decrypted: list[int] = []
    real = ingest_module.open_sample

    def counting(*args: Any, **kwargs: Any) -> bytes:
        plain = real(*args, **kwargs)
        decrypted.append(len(plain))
        return plain

    monkeypatch.setattr(ingest_module, "open_sample", counting)
    report = ingest_batch(items, small, lambda: sb.session)
    assert [(o.status, o.reason) for o in report.outcomes] == [
        ("quarantined", "too-large"), ("quarantined", "too-large")]
    assert decrypted == [len(over)]   # the huge one was never decrypted
    assert raw_left(sb.session, config.raw_bucket) == 0
