"""Signal-processing anonymisation that needs no trained model: the McAdams coefficient
(VoicePrivacy Challenge baseline B2), fixed or drawn per utterance, and LPC pitch and formant
shifting with a random pseudo-voice per speaker.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from securepipe.errors import InvalidParameterError
from securepipe.features.leakage.common import (
    FORMANT_SHIFT_RANGE,
    MCADAMS_FIXED,
    PITCH_SHIFT_SEMITONES,
    check_coefficient,
    check_range,
    check_signal,
    check_sr,
)
from securepipe.ids import check_int


def draw_coefficient(low: float, high: float, seed: int | Sequence[int]) -> float:
    """One McAdams coefficient drawn uniformly from ``[low, high)`` by a seeded PCG64 generator."""
    lo, hi = check_range((low, high))
    return float(np.random.default_rng(_seed_list(seed)).uniform(lo, hi))


def _seed_list(seed: Any) -> list[int]:
    """A seed as a non-empty list of non-negative ints (PCG64 seed-sequence entropy)."""
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        values = [seed]
    elif isinstance(seed, list | tuple) and seed:
        values = list(seed)
    else:
        raise InvalidParameterError(f"seed must be an int or a list of ints, got {seed!r}")
    return [check_int(v, "seed", 0, 2**63 - 1) for v in values]


def utterance_seed(seed: int, sample_id: str) -> list[int]:
    return [seed, *sample_id.encode("utf-8")]


def _lpc_frames(frames: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """LPC polynomials (Burg, librosa.lpc) of every frame; frames it cannot model are passed on."""
    import librosa

    n = frames.shape[0]
    coeffs = np.zeros((n, order + 1))
    coeffs[:, 0] = 1.0
    energy = np.sum(frames * frames, axis=1)
    active = energy > 1e-10 * max(float(energy.max()), 1e-30)
    if active.any():
        try:
            coeffs[active] = librosa.lpc(frames[active], order=order, axis=-1)
        except (FloatingPointError, librosa.util.exceptions.ParameterError):
            for i in np.flatnonzero(active):
                try:
                    coeffs[i] = librosa.lpc(frames[i], order=order)
                except (FloatingPointError, librosa.util.exceptions.ParameterError):
                    active[i] = False
    return coeffs, active


def _move_poles(
    coeffs: np.ndarray,
    move: Callable[[np.ndarray], np.ndarray],
    lowest: float,
    highest: float,
) -> np.ndarray:
    """LPC polynomials whose complex poles' angles are ``move(angle)``, radii kept (all frames)."""
    n_frames, order = coeffs.shape[0], coeffs.shape[1] - 1
    # Poles: eigenvalues of each frame's companion matrix, all frames at once.
    companion = np.zeros((n_frames, order, order))
    companion[:, 0, :] = -coeffs[:, 1:] / coeffs[:, :1]
    companion[:, np.arange(1, order), np.arange(order - 1)] = 1.0
    poles = np.linalg.eigvals(companion)
    angle = np.angle(poles)
    moved = np.where(poles.imag != 0.0, move(angle), angle)
    new_poles = np.abs(poles) * np.exp(1j * np.clip(moved, lowest, highest))
    # Back to polynomials: multiply out prod(1 - p z^-1), all frames at once.
    poly = np.zeros((n_frames, order + 1), dtype=complex)
    poly[:, 0] = 1.0
    for k in range(order):
        poly[:, 1 : k + 2] = poly[:, 1 : k + 2] - new_poles[:, k : k + 1] * poly[:, : k + 1]
    return np.asarray(poly.real)


