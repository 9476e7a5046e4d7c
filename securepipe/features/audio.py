"""Strict validation of uploaded recordings before any feature is extracted from them.

The ingest pipeline (:mod:`securepipe.features.ingest`) trusts nothing a contractor uploads: the
bytes are
parsed as RIFF/WAVE by hand (every chunk size checked against the file), then the audio itself
is checked (one channel, a supported encoding, the expected sample rate or a deliberate
resample, duration bounds, finite samples, not silent). Every failure is a
:class:`~securepipe.errors.InvalidAudioError` with a short machine-readable ``reason``, so the
sample can be quarantined with it and counted, never silently dropped.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

import numpy as np

from securepipe.errors import InvalidAudioError, InvalidParameterError

#: Every reason :func:`validate_wav` can give, for reports and tests.
REASONS: tuple[str, ...] = (
    "empty", "not-wav", "riff-size", "truncated", "no-fmt", "no-data", "unsupported-format",
    "bit-depth", "not-mono", "block-align", "sample-rate", "too-short", "too-long",
    "non-finite", "silent",
)
_PCM, _IEEE_FLOAT = 1, 3


@dataclass(frozen=True)
class AudioPolicy:
    """What the pipeline accepts. Checked when built.

    :param sample_rate: the rate features are extracted at.
    :param resample_from: other rates accepted *deliberately*, resampled to ``sample_rate``
        (soxr high quality); any other rate is rejected.
    :param min_duration_s: shorter recordings are rejected.
    :param max_duration_s: longer recordings are rejected (bounds memory and cost).
    :param silence_dbfs: recordings whose RMS is below this are rejected as silent.
    """

    sample_rate: int = 16_000
    resample_from: frozenset[int] = field(default_factory=frozenset)
    min_duration_s: float = 0.5
    max_duration_s: float = 30.0
    silence_dbfs: float = -60.0

    def __post_init__(self) -> None:
        if not isinstance(self.sample_rate, int) or not 8_000 <= self.sample_rate <= 96_000:
            raise InvalidParameterError(f"sample_rate out of range: {self.sample_rate!r}")
        if not 0 < self.min_duration_s < self.max_duration_s <= 600:
            raise InvalidParameterError("need 0 < min_duration_s < max_duration_s <= 600")
        if not -120 <= self.silence_dbfs < 0:
            raise InvalidParameterError("silence_dbfs must be in [-120, 0)")
        object.__setattr__(self, "resample_from", frozenset(self.resample_from))


@dataclass(frozen=True)
class Audio:
    """A validated recording: mono float32 samples in [-1, 1] at ``sample_rate``."""

    samples: np.ndarray
    sample_rate: int
    resampled_from: int | None
    duration_s: float


def validate_wav(data: bytes, policy: AudioPolicy | None = None) -> Audio:
    """Parse and check a WAV file's bytes; :class:`InvalidAudioError` names what is wrong."""
    policy = policy or AudioPolicy()
    if not data:
        raise InvalidAudioError("empty", "the file is empty")
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise InvalidAudioError("not-wav", "not a RIFF/WAVE file")
    riff_size = struct.unpack_from("<I", data, 4)[0]
    if riff_size != len(data) - 8:
        raise InvalidAudioError(
            "riff-size", f"RIFF size says {riff_size + 8} bytes, the file has {len(data)}")
    fmt: tuple[int, int, int, int, int] | None = None
    payload: bytes | None = None
    pos = 12
    while pos < len(data):
        if pos + 8 > len(data):
            raise InvalidAudioError("truncated", "a chunk header runs past the end of the file")
        chunk_id, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body_start, body_end = pos + 8, pos + 8 + size
        if body_end > len(data):
            raise InvalidAudioError(
                "truncated", f"chunk {chunk_id!r} claims {size} bytes; the file ends first")
        if chunk_id == b"fmt ":
            if size < 16:
                raise InvalidAudioError("no-fmt", "fmt chunk too short")
            audio_format, channels, rate, _, block_align, bits = struct.unpack_from(
                "<HHIIHH", data, body_start)
            fmt = (audio_format, channels, rate, block_align, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise InvalidAudioError("no-fmt", "data chunk before any fmt chunk")
            payload = data[body_start:body_end]
        pos = body_end + (size & 1)  # chunks are padded to an even length
    if fmt is None:
        raise InvalidAudioError("no-fmt", "no fmt chunk")
    if payload is None:
        raise InvalidAudioError("no-data", "no data chunk")
    audio_format, channels, rate, block_align, bits = fmt
    if audio_format not in (_PCM, _IEEE_FLOAT):
        raise InvalidAudioError("unsupported-format",
                                f"encoding {audio_format:#06x} (only PCM and IEEE float)")
    if (audio_format, bits) not in ((_PCM, 16), (_IEEE_FLOAT, 32)):
        raise InvalidAudioError("bit-depth", f"{bits}-bit samples (16-bit PCM or 32-bit float)")
    if channels != 1:
        raise InvalidAudioError("not-mono", f"{channels} channels (mono expected)")
    if block_align != bits // 8 or len(payload) % block_align:
        raise InvalidAudioError("block-align", "data size is not a whole number of samples")
    if audio_format == _PCM:
        samples = np.frombuffer(payload, dtype="<i2").astype(np.float32) / 32768.0
    else:
        samples = np.frombuffer(payload, dtype="<f4").astype(np.float32)
        if not np.all(np.isfinite(samples)):
            raise InvalidAudioError("non-finite", "NaN or infinite samples")
    resampled_from = None
    if rate != policy.sample_rate:
        if rate not in policy.resample_from:
            raise InvalidAudioError(
                "sample-rate", f"{rate} Hz; expected {policy.sample_rate} Hz")
        import librosa

        samples = librosa.resample(samples, orig_sr=rate, target_sr=policy.sample_rate,
                                   res_type="soxr_hq").astype(np.float32)
        resampled_from = rate
    duration = len(samples) / policy.sample_rate
    if duration < policy.min_duration_s:
        raise InvalidAudioError("too-short", f"{duration:.2f} s < {policy.min_duration_s} s")
    if duration > policy.max_duration_s:
        raise InvalidAudioError("too-long", f"{duration:.2f} s > {policy.max_duration_s} s")
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    level = 20 * math.log10(rms) if rms > 0 else -math.inf
    if level < policy.silence_dbfs:
        raise InvalidAudioError("silent", f"RMS {level:.1f} dBFS < {policy.silence_dbfs} dBFS")
    return Audio(samples=samples, sample_rate=policy.sample_rate, resampled_from=resampled_from,
                 duration_s=duration)


# -- a corpus of malformed recordings, for tests and the lesson ---------------------------------


def wav_bytes(payload: bytes, *, sample_rate: int = 16_000, channels: int = 1,
              audio_format: int = _PCM, bits: int = 16) -> bytes:
    """A RIFF/WAVE file around ``payload`` with the given fmt fields (no checks: for tests)."""
    block_align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", audio_format, channels, sample_rate,
                      sample_rate * block_align, block_align, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) & 1
                                                                   else b"")
    return b"RIFF" + struct.pack("<I", len(body)) + body


