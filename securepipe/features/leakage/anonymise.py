"""Signal-processing anonymisation: the McAdams coefficient (VoicePrivacy Challenge baseline B2),
fixed or drawn per utterance.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from securepipe.errors import InvalidParameterError
from securepipe.features.leakage.common import (
    MCADAMS_FIXED,
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
    from scipy.signal import get_window, lfilter

    sr = check_sr(sr)
    x = check_signal(y)
    seed_list = _seed_list(seed)
    if isinstance(coefficient, tuple | list):
        alpha = draw_coefficient(*check_range(coefficient), seed_list)
    else:
        alpha = check_coefficient(coefficient)
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
            f"need lp_order < window <= len(y) and 1 <= hop <= window, got {win_ms} / {hop_ms} ms"
        )
    peak = float(np.max(np.abs(x)))
    if peak == 0.0:
        return np.zeros(x.size, dtype=np.float32)
    window = np.sqrt(get_window("hann", win, fftbins=True))  # analysis x synthesis = Hann: COLA
    n_frames = 1 + -(-(x.size - win) // hop)
    padded = np.zeros((n_frames - 1) * hop + win)
    padded[: x.size] = x
    starts = np.arange(n_frames) * hop
    frames = padded[starts[:, None] + np.arange(win)[None, :]] * window
    coeffs, active = _lpc_frames(frames, order)

    # Poles: eigenvalues of each frame's companion matrix, all frames at once.
    companion = np.zeros((n_frames, order, order))
    companion[:, 0, :] = -coeffs[:, 1:] / coeffs[:, :1]
    companion[:, np.arange(1, order), np.arange(order - 1)] = 1.0
    poles = np.linalg.eigvals(companion)
    angle = np.angle(poles)
    moved = np.where(poles.imag != 0.0, np.sign(angle) * np.abs(angle) ** alpha, angle)
    new_poles = np.abs(poles) * np.exp(1j * np.clip(moved, -np.pi, np.pi))
    # Back to polynomials: multiply out prod(1 - p z^-1), all frames at once.
    poly = np.zeros((n_frames, order + 1), dtype=complex)
    poly[:, 0] = 1.0
    for k in range(order):
        poly[:, 1 : k + 2] = poly[:, 1 : k + 2] - new_poles[:, k : k + 1] * poly[:, : k + 1]
    new_coeffs = poly.real

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
