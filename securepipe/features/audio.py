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
    "duplicate-chunk", "too-large", "out-of-range", "dc-offset", "no-speech", "clipped",
    "not-speech",
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
    :param silence_dbfs: recordings whose RMS (DC removed) is below this are rejected as silent.
    :param max_bytes: larger files are rejected before anything is decoded (default: what
        ``max_duration_s`` of 32-bit samples at the highest accepted rate needs, plus 64 KiB).
    :param min_speech_s: seconds of voice activity needed (25 ms frames within 40 dB of the
        loudest frame and above ``silence_dbfs``): one click in silence has a frame or two.
    :param min_crest_factor: peak / RMS below this is a tone or a square wave, not speech
        (speech is typically 4 or more; a sine is 1.41, a square wave 1).
    :param max_clipped_fraction: more samples than this sitting flat at the peak (a sample and
        its neighbour both within 0.1% of it) is clipping.
    :param max_flatness: median spectral flatness of the active frames above this is noise
        (white noise is about 0.56; voiced speech far below 0.1).
    """

    sample_rate: int = 16_000
    resample_from: frozenset[int] = field(default_factory=frozenset)
    min_duration_s: float = 0.5
    max_duration_s: float = 30.0
    silence_dbfs: float = -60.0
    max_bytes: int | None = None
    min_speech_s: float = 0.25
    min_crest_factor: float = 2.5
    max_clipped_fraction: float = 0.002
    max_flatness: float = 0.3

    def __post_init__(self) -> None:
        if not isinstance(self.sample_rate, int) or not 8_000 <= self.sample_rate <= 96_000:
            raise InvalidParameterError(f"sample_rate out of range: {self.sample_rate!r}")
        if not 0 < self.min_duration_s < self.max_duration_s <= 600:
            raise InvalidParameterError("need 0 < min_duration_s < max_duration_s <= 600")
        if not -120 <= self.silence_dbfs < 0:
            raise InvalidParameterError("silence_dbfs must be in [-120, 0)")
        object.__setattr__(self, "resample_from", frozenset(self.resample_from))
        if not 0 <= self.min_speech_s <= self.max_duration_s:
            raise InvalidParameterError("need 0 <= min_speech_s <= max_duration_s")
        if not 0 <= self.min_crest_factor < 100 or not 0 < self.max_clipped_fraction <= 1:
            raise InvalidParameterError("min_crest_factor in [0, 100), max_clipped_fraction "
                                        "in (0, 1]")
        if not 0 < self.max_flatness <= 1:
            raise InvalidParameterError("max_flatness must be in (0, 1]")
        if self.max_bytes is None:
            top = max((self.sample_rate, *self.resample_from))
            object.__setattr__(self, "max_bytes", int(self.max_duration_s * top * 4) + 65_536)
        elif (isinstance(self.max_bytes, bool) or not isinstance(self.max_bytes, int)
              or self.max_bytes < 44):
            raise InvalidParameterError(f"max_bytes must be an int >= 44: {self.max_bytes!r}")

    @property
    def byte_limit(self) -> int:
        """The largest file accepted, in bytes (``max_bytes`` once resolved)."""
        return int(self.max_bytes or 0)


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
    if len(data) > policy.byte_limit:
        raise InvalidAudioError("too-large", f"{len(data)} bytes > {policy.byte_limit} bytes")
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise InvalidAudioError("not-wav", "not a RIFF/WAVE file")
    riff_size = struct.unpack_from("<I", data, 4)[0]
    if riff_size != len(data) - 8:
        raise InvalidAudioError(
            "riff-size", f"RIFF size says {riff_size + 8} bytes, the file has {len(data)}")
    fmt: tuple[int, int, int, int, int] | None = None
    payload: memoryview | None = None
    pos = 12
    while pos < len(data):
        if pos + 8 > len(data):
            raise InvalidAudioError("truncated", "a chunk header runs past the end of the file")
        chunk_id, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body_start, body_end = pos + 8, pos + 8 + size
        if body_end > len(data):
            raise InvalidAudioError(
                "truncated", f"chunk {chunk_id!r} claims {size} bytes; the file ends first")
        if chunk_id in (b"fmt ", b"data") and (
                (chunk_id == b"fmt " and fmt is not None)
                or (chunk_id == b"data" and payload is not None)):
            # readers disagree on which one counts (first, last, or refuse): refuse
            raise InvalidAudioError("duplicate-chunk", f"two {chunk_id!r} chunks")
        if chunk_id == b"fmt ":
            if size < 16:
                raise InvalidAudioError("no-fmt", "fmt chunk too short")
            audio_format, channels, rate, _, block_align, bits = struct.unpack_from(
                "<HHIIHH", data, body_start)
            fmt = (audio_format, channels, rate, block_align, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise InvalidAudioError("no-fmt", "data chunk before any fmt chunk")
            payload = memoryview(data)[body_start:body_end]
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
    if rate != policy.sample_rate and rate not in policy.resample_from:
        raise InvalidAudioError("sample-rate", f"{rate} Hz; expected {policy.sample_rate} Hz")
    # Duration from the header, before a single sample is decoded (an hour-long upload costs
    # nothing but this division).
    duration = len(payload) // block_align / rate
    if duration < policy.min_duration_s:
        raise InvalidAudioError("too-short", f"{duration:.2f} s < {policy.min_duration_s} s")
    if duration > policy.max_duration_s:
        raise InvalidAudioError("too-long", f"{duration:.2f} s > {policy.max_duration_s} s")
    if audio_format == _PCM:
        samples = np.frombuffer(payload, dtype="<i2").astype(np.float32) / 32768.0
    else:
        samples = np.frombuffer(payload, dtype="<f4").astype(np.float32)
        if not np.all(np.isfinite(samples)):
            raise InvalidAudioError("non-finite", "NaN or infinite samples")
        peak = float(np.max(np.abs(samples)))
        if peak > 1.0:
            raise InvalidAudioError("out-of-range", f"float samples reach {peak:.3g}, "
                                    "outside [-1, 1]")
    resampled_from = None
    if rate != policy.sample_rate:
        import librosa

        samples = librosa.resample(samples, orig_sr=rate, target_sr=policy.sample_rate,
                                   res_type="soxr_hq").astype(np.float32)
        resampled_from = rate
    duration = len(samples) / policy.sample_rate
    _check_speech(samples, policy)
    return Audio(samples=samples, sample_rate=policy.sample_rate, resampled_from=resampled_from,
                 duration_s=duration)


_FRAME, _HOP = 400, 160  # 25 ms frames, 10 ms hop at 16 kHz


def _check_speech(samples: np.ndarray, policy: AudioPolicy) -> None:
    """Refuse what is not speech: silence, a DC offset, a click, a tone, clipping, noise.

    Cheap statistics, in this order: RMS level with the DC removed; an energy voice-activity
    check (frames within 40 dB of the loudest, above the silence floor); crest factor; the share
    of samples at the peak (clipping); median spectral flatness of the active frames.
    """
    x = samples.astype(np.float64)
    mean = float(np.mean(x))
    x -= mean
    rms = float(np.sqrt(np.mean(np.square(x))))
    level = 20 * math.log10(rms) if rms > 0 else -math.inf
    if level < policy.silence_dbfs:
        raw_rms = math.sqrt(rms * rms + mean * mean)
        if raw_rms > 0 and 20 * math.log10(raw_rms) >= policy.silence_dbfs:
            raise InvalidAudioError("dc-offset", f"a DC offset of {mean:.3g} and nothing else")
        raise InvalidAudioError("silent", f"RMS {level:.1f} dBFS < {policy.silence_dbfs} dBFS")
    hop = max(1, round(_HOP * policy.sample_rate / 16_000))
    width = max(16, round(_FRAME * policy.sample_rate / 16_000))
    if len(x) < width:
        raise InvalidAudioError("no-speech", "shorter than one analysis frame")
    frames = np.lib.stride_tricks.sliding_window_view(x, width)[::hop]
    energy = 10 * np.log10(np.maximum(np.mean(np.square(frames), axis=1), 1e-20))
    active = energy > max(float(energy.max()) - 40.0, policy.silence_dbfs)
    speech_s = int(active.sum()) * hop / policy.sample_rate
    if speech_s < policy.min_speech_s:
        raise InvalidAudioError("no-speech", f"{speech_s:.2f} s of voice activity < "
                                f"{policy.min_speech_s} s")
    magnitude = np.abs(x)
    peak = float(np.max(magnitude))
    # Clipping leaves flat tops: neighbouring samples both at the peak (a tone's crest does
    # not: at speech rates its samples pass the peak one at a time).
    top = magnitude >= 0.999 * peak
    flat_tops = float(np.mean(top[:-1] & top[1:]))
    if flat_tops > policy.max_clipped_fraction:
        raise InvalidAudioError("clipped", f"{100 * flat_tops:.2f}% of samples sit flat at "
                                "the peak")
    if peak / rms < policy.min_crest_factor:
        raise InvalidAudioError("not-speech", f"crest factor {peak / rms:.2f} < "
                                f"{policy.min_crest_factor} (a tone or a square wave)")
    chosen = frames[active][::4]  # every fourth active frame is plenty for a median
    spectrum = np.square(np.abs(np.fft.rfft(chosen * np.hanning(width), axis=1))) + 1e-12
    flatness = np.exp(np.mean(np.log(spectrum), axis=1)) / np.mean(spectrum, axis=1)
    median = float(np.median(flatness))
    if median > policy.max_flatness:
        raise InvalidAudioError("not-speech", f"spectral flatness {median:.2f} > "
                                f"{policy.max_flatness} (noise)")


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
    """Ways an upload can be broken or not be speech, each built from a valid 16 kHz mono WAV.

    The first eighteen are broken files; the rest parse but must still be refused (two data
    chunks, float samples outside [-1, 1], and non-speech that RMS alone lets through).
    """
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
        *_hostile_examples(audio.samples, pcm),
    ]


def _pcm16(x: np.ndarray) -> bytes:
    return wav_bytes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())


def _hostile_examples(samples: np.ndarray, pcm: bytes) -> list[MalformedExample]:
    """Uploads that parse as WAV but jam or fool a pipeline that checks only RMS."""
    n = len(samples)
    t = np.arange(n) / 16_000
    loud = samples.astype("<f4") * np.float32(40.0)   # finite, far outside [-1, 1]
    two_data = bytearray(wav_bytes(pcm))
    extra = b"data" + struct.pack("<I", len(pcm)) + pcm
    two_data += extra
    struct.pack_into("<I", two_data, 4, len(two_data) - 8)
    click = np.zeros(n)
    click[n // 2] = 0.9
    peak = float(np.max(np.abs(samples)))
    return [
        MalformedExample("two data chunks", bytes(two_data), "duplicate-chunk"),
        MalformedExample("float samples far outside [-1, 1]",
                         wav_bytes(loud.tobytes(), audio_format=_IEEE_FLOAT, bits=32),
                         "out-of-range"),
        MalformedExample("DC offset, nothing else", _pcm16(np.full(n, 0.25)), "dc-offset"),
        MalformedExample("one click in silence", _pcm16(click), "no-speech"),
        MalformedExample("full-scale square wave",
                         _pcm16(np.sign(np.sin(2 * np.pi * 200 * t)) * 0.999), "clipped"),
        MalformedExample("pure tone", _pcm16(0.5 * np.sin(2 * np.pi * 440 * t)), "not-speech"),
        MalformedExample("hard-clipped speech", _pcm16(np.clip(samples / peak * 8, -0.9, 0.9)),
                         "clipped"),
        MalformedExample("white noise", _pcm16(
            0.1 * np.random.default_rng(0).standard_normal(n)), "not-speech"),
    ]