def mcadams(
    y: np.ndarray,
    sr: int,
    coefficient: float | tuple[float, float] = MCADAMS_FIXED,
    *,
    lp_order: int = 20,
    win_ms: float = 20.0,
    hop_ms: float = 10.0,
    seed: int | Sequence[int] = 0,
) -> np.ndarray:
    """McAdams-coefficient anonymisation (VoicePrivacy baseline B2), float32, same peak as ``y``.

    Frame by frame (``win_ms`` square-root-Hann windows every ``hop_ms``): fit an all-pole LPC
    model of order ``lp_order`` (``librosa.lpc``), move every complex pole's angle ``phi``
    (radians, 0..pi) to ``phi ** alpha`` keeping its radius, so formants shift (``alpha < 1``
    raises low formants); filter the frame through the original inverse filter to get the
    residual and resynthesise it through the modified all-pole filter; overlap-add. Real poles
    stay; frames too quiet to model pass through unchanged.

    ``coefficient`` is ``alpha`` itself, or a ``(low, high)`` range to draw it from uniformly
    with ``seed`` (see :func:`draw_coefficient`).
    """
    from scipy.signal import lfilter

    sr = check_sr(sr)
    x = check_signal(y)
    seed_list = _seed_list(seed)
    if isinstance(coefficient, tuple | list):
        alpha = draw_coefficient(*check_range(coefficient), seed_list)
    else:
        alpha = check_coefficient(coefficient)
    framing = _Framing.of(x, sr, lp_order, win_ms, hop_ms)
    peak = float(np.max(np.abs(x)))
    if peak == 0.0:
        return np.zeros(x.size, dtype=np.float32)
    frames, starts, win, window = framing.frames, framing.starts, framing.win, framing.window
    padded = framing.padded
    coeffs, active = _lpc_frames(frames, framing.order)

    new_coeffs = _move_poles(
        coeffs, lambda angle: np.sign(angle) * np.abs(angle) ** alpha, -np.pi, np.pi
    )

    out = np.zeros_like(padded)
    for i, start in enumerate(starts):
        frame = frames[i]
        if active[i]:
            residual = lfilter(coeffs[i], [1.0], frame)
            frame = lfilter([1.0], new_coeffs[i], residual)
        out[start : start + win] += frame * window
    out = out[: x.size]
    out_peak = float(np.max(np.abs(out)))
    if out_peak == 0.0 or not math.isfinite(out_peak):
        raise InvalidParameterError("McAdams resynthesis failed (silent or unstable output)")
    return (out * (peak / out_peak)).astype(np.float32)