@dataclass(frozen=True)
class MalformedExample:
    """A broken recording and the reason :func:`validate_wav` must give for it."""

    name: str
    data: bytes
    reason: str


def malformed_examples(good_wav: bytes) -> list[MalformedExample]:
    """Eighteen ways an upload can be broken, each built from a valid 16 kHz mono WAV."""
    audio = validate_wav(good_wav)
    pcm = (np.clip(audio.samples, -1, 1) * 32767).astype("<i2").tobytes()
    floats = audio.samples.astype("<f4")
    nan, inf = floats.copy(), floats.copy()
    nan[100], inf[200] = np.nan, np.inf
    header_only = wav_bytes(b"")
    wrong_riff = bytearray(good_wav)
    struct.pack_into("<I", wrong_riff, 4, len(good_wav) + 1000)
    truncated = bytearray(good_wav[: len(good_wav) // 2])
    struct.pack_into("<I", truncated, 4, len(truncated) - 8)
    no_fmt = b"RIFF" + struct.pack("<I", 4 + 8 + len(pcm)) + b"WAVE" + b"data" + struct.pack(
        "<I", len(pcm)) + pcm
    fmt_only = wav_bytes(pcm)
    fmt_only = fmt_only[: 12 + 8 + 16]
    fmt_only = fmt_only[:4] + struct.pack("<I", len(fmt_only) - 8) + fmt_only[8:]
    long_pcm = pcm * (int(40 / audio.duration_s) + 1)
    return [
        MalformedExample("empty file", b"", "empty"),
        MalformedExample("header only", header_only, "too-short"),
        MalformedExample("RIFF size wrong", bytes(wrong_riff), "riff-size"),
        MalformedExample("non-PCM (A-law)", wav_bytes(pcm[: len(pcm) // 2], audio_format=6,
                                                      bits=8), "unsupported-format"),
        MalformedExample("WAVE_FORMAT_EXTENSIBLE", wav_bytes(pcm, audio_format=0xFFFE),
                         "unsupported-format"),
        MalformedExample("8-bit PCM", wav_bytes(pcm[: len(pcm) // 2], bits=8), "bit-depth"),
        MalformedExample("NaN samples", wav_bytes(nan.tobytes(), audio_format=_IEEE_FLOAT,
                                                  bits=32), "non-finite"),
        MalformedExample("infinite samples", wav_bytes(inf.tobytes(), audio_format=_IEEE_FLOAT,
                                                       bits=32), "non-finite"),
        MalformedExample("silence", wav_bytes(bytes(len(pcm))), "silent"),
        MalformedExample("wrong sample rate (8 kHz)", wav_bytes(pcm, sample_rate=8_000),
                         "sample-rate"),
        MalformedExample("stereo", wav_bytes(pcm, channels=2), "not-mono"),
        MalformedExample("over-long (40 s)", wav_bytes(long_pcm), "too-long"),
        MalformedExample("too short (0.1 s)", wav_bytes(pcm[:3200]), "too-short"),
        MalformedExample("truncated data chunk", bytes(truncated), "truncated"),
        MalformedExample("text file named .wav", b"this is not audio, just a text file\n" * 20,
                         "not-wav"),
        MalformedExample("no fmt chunk", no_fmt, "no-fmt"),
        MalformedExample("no data chunk", fmt_only, "no-data"),
        MalformedExample("odd data size", wav_bytes(pcm + b"\x01"), "block-align"),
    ]
