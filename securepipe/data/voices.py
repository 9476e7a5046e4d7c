"""Deterministic source-filter speech synthesiser: the kit's synthetic voice set.

Each speaker is a :class:`SpeakerProfile` (pitch, tract length, voice quality, tempo). An utterance
is a Rosenberg-style glottal pulse train (with prosody, jitter, shimmer and breath noise) sent
through a cascade of four time-varying formant resonators, plus fricative noise, plosive bursts
and nasal murmurs. Sentence ``k`` is the same phone sequence for every speaker, like a read corpus
(a faster speaker just gets further into it in the same time), so a speaker-identification model
has to use the voice and cannot use the text.

Run ``python -m securepipe.data.voices --out DIR`` (or ``python -m securepipe voices``) to write the
set: one 16-bit mono WAV per utterance plus ``manifest.json`` with consent and digests.
"""

# DETERMINISM RULE (read before editing). tests/test_voices.py regenerates the committed WAVs in
# data-synthetic/ byte for byte, possibly on another CPU. numpy picks SIMD kernels at run time for
# array transcendentals (np.sin/np.cos/np.exp/np.log/np.power on arrays) and float reductions
# (np.sum, np.mean, np.dot, @), and these can differ in the last bit between CPUs. So in this file:
#   * transcendental values come from Python's `math`, on scalars (per period, per 5 ms block);
#   * arrays only see elementwise + - * /, comparisons, np.where, indexing, np.searchsorted,
#     np.cumsum (sequential), np.max(np.abs(x)) (exact), np.round/np.clip; filters use
#     scipy.signal.lfilter; filter coefficients are never designed with scipy.signal helpers;
#   * randomness comes only from np.random.default_rng (PCG64), seeded with integer lists built by
#     arithmetic from (seed, tag, speaker, sentence) -- never hash() -- and only as uniforms or
#     integers: Gaussian-like noise is a sum of uniforms, because the normal sampler calls libm.
# Quantisation to int16 (explicit np.round) then absorbs any remaining last-bit noise.

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import math
import numbers
import os
import re
import sys
import time
import wave
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from securepipe.data.dataset import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    Manifest,
    default_data_dir,
    manifest_from_dict,
)
from securepipe.errors import InvalidParameterError, SecurePipeError

__all__ = [
    "DEFAULT_SEED",
    "GENERATOR",
    "SUPPORTED_SAMPLE_RATES",
    "SpeakerProfile",
    "generate_corpus",
    "main",
    "make_speakers",
    "synthesize",
    "wav_bytes",
    "write_wav",
]


def _lfilter(b: Any, a: Any, x: Any, zi: Any = None) -> Any:
    """``scipy.signal.lfilter``, imported on first use: importing scipy.signal costs about a
    second, and most callers of this package (every lesson that only loads the manifest) never
    synthesise a voice."""
    from scipy.signal import lfilter

    return lfilter(b, a, x) if zi is None else lfilter(b, a, x, zi=zi)

#: The generator id recorded in the manifest (the data set's identity, kept when the module moved).
GENERATOR = "securepipe.voices"
DEFAULT_SEED = 20261126
SUPPORTED_SAMPLE_RATES: tuple[int, ...] = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
MAX_DURATION_S = 30.0
N_CONTRACTORS = 4
CONSENT_PURPOSE = "speech-model-training"
CONSENT_FIRST = dt.date(2025, 1, 1)
CONSENT_LAST = dt.date(2026, 6, 30)
# BIPA: destroy biometric identifiers within 3 years of the last interaction, so never > 1095 days.
CONSENT_TERMS_DAYS: tuple[int, ...] = (365, 730, 1095)
UTTERANCE_DURATIONS_S: tuple[float, ...] = (2.2, 2.3, 2.4, 2.5, 2.6, 2.7, 2.8)

_PEAK = 0.7079457843841379 * 32767.0  # -3 dBFS; 10 ** (-3 / 20) written out, not computed
_BLOCK_S = 0.005  # formant coefficients are updated every 5 ms
_FADE_S = 0.010
# Seed-sequence tags, so that every random stream of the corpus is independent of the others.
_TAG_SPEAKERS, _TAG_SENTENCE, _TAG_UTTERANCE, _TAG_CONSENT, _TAG_FLAGS, _TAG_DURATION = range(6)
_SPEAKER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