@dataclass(frozen=True)
class _Framing:
    """Square-root-Hann frames of a signal (analysis x synthesis window = Hann: COLA)."""

    order: int
    win: int
    window: np.ndarray
    starts: np.ndarray
    padded: np.ndarray
    frames: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray, sr: int, lp_order: int, win_ms: float, hop_ms: float) -> _Framing:
        from scipy.signal import get_window

        order = check_int(lp_order, "lp_order", 2, 64)
        for name, value in (("win_ms", win_ms), ("hop_ms", hop_ms)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise InvalidParameterError(f"{name} must be a number, got {value!r}")
            if not 0.0 < float(value) <= 1000.0:
                raise InvalidParameterError(f"{name} must be in (0, 1000] ms, got {value!r}")
        win = round(float(win_ms) * sr / 1000.0)
        hop = round(float(hop_ms) * sr / 1000.0)
        if not (order < win <= x.size and 1 <= hop <= win):
            raise InvalidParameterError(
                f"need lp_order < window <= len(y) and 1 <= hop <= window, "
                f"got {win_ms} / {hop_ms} ms"
            )
        window = np.sqrt(get_window("hann", win, fftbins=True))
        n_frames = 1 + -(-(x.size - win) // hop)
        padded = np.zeros((n_frames - 1) * hop + win)
        padded[: x.size] = x
        starts = np.arange(n_frames) * hop
        frames = padded[starts[:, None] + np.arange(win)[None, :]] * window
        return cls(order, win, window, starts, padded, frames)

    def reframe(self, signal: np.ndarray) -> np.ndarray:
        """Frames of another signal of the same length, on the same grid and window."""
        padded = np.zeros_like(self.padded)
        padded[: signal.size] = signal[: padded.size]
        return padded[self.starts[:, None] + np.arange(self.win)[None, :]] * self.window


def draw_voice_shift(
    seed: int,
    speaker: str,
    semitone_range: tuple[float, float] = PITCH_SHIFT_SEMITONES,
    formant_range: tuple[float, float] = FORMANT_SHIFT_RANGE,
) -> tuple[float, float]:
    """One speaker's pseudonymous ``(semitones, formant_factor)``, drawn from ``seed`` and the id.

    Each magnitude is uniform in its range, each direction (up or down) a fair coin, all from a
    PCG64 generator seeded with ``[seed, *utf-8 bytes of speaker]``: the same speaker always gets
    the same pseudo-voice for one seed, and a different seed gives an unrelated one.
    """
    if not isinstance(speaker, str) or not speaker:
        raise InvalidParameterError(f"speaker must be a non-empty string, got {speaker!r}")
    lo_s, hi_s = _positive_range(semitone_range, "semitone_range", 24.0)
    lo_f, hi_f = _positive_range(formant_range, "formant_range", 0.5)
    rng = np.random.default_rng(_seed_list([seed, *speaker.encode("utf-8")]))
    u = rng.random(4)
    semitones = (lo_s + (hi_s - lo_s) * float(u[0])) * (1.0 if u[1] < 0.5 else -1.0)
    factor = 1.0 + (lo_f + (hi_f - lo_f) * float(u[2])) * (1.0 if u[3] < 0.5 else -1.0)
    return semitones, factor


def _positive_range(value: Any, name: str, top: float) -> tuple[float, float]:
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise InvalidParameterError(f"{name} must be (low, high), got {value!r}")
    lo, hi = value
    for v in (lo, hi):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0.0 <= float(v) <= top:
            raise InvalidParameterError(f"{name} values must be in [0, {top}], got {value!r}")
    if not float(lo) < float(hi):
        raise InvalidParameterError(f"{name} needs low < high, got {value!r}")
    return float(lo), float(hi)


def pitch_formant_shift(
    y: np.ndarray,
    sr: int,
    semitones: float,
    formant_factor: float,
    *,
    lp_order: int = 20,
    win_ms: float = 20.0,
    hop_ms: float = 10.0,
) -> np.ndarray:
    """Move the pitch by ``semitones`` and the formants by ``formant_factor``, independently.

    Source-filter separation by LPC, framed as in :func:`mcadams`: each frame's residual (the
    source) is overlap-added into one signal and pitch-shifted with ``librosa.effects.pitch_shift``
    (phase vocoder and resampling; the residual's flat envelope means only the harmonics move);
    each frame's complex LPC poles have their angles multiplied by ``formant_factor`` (radii
    kept, clipped below Nyquist) and the shifted residual is filtered through them. Float32, the
    same peak as ``y``. Needs no trained model.
    """
    import librosa
    from scipy.signal import lfilter

    sr = check_sr(sr)
    x = check_signal(y)
    for name, value, lo, hi in (("semitones", semitones, -24.0, 24.0),
                                ("formant_factor", formant_factor, 0.5, 1.5)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InvalidParameterError(f"{name} must be a number, got {value!r}")
        if not lo <= float(value) <= hi:  # also refuses NaN
            raise InvalidParameterError(f"{name} must be in [{lo}, {hi}], got {value!r}")
    framing = _Framing.of(x, sr, lp_order, win_ms, hop_ms)
    peak = float(np.max(np.abs(x)))
    if peak == 0.0:
        return np.zeros(x.size, dtype=np.float32)
    coeffs, active = _lpc_frames(framing.frames, framing.order)
    factor = float(formant_factor)
    new_coeffs = _move_poles(coeffs, lambda angle: angle * factor, -0.97 * np.pi, 0.97 * np.pi)
    residual = np.zeros_like(framing.padded)
    for i, start in enumerate(framing.starts):
        frame = framing.frames[i]
        res = lfilter(coeffs[i], [1.0], frame) if active[i] else frame
        residual[start : start + framing.win] += res * framing.window
    shifted = librosa.effects.pitch_shift(
        residual[: x.size].astype(np.float32), sr=sr, n_steps=float(semitones)
    )
    src = framing.reframe(np.asarray(shifted, dtype=np.float64))
    out = np.zeros_like(framing.padded)
    for i, start in enumerate(framing.starts):
        frame = lfilter([1.0], new_coeffs[i], src[i]) if active[i] else src[i]
        out[start : start + framing.win] += frame * framing.window
    out = out[: x.size]
    out_peak = float(np.max(np.abs(out)))
    if out_peak == 0.0 or not math.isfinite(out_peak):
        raise InvalidParameterError("pitch/formant resynthesis failed (silent or unstable output)")
    return (out * (peak / out_peak)).astype(np.float32)
