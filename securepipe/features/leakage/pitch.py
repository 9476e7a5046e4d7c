"""Pitch (f0) tracking and comparison: how much of a speaker's pitch survives in stored features.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from securepipe.data.dataset import Manifest
from securepipe.errors import InvalidParameterError
from securepipe.features.leakage.common import (
    F0_FMAX,
    F0_FMIN,
    F0_FRAME,
    GROSS_ERROR,
    SILENCE_DB,
    VOICING_THRESHOLD,
    check_signal,
    check_sr,
)


def f0_track(y: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """``(f0_hz, voiced)`` per 10 ms frame: YIN pitch plus a voicing decision.

    ``librosa.yin`` (60-400 Hz, 64 ms frames) gives a pitch for every frame, voiced or not. A
    frame counts as voiced when it is within 30 dB of the loudest frame and its normalised
    autocorrelation at the YIN period is above 0.45 (Praat's default voicing threshold).
    """
    import librosa

    sr = check_sr(sr)
    x = check_signal(y)
    hop = sr // 100
    f0 = librosa.yin(
        x, fmin=F0_FMIN, fmax=F0_FMAX, sr=sr, frame_length=F0_FRAME, hop_length=hop, center=True
    )
    padded = np.pad(x, (F0_FRAME // 2, F0_FRAME // 2))
    frames = librosa.util.frame(padded, frame_length=F0_FRAME, hop_length=hop)
    n = min(frames.shape[1], f0.shape[0])
    f0, frames = f0[:n], frames[:, :n]
    lag = np.clip(np.round(sr / f0).astype(int), 1, math.ceil(sr / F0_FMIN))
    width = F0_FRAME - math.ceil(sr / F0_FMIN) - 1
    idx = np.arange(width)
    a = frames[idx, :]
    b = np.take_along_axis(frames, idx[:, None] + lag[None, :], axis=0)
    ea, eb = (a * a).sum(axis=0), (b * b).sum(axis=0)
    periodicity = (a * b).sum(axis=0) / np.sqrt(ea * eb + 1e-20)
    loudest = float(ea.max())
    level_db = 10.0 * np.log10(np.maximum(ea, 1e-20) / max(loudest, 1e-20))
    voiced = (periodicity > VOICING_THRESHOLD) & (level_db > SILENCE_DB) & (loudest > 0)
    return f0.astype(np.float64), voiced


@dataclass(frozen=True)
class F0Comparison:
    """How well a reconstruction keeps the original's pitch (frames voiced in both)."""

    correlation: float  # Pearson r of f0 in Hz; 0.0 when fewer than 3 shared voiced frames
    mae_hz: float  # mean absolute f0 difference; nan when there are no shared voiced frames
    gross_error_rate: float  # fraction of shared frames more than 20 % off
    voiced_overlap: float  # shared voiced frames / frames voiced in the original
    n_frames: int  # shared voiced frames


def compare_f0(pairs: Iterable[tuple[np.ndarray, np.ndarray]], sr: int) -> F0Comparison:
    """Pool :func:`f0_track` over ``(original, reconstructed)`` pairs and compare the pitches.

    Only frames voiced in both signals count (the usual rule for gross pitch error), so
    ``voiced_overlap`` says how much of the original's voicing the reconstruction kept at all.
    Pooled over utterances, the correlation reflects both each speaker's pitch level (who it is)
    and the intonation contour (how it was said).
    """
    sr = check_sr(sr)
    tracks = [(f0_track(a, sr), f0_track(b, sr)) for a, b in pairs]
    return compare_tracks(tracks)


Track = tuple[np.ndarray, np.ndarray]


def compare_tracks(tracks: Sequence[tuple[Track, Track]]) -> F0Comparison:
    originals, rebuilt, n_voiced = [], [], 0
    for (f_a, v_a), (f_b, v_b) in tracks:
        n = min(len(f_a), len(f_b))
        both = v_a[:n] & v_b[:n]
        originals.append(f_a[:n][both])
        rebuilt.append(f_b[:n][both])
        n_voiced += int(v_a.sum())
    if not originals:
        raise InvalidParameterError("need at least one (original, reconstructed) pair")
    a, b = np.concatenate(originals), np.concatenate(rebuilt)
    if a.size == 0:
        return F0Comparison(0.0, math.nan, 1.0, 0.0, 0)
    corr = 0.0
    if a.size >= 3 and a.std() > 0 and b.std() > 0:
        corr = float(np.corrcoef(a, b)[0, 1])
    return F0Comparison(
        correlation=corr,
        mae_hz=float(np.mean(np.abs(a - b))),
        gross_error_rate=float(np.mean(np.abs(b / a - 1.0) > GROSS_ERROR)),
        voiced_overlap=a.size / max(n_voiced, 1),
        n_frames=int(a.size),
    )


def f0_correlation(original: np.ndarray, reconstructed: np.ndarray, sr: int) -> float:
    """Pearson correlation of the two pitch tracks over frames voiced in both (see compare_f0)."""
    return compare_f0([(original, reconstructed)], sr).correlation


def _median_f0(track: Track) -> float:
    f0, voiced = track
    return float(np.median(f0[voiced])) if voiced.any() else math.nan


def manifest_f0(manifest: Manifest) -> list[float]:
    out = []
    for utt in manifest.utterances:
        value = manifest.speaker(utt.speaker).voice.get("f0_hz")
        is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
        out.append(float(value) if is_number and value is not None else math.nan)
    return out


def speaker_f0_error(tracks: Sequence[Track], true_f0: Sequence[float]) -> Any:
    """Mean |median voiced f0 - the speaker's f0 in the manifest|, Hz (None if unmeasurable)."""
    errors = [abs(_median_f0(t) - f) for t, f in zip(tracks, true_f0, strict=True)]
    errors = [e for e in errors if math.isfinite(e)]
    return round(float(np.mean(errors)), 2) if errors else None


def median_f0_correlation(originals: Sequence[Track], rebuilt: Sequence[Track]) -> float | None:
    """Pearson r of per-utterance median voiced f0, original against rebuilt (speaker-level pitch).

    None when fewer than 3 utterances have voiced frames in both.
    """
    pairs = [(_median_f0(a), _median_f0(b)) for a, b in zip(originals, rebuilt, strict=True)]
    kept = np.array([p for p in pairs if math.isfinite(p[0]) and math.isfinite(p[1])])
    if kept.shape[0] < 3 or kept[:, 0].std() == 0 or kept[:, 1].std() == 0:
        return None
    return round(float(np.corrcoef(kept[:, 0], kept[:, 1])[0, 1]), 3)
