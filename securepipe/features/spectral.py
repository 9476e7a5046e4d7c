"""Mel spectrograms, decibels and MFCCs in plain NumPy, as librosa computes them.

The kit's feature spec (``fs1``, :mod:`securepipe.features.extract`) is defined by librosa's
choices: a periodic Hann window zero-padded to the FFT size, centred frames with zero padding,
the Slaney mel scale with area-normalised triangular filters, ``10 * log10`` with a floor and a
``top_db`` cut, and an orthonormal DCT-II for MFCCs. This module computes exactly those, with
NumPy alone, so that extracting features does not import librosa (numba, scipy.signal: about two
seconds the first time in every process, paid by every lesson and every ingest worker that
starts).

It is a re-implementation of documented signal processing, not of anything secret. The tests
hold it to librosa itself (``tests/features/test_spectral.py``: random signals of every length,
the kit's voices and the held-out family, every spec), within float32 rounding.
References: librosa's ``stft``, ``filters.mel``, ``power_to_db`` and ``feature.mfcc``
(https://librosa.org/doc/latest/generated/librosa.feature.melspectrogram.html); Slaney's
Auditory Toolbox for the mel scale.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["dct_matrix", "mel_filterbank", "melspectrogram", "mfcc_from_db", "power_to_db"]

# Slaney's mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above.
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def _hz_to_mel(hz: float) -> float:
    if hz >= _MIN_LOG_HZ:
        return float(_MIN_LOG_MEL + np.log(hz / _MIN_LOG_HZ) / _LOGSTEP)
    return hz / _F_SP


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    hz = _F_SP * mels
    log_t = mels >= _MIN_LOG_MEL
    hz[log_t] = _MIN_LOG_HZ * np.exp(_LOGSTEP * (mels[log_t] - _MIN_LOG_MEL))
    return hz


@lru_cache(maxsize=16)
def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """The ``(n_mels, 1 + n_fft // 2)`` float32 Slaney mel filterbank, area-normalised (as
    ``librosa.filters.mel(..., htk=False, norm="slaney")``). Read-only: it is cached."""
    freqs = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, freqs)
    weights = np.zeros((n_mels, freqs.size), dtype=np.float32)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    weights.flags.writeable = False
    return weights


@lru_cache(maxsize=16)
def _window(n_fft: int, win_length: int) -> np.ndarray:
    n = np.arange(win_length)
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / win_length)  # periodic ("fftbins") Hann
    window = np.zeros(n_fft)
    start = (n_fft - win_length) // 2
    window[start:start + win_length] = hann
    window.flags.writeable = False
    return window


def melspectrogram(y: np.ndarray, *, sr: int, n_fft: int, hop_length: int, win_length: int,
                   n_mels: int, fmin: float, fmax: float, power: float = 2.0) -> np.ndarray:
    """The ``(n_mels, 1 + len(y) // hop_length)`` float32 mel spectrogram of float32 mono ``y``:
    centred frames (``n_fft // 2`` zeros each side), a periodic Hann window of ``win_length``
    centred in ``n_fft``, ``|STFT| ** power`` through :func:`mel_filterbank`.

    The caller validates ``y`` (1-D, finite, at least ``n_fft`` samples)."""
    x = np.asarray(y, dtype=np.float32)
    pad = n_fft // 2
    padded = np.pad(x, pad, mode="constant")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length]
    # float32 frames times the float64 window, transformed in double precision and kept as
    # complex64, as librosa's stft does for float32 input.
    spectrum = np.fft.rfft(frames * _window(n_fft, win_length), axis=-1).astype(np.complex64)
    magnitude = np.abs(spectrum)
    spec = magnitude if power == 1.0 else magnitude**power
    basis = mel_filterbank(sr, n_fft, n_mels, float(fmin), float(fmax))
    return np.asarray(basis @ spec.T, dtype=np.float32)


def power_to_db(power: np.ndarray, *, ref: float | None = 1.0, amin: float = 1e-10,
                top_db: float | None = 80.0) -> np.ndarray:
    """``10 * log10(max(amin, power) / max(amin, ref))``, floored ``top_db`` below its maximum;
    ``ref=None`` means relative to the maximum power (librosa's ``ref=np.max``)."""
    s = np.asarray(power)
    ref_value = float(np.max(s)) if ref is None else abs(ref)
    log_spec = 10.0 * np.log10(np.maximum(amin, s))
    log_spec -= 10.0 * np.log10(np.maximum(amin, ref_value))
    if top_db is not None:
        log_spec = np.maximum(log_spec, log_spec.max() - top_db)
    return log_spec


@lru_cache(maxsize=16)
def dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    """The first ``n_out`` rows of the orthonormal DCT-II of length ``n_in`` (float64)."""
    k = np.arange(n_out)[:, np.newaxis]
    n = np.arange(n_in)[np.newaxis, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    basis[0] /= np.sqrt(2.0)
    basis.flags.writeable = False
    return basis


def mfcc_from_db(log_mel: np.ndarray, n_mfcc: int) -> np.ndarray:
    """MFCCs of a dB mel matrix ``(n_mels, n_frames)``: orthonormal DCT-II over the bands, the
    first ``n_mfcc`` kept, no liftering (``librosa.feature.mfcc(S=..., norm="ortho")``)."""
    s = np.asarray(log_mel)
    return dct_matrix(n_mfcc, s.shape[0]) @ s
