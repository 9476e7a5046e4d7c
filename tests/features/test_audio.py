"""Audio validation: header checks before decoding, hostile uploads, speech activity."""

from __future__ import annotations

import struct
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securepipe.data.dataset import load_manifest
from securepipe.errors import InvalidAudioError, InvalidParameterError
from securepipe.features.audio import (
    REASONS,
    AudioPolicy,
    malformed_examples,
    validate_wav,
    wav_bytes,
)
from securepipe.features.extract import FeatureSpec
from securepipe.features.ingest import IngestConfig

MANIFEST = load_manifest()
GOOD = MANIFEST.path_of("spk01_u1").read_bytes()


def _reason(data: bytes, policy: AudioPolicy | None = None) -> str:
    with pytest.raises(InvalidAudioError) as err:
        validate_wav(data, policy)
    return err.value.reason


def test_every_committed_voice_passes_the_speech_checks() -> None:
    for utterance in MANIFEST.utterances:
        audio = validate_wav(MANIFEST.path_of(utterance.sample_id).read_bytes())
        assert audio.duration_s > 1


@pytest.mark.parametrize("example", malformed_examples(GOOD), ids=lambda e: e.name)
def test_each_malformed_example_is_refused_with_its_reason(example: object) -> None:
    assert example.reason in REASONS  # type: ignore[attr-defined]
    assert _reason(example.data) == example.reason  # type: ignore[attr-defined]


def test_an_hour_long_wav_is_refused_from_its_header_without_decoding() -> None:
    # 1 h of 16-bit PCM at 16 kHz; a policy that allows the size, so only the header's
    # duration stops it, and it must stop it before any sample is decoded.
    hour = wav_bytes(bytes(16_000 * 2 * 3600))
    policy = AudioPolicy(max_bytes=len(hour) + 1)
    tracemalloc.start()
    try:
        assert _reason(hour, policy) == "too-long"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, f"{peak} bytes allocated: the file was decoded"


def test_a_file_over_the_size_limit_is_refused_first() -> None:
    policy = AudioPolicy()
    assert policy.byte_limit == (30 * 16_000 * 4) + 65_536
    assert _reason(b"RIFF" + bytes(policy.byte_limit), policy) == "too-large"


@settings(max_examples=30, deadline=None)
@given(scale=st.floats(min_value=1.01, max_value=1e30))
def test_float_samples_outside_unit_range_are_refused(scale: float) -> None:
    samples = validate_wav(GOOD).samples.astype("<f4")
    loud = (samples / np.max(np.abs(samples)) * np.float32(scale)).astype("<f4")
    if not np.all(np.isfinite(loud)):
        return
    assert _reason(wav_bytes(loud.tobytes(), audio_format=3, bits=32)) == "out-of-range"


def test_two_fmt_chunks_are_refused_too() -> None:
    fmt = GOOD[12:12 + 8 + 16]
    doubled = GOOD[:12] + fmt + GOOD[12:]
    doubled = doubled[:4] + struct.pack("<I", len(doubled) - 8) + doubled[8:]
    assert _reason(doubled) == "duplicate-chunk"


def test_a_speech_file_with_a_small_dc_offset_still_passes() -> None:
    samples = validate_wav(GOOD).samples
    shifted = np.clip(samples * 0.5 + 0.05, -1, 1)
    validate_wav(wav_bytes((shifted * 32767).astype("<i2").tobytes()))


def test_contradictory_policy_and_spec_are_refused_at_construction() -> None:
    buckets = dict(raw_bucket="r", features_bucket="f", archive_bucket="a",
                   key_arn="arn:k", archive_key_arn="arn:a")
    with pytest.raises(InvalidParameterError, match="16000 Hz"):
        IngestConfig(**buckets, audio=AudioPolicy(sample_rate=8_000))
    with pytest.raises(InvalidParameterError, match="FFT window"):
        IngestConfig(**buckets, audio=AudioPolicy(min_duration_s=0.01),
                     spec=FeatureSpec(kind="mel", n_mels=64, n_fft=512))
    with pytest.raises(InvalidParameterError):
        AudioPolicy(min_speech_s=40.0)
    IngestConfig(**buckets, audio=AudioPolicy(sample_rate=16_000, resample_from={8_000}))