# --- speakers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeakerProfile:
    """One synthetic voice. Frequencies in Hz, jitter/shimmer as fractions, rate 1.0 = average."""

    speaker: str
    voice_class: str  # "low" or "high": a sex-ish pitch/tract class
    f0_hz: float  # mean fundamental frequency
    f0_range_hz: float  # size of the prosody excursions
    jitter: float  # period-to-period f0 perturbation (std, fraction)
    shimmer: float  # period-to-period amplitude perturbation (std, fraction)
    tract_factor: float  # scales every formant; < 1 is a longer vocal tract
    breathiness: float  # aspiration noise level, 0..1
    tilt: float  # one-pole low-pass coefficient on the source; larger = darker voice
    rate: float  # speaking-rate factor; > 1 is faster
    # Individual formant factors on top of tract_factor (tract shape differs, not just length).
    formant_scales: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    # Hypopharyngeal (piriform-sinus) antiresonance: a fixed, speaker-specific notch; 0 = none.
    sinus_hz: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.speaker, str) or not _SPEAKER_ID.match(self.speaker):
            raise InvalidParameterError(
                f"speaker id must be 1-64 letters, digits, '_' or '-', got {self.speaker!r}"
            )
        if self.voice_class not in ("low", "high"):
            raise InvalidParameterError(
                f"voice_class must be 'low' or 'high', got {self.voice_class!r}"
            )
        bounds = {
            "f0_hz": (50.0, 400.0),
            "f0_range_hz": (0.0, 150.0),
            "jitter": (0.0, 0.05),
            "shimmer": (0.0, 0.2),
            "tract_factor": (0.7, 1.3),
            "breathiness": (0.0, 1.0),
            "tilt": (0.0, 0.95),
            "rate": (0.5, 2.0),
        }
        for name, (lo, hi) in bounds.items():
            _check_real(getattr(self, name), name, lo, hi)
        scales = self.formant_scales
        if not isinstance(scales, tuple) or len(scales) != 4:
            raise InvalidParameterError(f"formant_scales must be a 4-tuple, got {scales!r}")
        for scale in scales:
            _check_real(scale, "formant_scales[i]", 0.8, 1.2)
        if self.sinus_hz != 0.0:
            _check_real(self.sinus_hz, "sinus_hz", 2500.0, 8000.0)

    def voice(self) -> dict[str, float | str]:
        """The voice parameters as recorded in the manifest."""
        params = asdict(self)
        del params["speaker"]
        return params


