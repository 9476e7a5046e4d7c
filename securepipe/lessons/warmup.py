"""Prepare librosa's numba cache once, at set-up, so no lesson pays the ~20 s first compile, and
compute lesson 04's leakage tables into their cache, so the lesson shows them in seconds.

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


#: The utterance lesson 04 inverts from its stored features and plays back.
LESSON04_RECONSTRUCTION = "spk02_u1"


def warm_leakage_tables() -> float:
    """Compute lesson 04's leakage and anonymisation tables for both voice families, and its
    Griffin-Lim reconstruction, into the content-addressed cache (``.cache/leakage``), so the
    lesson shows them in seconds; return the seconds it took (a few when cached already)."""
    from securepipe.data import load_manifest
    from securepipe.data.heldout import heldout_dir
    from securepipe.features import MEL_SPEC
    from securepipe.features.leakage import (
        DEFAULT_CACHE,
        anonymisation_table,
        leakage_table,
        reconstruction_pair,
    )

    start = time.perf_counter()
    for manifest in (load_manifest(), load_manifest(heldout_dir())):
        leakage_table(manifest, cache=DEFAULT_CACHE)
        anonymisation_table(manifest, cache=DEFAULT_CACHE)
    reconstruction_pair(load_manifest(), LESSON04_RECONSTRUCTION, MEL_SPEC, cache=DEFAULT_CACHE)
    return time.perf_counter() - start


def main() -> int:
    seconds = warm_numba_cache()
    where = os.environ.get("NUMBA_CACHE_DIR", "numba's default location")
    print(f"numba cache ready in {where} ({seconds:.1f} s)")
    seconds = warm_leakage_tables()
    print(f"leakage tables cached for lesson 04 ({seconds:.1f} s)")
    return 0
