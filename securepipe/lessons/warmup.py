"""Prepare librosa's numba cache once, at set-up, so no lesson pays the ~20 s first compile.

The cache lives in the project (``.cache/numba``; :mod:`securepipe` points ``NUMBA_CACHE_DIR``
there when it runs from a checkout), so the cost is paid once per checkout.
"""

from __future__ import annotations

import os
import time


def warm_numba_cache() -> float:
    """Call each librosa routine the kit uses on a short signal; return the seconds it took."""
    import numpy as np

    start = time.perf_counter()
    import librosa

    sr = 16_000
    t = np.arange(sr, dtype=np.float32) / sr
    y = (0.3 * np.sin(2 * np.pi * 140.0 * t)).astype(np.float32)
    mel = librosa.feature.melspectrogram(y=y, sr=sr)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
    librosa.power_to_db(mel)
    librosa.yin(y, fmin=60, fmax=400, sr=sr)
    librosa.pyin(y[: sr // 2], fmin=60, fmax=400, sr=sr)
    stft = librosa.feature.inverse.mel_to_stft(mel, sr=sr)
    librosa.griffinlim(stft, n_iter=2, random_state=0)
    librosa.feature.inverse.mfcc_to_mel(mfcc)
    librosa.resample(y, orig_sr=sr, target_sr=8_000)
    return time.perf_counter() - start


def main() -> int:
    seconds = warm_numba_cache()
    where = os.environ.get("NUMBA_CACHE_DIR", "numba's default location")
    print(f"numba cache ready in {where} ({seconds:.1f} s)")
    return 0