def _check_real(value: object, name: str, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(f"{name} must be a number, got {value!r}")
    if not lo <= float(value) <= hi:
        raise InvalidParameterError(f"{name} must be in [{lo}, {hi}], got {value!r}")


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or int(seed) < 0:
        raise InvalidParameterError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def _check_count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidParameterError(f"{name} must be an int, got {value!r}")
    if int(value) < 1:
        raise InvalidParameterError(f"{name} must be at least 1, got {value!r}")
    return int(value)


def _check_index(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 0:
        raise InvalidParameterError(f"sentence_index must be a non-negative int, got {value!r}")
    return int(value)


def _check_sample_rate(sample_rate: object) -> int:
    if (
        isinstance(sample_rate, bool)
        or not isinstance(sample_rate, numbers.Integral)
        or int(sample_rate) not in SUPPORTED_SAMPLE_RATES
    ):
        raise InvalidParameterError(
            f"unsupported sample rate {sample_rate!r}; use one of {SUPPORTED_SAMPLE_RATES}"
        )
    return int(sample_rate)


def _check_duration(duration_s: object) -> float:
    if isinstance(duration_s, bool) or not isinstance(duration_s, numbers.Real):
        raise InvalidParameterError(f"duration_s must be a number, got {duration_s!r}")
    value = float(duration_s)
    if not 0.0 < value <= MAX_DURATION_S:  # also refuses NaN
        raise InvalidParameterError(
            f"duration_s must be in (0, {MAX_DURATION_S:g}] seconds, got {duration_s!r}"
        )
    return value


def _rng(*parts: int) -> np.random.Generator:
    """A PCG64 generator for one stream; ``parts`` are non-negative ints (SeedSequence entropy)."""
    return np.random.default_rng(list(parts))


def _spread(rng: np.random.Generator, count: int) -> list[float]:
    """``count`` positions spaced evenly over [0, 1], in a seeded order, with a little slack."""
    order = rng.permutation(count)
    wiggle = rng.random(count)
    return [(int(order[j]) + 0.5 + 0.3 * (float(wiggle[j]) - 0.5)) / count for j in range(count)]


# Parameter ranges (lo, hi). Pitch and tract length depend on the voice class; the rest do not.
_CLASS_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "low": {"f0_hz": (92.0, 150.0), "tract_factor": (0.82, 1.0), "f0_range_hz": (14.0, 30.0)},
    "high": {"f0_hz": (170.0, 250.0), "tract_factor": (1.0, 1.18), "f0_range_hz": (28.0, 55.0)},
}
_SHARED_RANGES: dict[str, tuple[float, float]] = {
    "tilt": (0.1, 0.75),
    "breathiness": (0.02, 0.4),
    "jitter": (0.005, 0.015),
    "shimmer": (0.02, 0.06),
    "rate": (0.85, 1.15),
    "sinus_hz": (3800.0, 5600.0),
    "scale1": (0.93, 1.07),
    "scale2": (0.93, 1.07),
    "scale3": (0.93, 1.07),
    "scale4": (0.93, 1.07),
}
# What makes two voices of one class sound alike, with weights: the speaker draw maximises the
# smallest weighted distance between two speakers of the same class over a few candidate draws.
_SEPARATION_WEIGHTS = {
    "tract_factor": 3.0,
    "f0_hz": 1.0,
    "tilt": 1.5,
    "breathiness": 1.0,
    "sinus_hz": 1.0,
    "scale1": 0.5,
    "scale2": 0.5,
    "scale3": 0.5,
    "scale4": 0.5,
}
_CANDIDATE_DRAWS = 32


def _draw_positions(rng: np.random.Generator, classes: list[str]) -> list[dict[str, float]]:
    """Unit positions of every parameter for every speaker (one candidate draw)."""
    positions: list[dict[str, float]] = [{} for _ in classes]
    for cls in ("low", "high"):
        members = [i for i, c in enumerate(classes) if c == cls]
        for name in _CLASS_RANGES[cls]:
            for i, q in zip(members, _spread(rng, len(members)), strict=True):
                positions[i][name] = q
    for name in _SHARED_RANGES:
        for i, q in enumerate(_spread(rng, len(classes))):
            positions[i][name] = q
    return positions


def _separation(positions: list[dict[str, float]], classes: list[str]) -> float:
    """Smallest weighted squared distance between two speakers of the same class."""
    best = math.inf
    for i in range(len(classes)):
        for j in range(i + 1, len(classes)):
            if classes[i] != classes[j]:
                continue
            d = 0.0
            for name, w in _SEPARATION_WEIGHTS.items():
                diff = positions[i][name] - positions[j][name]
                d += w * diff * diff
            best = min(best, d)
    return best


def make_speakers(n: int, seed: int = DEFAULT_SEED) -> list[SpeakerProfile]:
    """``n`` clearly different speakers: alternating low/high voices, parameters spaced out.

    Every parameter is spread evenly over its range (not drawn at random), and among a few seeded
    orderings the one that keeps same-class speakers furthest apart is kept.
    """
    n = _check_count(n, "n_speakers")
    seed = _check_seed(seed)
    rng = _rng(seed, _TAG_SPEAKERS)
    width = max(2, len(str(n)))
    classes = ["low" if i % 2 == 0 else "high" for i in range(n)]
    draws = max(1, min(_CANDIDATE_DRAWS, 20_000 // (n * n)))
    best, best_score = None, -1.0
    for _ in range(draws):
        candidate = _draw_positions(rng, classes)
        score = _separation(candidate, classes)
        if score > best_score:
            best, best_score = candidate, score
    assert best is not None

    def value(i: int, name: str, digits: int) -> float:
        lo, hi = _CLASS_RANGES[classes[i]].get(name) or _SHARED_RANGES[name]
        return round(lo + (hi - lo) * best[i][name], digits)

    return [
        SpeakerProfile(
            speaker=f"spk{i + 1:0{width}d}",
            voice_class=classes[i],
            f0_hz=value(i, "f0_hz", 2),
            f0_range_hz=value(i, "f0_range_hz", 2),
            jitter=value(i, "jitter", 4),
            shimmer=value(i, "shimmer", 4),
            tract_factor=value(i, "tract_factor", 4),
            breathiness=value(i, "breathiness", 4),
            tilt=value(i, "tilt", 4),
            rate=value(i, "rate", 4),
            formant_scales=(value(i, "scale1", 4), value(i, "scale2", 4), value(i, "scale3", 4),
                            value(i, "scale4", 4)),
            sinus_hz=value(i, "sinus_hz", 1),
        )
        for i in range(n)
    ]


# --- sentences -----------------------------------------------------------------------------------

# Formant targets F1-F4 (Hz) for an average tract (tract_factor 1.0), roughly /a e i o u/.
_VOWELS: dict[str, tuple[float, float, float, float]] = {
    "a": (730.0, 1190.0, 2500.0, 3450.0),
    "e": (500.0, 1850.0, 2550.0, 3500.0),
    "i": (290.0, 2250.0, 2950.0, 3650.0),
    "o": (500.0, 900.0, 2450.0, 3350.0),
    "u": (320.0, 830.0, 2300.0, 3300.0),
}
_NASALS: dict[str, tuple[float, float, float, float]] = {
    "m": (280.0, 1000.0, 2250.0, 3300.0),
    "n": (280.0, 1550.0, 2600.0, 3400.0),
}
_BANDWIDTHS = (70.0, 100.0, 150.0, 220.0)
# Noise bands (centre Hz, bandwidth Hz, level) for fricatives and plosive bursts.
_FRICATIVES: dict[str, tuple[float, float, float]] = {
    "s": (5200.0, 1800.0, 0.07),
    "sh": (2800.0, 1200.0, 0.08),
    "f": (4000.0, 4000.0, 0.025),
}
_BURSTS: dict[str, tuple[float, float, float]] = {
    "p": (900.0, 900.0, 0.15),
    "t": (4200.0, 2500.0, 0.2),
    "k": (2100.0, 900.0, 0.2),
}
_ONSETS = ("s", "sh", "f", "p", "t", "k", "m", "n")
_CODAS = ("s", "m", "n", "t", "k")
_NOMINAL_S = {
    "s": 0.10,
    "sh": 0.10,
    "f": 0.09,
    "p": 0.10,
    "t": 0.095,
    "k": 0.10,
    "m": 0.07,
    "n": 0.065,
    "_": 0.07,
}


@dataclass(frozen=True)
class _Phone:
    symbol: str  # vowel letter, consonant, or "_" for a pause
    duration: float  # nominal seconds at rate 1.0
    accent: bool = False


def _kind(symbol: str) -> str:
    if symbol in _VOWELS:
        return "vowel"
    if symbol in _NASALS:
        return "nasal"
    if symbol in _FRICATIVES:
        return "fricative"
    if symbol in _BURSTS:
        return "plosive"
    return "pause"


class _Deck:
    """Draw symbols without replacement, reshuffling when empty: phonetically balanced text."""

    def __init__(self, rng: np.random.Generator, symbols: Sequence[str]) -> None:
        self._rng, self._symbols = rng, tuple(symbols)
        self._pile: list[str] = []

    def draw(self) -> str:
        if not self._pile:
            self._pile = [self._symbols[int(i)] for i in self._rng.permutation(len(self._symbols))]
        return self._pile.pop()


def _sentence(seed: int, sentence_index: int, min_duration: float) -> list[list[_Phone]]:
    """Syllables of sentence ``sentence_index``; a longer request only appends (same prefix).

    Phones are dealt from shuffled decks, so every sentence uses each vowel and consonant about
    equally often (like the phonetically balanced sentences of a read corpus) and the text moves
    the frame statistics little: what tells utterances apart is the voice.
    """
    rng = _rng(seed, _TAG_SENTENCE, sentence_index)
    vowels, onsets, codas = _Deck(rng, "aeiou"), _Deck(rng, _ONSETS), _Deck(rng, _CODAS)
    syllables: list[list[_Phone]] = []
    total, word = 0.0, 0
    while total < min_duration:
        n_syll = 2 + int(rng.integers(0, 2))
        stressed = int(rng.integers(0, n_syll))
        for s in range(n_syll):
            syl: list[_Phone] = []
            if rng.random() < 0.85:
                c = onsets.draw()
                syl.append(_Phone(c, _NOMINAL_S[c] * (0.9 + 0.2 * rng.random())))
            dur = (0.10 + 0.05 * rng.random()) * (1.35 if s == stressed else 1.0)
            syl.append(_Phone(vowels.draw(), dur, accent=s == stressed and word % 2 == 0))
            if rng.random() < 0.3:
                c = codas.draw()
                syl.append(_Phone(c, _NOMINAL_S[c] * (0.9 + 0.2 * rng.random())))
            if s == n_syll - 1 and rng.random() < 0.35:
                syl.append(_Phone("_", _NOMINAL_S["_"]))
            syllables.append(syl)
            total += sum(p.duration for p in syl)
        word += 1
    return syllables


def _timeline(
    syllables: list[list[_Phone]], rate: float, start: float, available: float
) -> list[tuple[_Phone, float, float]]:
    """Whole syllables (at least one) laid out from ``start`` while they fit in ``available``."""
    segments: list[tuple[_Phone, float, float]] = []
    t = start
    for k, syl in enumerate(syllables):
        length = sum(p.duration for p in syl) / rate
        if k > 0 and t + length > start + available:
            break
        for p in syl:
            d = p.duration / rate
            segments.append((p, t, t + d))
            t += d
    while segments and segments[-1][0].symbol == "_":
        segments.pop()
    return segments


# --- signal helpers (elementwise arithmetic only; see the rule at the top) -----------------------


def _interp(x: np.ndarray, xp: Sequence[float], fp: Sequence[float]) -> np.ndarray:
    """Piecewise-linear interpolation held constant outside ``xp`` (xp non-decreasing)."""
    xs = np.asarray(xp, dtype=np.float64)
    ys = np.asarray(fp, dtype=np.float64)
    if len(xs) == 1:
        return np.full(x.shape, ys[0])
    i = np.clip(np.searchsorted(xs, x, side="right") - 1, 0, len(xs) - 2)
    x0, x1, y0, y1 = xs[i], xs[i + 1], ys[i], ys[i + 1]
    span = x1 - x0
    w = np.where(span > 0, (x - x0) / np.where(span > 0, span, 1.0), 1.0)
    w = np.clip(w, 0.0, 1.0)
    return y0 + w * (y1 - y0)


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Zero-mean, unit-variance noise as a sum of three uniforms (no libm inside)."""
    u = rng.random((3, n))
    return (u[0] + u[1] + u[2] - 1.5) * 2.0


def _pole_coeffs(freq: float, bw: float, sample_rate: int) -> tuple[float, float]:
    r = math.exp(-math.pi * bw / sample_rate)
    return -2.0 * r * math.cos(2.0 * math.pi * freq / sample_rate), r * r


def _bandpass(x: np.ndarray, freq: float, bw: float, sample_rate: int) -> np.ndarray:
    """Two-pole resonator with zeros at DC and Nyquist: roughly unity gain at ``freq``."""
    freq = min(freq, 0.42 * sample_rate)
    bw = min(bw, 0.3 * sample_rate)
    a1, a2 = _pole_coeffs(freq, bw, sample_rate)
    g = 1.0 - math.sqrt(a2)
    return _lfilter([g, 0.0, -g], [1.0, a1, a2], x)


def _notch(x: np.ndarray, freq: float, bw: float, sample_rate: int) -> np.ndarray:
    """Fixed antiresonance at ``freq`` (zeros on the unit circle, poles just inside), DC gain 1."""
    a1, a2 = _pole_coeffs(freq, bw, sample_rate)
    c = -2.0 * math.cos(2.0 * math.pi * freq / sample_rate)
    g = (1.0 + a1 + a2) / (2.0 + c)
    return _lfilter([g, g * c, g], [1.0, a1, a2], x)


def _resonate(x: np.ndarray, coeffs: list[tuple[float, float]], block: int) -> np.ndarray:
    """Time-varying 2-pole resonator with unity DC gain; coefficients change every ``block``.

    The filter state handed to each block is rebuilt from the last two outputs, so the recursion
    is exactly y[n] = g x[n] - a1 y[n-1] - a2 y[n-2] with the coefficients of the current block.
    """
    y = np.empty_like(x)
    y1 = y2 = 0.0
    for b, (a1, a2) in enumerate(coeffs):
        lo = b * block
        hi = min(lo + block, len(x))
        if lo >= hi:
            break
        zi = [-a1 * y1 - a2 * y2, -a2 * y1]
        out, _ = _lfilter([1.0 + a1 + a2], [1.0, a1, a2], x[lo:hi], zi=zi)
        y[lo:hi] = out
        if hi - lo >= 2:
            y1, y2 = float(out[-1]), float(out[-2])
        else:
            y1, y2 = float(out[-1]), y1
    return y


def _envelope(
    times: np.ndarray, spans: list[tuple[float, float, float]], ramp: float
) -> np.ndarray:
    """Trapezoids of height ``level`` over each (start, end, level), ramps of ``ramp`` seconds."""
    env = np.zeros(times.shape)
    first = float(times[0]) if len(times) else 0.0
    step = float(times[1] - times[0]) if len(times) > 1 else 1.0
    for start, end, level in spans:
        r = min(ramp, (end - start) / 3.0)
        # Zero outside [start, end]: only touch the samples in between (plus one either side).
        lo = max(0, int((start - first) / step) - 1)
        hi = min(len(times), int((end - first) / step) + 2)
        if lo >= hi:
            continue
        env[lo:hi] = env[lo:hi] + _interp(
            times[lo:hi], [start, start + r, end - r, end], [0.0, level, level, 0.0]
        )
    return env


# --- synthesis -----------------------------------------------------------------------------------


def _speaker_number(speaker: str) -> int:
    """The speaker id as an integer (its UTF-8 bytes), for seeding without hash()."""
    return int.from_bytes(speaker.encode("utf-8"), "big")


def synthesize(
    profile: SpeakerProfile,
    sentence_index: int,
    *,
    seed: int,
    sample_rate: int = 16000,
    duration_s: float = 2.5,
) -> np.ndarray:
    """Speak sentence ``sentence_index`` in ``profile``'s voice; int16 mono, peak -3 dBFS."""
    if not isinstance(profile, SpeakerProfile):
        raise InvalidParameterError(f"profile must be a SpeakerProfile, got {type(profile)!r}")
    sentence_index = _check_index(sentence_index)
    seed = _check_seed(seed)
    sr = _check_sample_rate(sample_rate)
    duration = _check_duration(duration_s)

    n = round(duration * sr)
    times = np.arange(n, dtype=np.float64) / sr
    lead = min(0.12, 0.1 * duration)
    tail = min(0.15, 0.1 * duration)
    available = duration - lead - tail
    syllables = _sentence(seed, sentence_index, available * 1.25)
    segments = _timeline(syllables, profile.rate, lead, available)
    speech_end = segments[-1][2]
    rng = _rng(seed, _TAG_UTTERANCE, _speaker_number(profile.speaker), sentence_index)
    tf = profile.tract_factor

    # Prosody: declination over the sentence plus a bump on every accented vowel.
    accents = [(s + e) / 2.0 for p, s, e in segments if p.accent]
    span = max(speech_end - lead, 1e-3)

    def f0_at(t: float) -> float:
        x = min(max((t - lead) / span, 0.0), 1.0)
        bumps = sum(math.exp(-((t - c) / 0.09) * ((t - c) / 0.09)) for c in accents)
        return profile.f0_hz + profile.f0_range_hz * (0.6 * (0.5 - x) + 0.8 * bumps)

    # Glottal periods: jitter on the period, shimmer on the amplitude (per period, in Python).
    starts, periods, amps = [], [], []
    t = 0.0
    while t < duration:
        u = rng.random(6)
        g_jit = (float(u[0]) + float(u[1]) + float(u[2]) - 1.5) * 2.0
        g_shim = (float(u[3]) + float(u[4]) + float(u[5]) - 1.5) * 2.0
        period = (1.0 / f0_at(t)) * (1.0 + profile.jitter * max(-3.0, min(3.0, g_jit)))
        starts.append(t)
        periods.append(period)
        amps.append(1.0 + profile.shimmer * max(-3.0, min(3.0, g_shim)))
        t += period
    start_arr = np.asarray(starts)
    idx = np.searchsorted(start_arr, times, side="right") - 1
    per = np.asarray(periods)[idx]
    phase = (times - start_arr[idx]) / per
    # Rosenberg polynomial pulse: 3u^2 - 2u^3 while opening, 1 - v^2 while closing, 0 when closed.
    open_q = 0.55 + 0.25 * profile.breathiness
    t_open, t_close = 0.7 * open_q, 0.3 * open_q
    u_ = phase / t_open
    v_ = (phase - t_open) / t_close
    flow = (
        np.where(
            phase < t_open,
            u_ * u_ * (3.0 - 2.0 * u_),
            np.where(phase < t_open + t_close, 1.0 - v_ * v_, 0.0),
        )
        * np.asarray(amps)[idx]
    )
    # Radiation at the lips ~ first difference; scale so the source is O(1) at any f0 and rate.
    dflow = np.empty_like(flow)
    dflow[0] = flow[0]
    dflow[1:] = flow[1:] - flow[:-1]
    source = _lfilter([1.0 - profile.tilt], [1.0, -profile.tilt], dflow * (sr / profile.f0_hz))
    breath = _noise(rng, n) * (0.3 + flow) * (3.0 * profile.breathiness)

    # Source amplitudes: voicing (vowels, nasal murmur) and aspiration after plosive bursts.
    voiced = []
    aspiration = []
    for p, s, e in segments:
        kind = _kind(p.symbol)
        if kind == "vowel":
            voiced.append((s, e, 1.0))
        elif kind == "nasal":
            voiced.append((s, e, 0.3))
        elif kind == "plosive":
            closure_end = s + 0.6 * (e - s)
            aspiration.append((closure_end + 0.01, e + 0.015, 0.6))
    av = _envelope(times, voiced, 0.012)
    ah = _envelope(times, aspiration, 0.008)
    excitation = av * (source + breath) + ah * _noise(rng, n) * 2.0

    # Formant tracks: knots at 30 % and 70 % of each vowel, the middle of each nasal.
    # Nasals also get a wider first bandwidth (``nasality`` 1.0).
    knots: list[float] = []
    targets: list[tuple[float, float, float, float]] = []
    nasality: list[float] = []
    for p, s, e in segments:
        kind = _kind(p.symbol)
        if kind == "vowel":
            knots += [s + 0.3 * (e - s), s + 0.7 * (e - s)]
            targets += [_VOWELS[p.symbol]] * 2
            nasality += [0.0, 0.0]
        elif kind == "nasal":
            knots.append((s + e) / 2.0)
            targets.append(_NASALS[p.symbol])
            nasality.append(1.0)
    if not knots:
        knots, targets, nasality = [duration / 2.0], [_VOWELS["a"]], [0.0]
    block = max(2, round(_BLOCK_S * sr))
    n_blocks = -(-n // block)
    centres = (np.arange(n_blocks, dtype=np.float64) * block + block / 2.0) / sr
    nasal_b1 = _interp(centres, knots, nasality)
    out = excitation
    for j in range(4):
        scale = tf * profile.formant_scales[j]
        track = _interp(centres, knots, [tg[j] * scale for tg in targets])
        if float(np.max(track)) > 0.45 * sr:
            continue  # formant above what this sample rate can carry: leave it out
        bws = [
            _BANDWIDTHS[j] + (60.0 * float(nb) if j == 0 else 0.0) + 40.0 * profile.breathiness
            for nb in nasal_b1
        ]
        coeffs = [_pole_coeffs(float(f), b, sr) for f, b in zip(track, bws, strict=True)]
        out = _resonate(out, coeffs, block)
    if 0.0 < profile.sinus_hz < 0.45 * sr:
        out = _notch(out, profile.sinus_hz, 600.0, sr)
    ref = float(np.max(np.abs(out))) or 1.0

    # Fricatives and plosive bursts: band-passed noise added in parallel.
    for p, s, e in segments:
        kind = _kind(p.symbol)
        if kind == "fricative":
            freq, bw, level = _FRICATIVES[p.symbol]
            spans = [(s, e, level * ref)]
            ramp = 0.02
        elif kind == "plosive":
            freq, bw, level = _BURSTS[p.symbol]
            burst_start = s + 0.6 * (e - s)
            spans = [(burst_start, burst_start + 0.012, level * ref)]
            ramp = 0.002
        else:
            continue
        lo, hi = max(0, int(s * sr)), min(n, int(e * sr) + 1)
        if lo >= hi:
            continue
        band = _bandpass(_noise(rng, hi - lo), freq * tf, bw, sr)
        out[lo:hi] = out[lo:hi] + band * _envelope(times[lo:hi], spans, ramp)

    fade = min(round(_FADE_S * sr), n // 2)
    if fade > 0:
        ramp_in = (np.arange(fade, dtype=np.float64) + 0.5) / fade
        out[:fade] = out[:fade] * ramp_in
        out[n - fade :] = out[n - fade :] * ramp_in[::-1]
    peak = float(np.max(np.abs(out)))
    if peak == 0.0:
        return np.zeros(n, dtype=np.int16)
    scaled = np.round(out * (_PEAK / peak))
    return np.clip(scaled, -32768, 32767).astype(np.int16)


# --- files ---------------------------------------------------------------------------------------


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """A 16-bit PCM mono WAV file as bytes (the stdlib writer: deterministic)."""
    sr = _check_sample_rate(sample_rate)
    pcm = np.asarray(samples)
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise InvalidParameterError("samples must be a 1-D int16 array")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(sr)
        wf.writeframes(pcm.astype("<i2").tobytes())
    return buf.getvalue()


def write_wav(path: str | os.PathLike[str], samples: np.ndarray, sample_rate: int) -> str:
    """Write a 16-bit mono WAV and return its SHA-256 (hex)."""
    data = wav_bytes(samples, sample_rate)
    Path(path).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _sentence_duration(seed: int, sentence_index: int) -> float:
    rng = _rng(seed, _TAG_DURATION, sentence_index)
    return UTTERANCE_DURATIONS_S[int(rng.integers(0, len(UTTERANCE_DURATIONS_S)))]


def _consent(rng: np.random.Generator) -> dict[str, object]:
    span = (CONSENT_LAST - CONSENT_FIRST).days
    date = CONSENT_FIRST + dt.timedelta(days=int(rng.integers(0, span + 1)))
    term = CONSENT_TERMS_DAYS[int(rng.integers(0, len(CONSENT_TERMS_DAYS)))]
    return {
        "purpose": CONSENT_PURPOSE,
        "consent_date": date.isoformat(),
        "term_days": term,
        "retention_until": (date + dt.timedelta(days=term)).isoformat(),
        "withdrawn": None,
    }


def generate_corpus(
    out_dir: str | os.PathLike[str],
    *,
    n_speakers: int = 10,
    n_utterances: int = 4,
    seed: int = DEFAULT_SEED,
    sample_rate: int = 16000,
) -> Manifest:
    """Write ``<out_dir>/<speaker>/<speaker>_u<k>.wav`` and ``manifest.json``; same bytes every run.

    Utterance ``k`` of every speaker reads sentence ``k - 1``. Exactly one utterance is on legal
    hold and (when there are enough) two others must be archived. Existing files are overwritten;
    files the corpus does not name are left alone.
    """
    n_speakers = _check_count(n_speakers, "n_speakers")
    n_utterances = _check_count(n_utterances, "n_utterances")
    seed = _check_seed(seed)
    sr = _check_sample_rate(sample_rate)
    root = Path(out_dir)
    speakers = make_speakers(n_speakers, seed)
    consent_rng = _rng(seed, _TAG_CONSENT)

    total = n_speakers * n_utterances
    order = [int(i) for i in _rng(seed, _TAG_FLAGS).permutation(total)]
    legal_hold = {order[0]}
    archive = set(order[1:3])

    speaker_rows, utterance_rows = [], []
    for i, profile in enumerate(speakers):
        contractor = f"c{i % N_CONTRACTORS + 1:02d}"
        speaker_rows.append(
            {
                "speaker": profile.speaker,
                "contractor": contractor,
                "voice": profile.voice(),
                "consent": _consent(consent_rng),
            }
        )
        (root / profile.speaker).mkdir(parents=True, exist_ok=True)
        for k in range(1, n_utterances + 1):
            sentence = k - 1
            samples = synthesize(
                profile,
                sentence,
                seed=seed,
                sample_rate=sr,
                duration_s=_sentence_duration(seed, sentence),
            )
            sample_id = f"{profile.speaker}_u{k}"
            rel = f"{profile.speaker}/{sample_id}.wav"
            digest = write_wav(root / profile.speaker / f"{sample_id}.wav", samples, sr)
            flat = i * n_utterances + (k - 1)
            utterance_rows.append(
                {
                    "sample_id": sample_id,
                    "speaker": profile.speaker,
                    "contractor": contractor,
                    "path": rel,
                    "sentence_index": sentence,
                    "duration_s": round(len(samples) / sr, 4),
                    "sample_rate": sr,
                    "sha256": digest,
                    "legal_hold": flat in legal_hold,
                    "archive_required": flat in archive,
                }
            )
    data = {
        "schema_version": SCHEMA_VERSION,
        "seed": seed,
        "sample_rate": sr,
        "generator": GENERATOR,
        "speakers": speaker_rows,
        "utterances": utterance_rows,
    }
    text = json.dumps(data, sort_keys=True, indent=2) + "\n"
    (root / MANIFEST_NAME).write_bytes(text.encode("utf-8"))
    return manifest_from_dict(data, root)


# --- command line --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``voices --out DIR [--speakers N] [--utterances N] [--seed S] [--sample-rate HZ]``."""
    parser = argparse.ArgumentParser(
        prog="securepipe voices",
        description="Write the deterministic synthetic voice set (WAVs + manifest.json).",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: $SECUREPIPE_DATA or <project>/data-synthetic)",
    )
    parser.add_argument("--speakers", type=int, default=10, help="number of speakers (10)")
    parser.add_argument("--utterances", type=int, default=4, help="utterances per speaker (4)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"seed ({DEFAULT_SEED})")
    parser.add_argument("--sample-rate", type=int, default=16000, help="sample rate in Hz (16000)")
    args = parser.parse_args(argv)
    out = args.out if args.out is not None else default_data_dir()
    began = time.perf_counter()
    try:
        manifest = generate_corpus(
            out,
            n_speakers=args.speakers,
            n_utterances=args.utterances,
            seed=args.seed,
            sample_rate=args.sample_rate,
        )
    except SecurePipeError as exc:
        print(f"securepipe voices: {exc}", file=sys.stderr)
        return 2
    size = sum(manifest.path_of(u).stat().st_size for u in manifest.utterances)
    print(
        f"wrote {len(manifest.utterances)} utterances of {len(manifest.speakers)} speakers "
        f"to {out} ({size / 1e6:.1f} MB) in {time.perf_counter() - began:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
