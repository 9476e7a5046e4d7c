"""Griffin-Lim inversion of stored features back to audio, and the log-spectral distance between
the original and the reconstruction.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

import numpy as np

from securepipe.data.dataset import Manifest, load_audio
from securepipe.errors import InvalidParameterError
from securepipe.features.extract import (
    MEL_SPEC,
    FeatureSpec,
    extract,
    from_bytes,
    to_bytes,
)
from securepipe.features.leakage.cache import cache_key
from securepipe.features.leakage.common import LSD_SPEECH_DB, check_signal, check_sr
from securepipe.ids import check_int


def mel_power(matrix: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    import librosa

    if spec.kind == "mfcc":
        mel = librosa.feature.inverse.mfcc_to_mel(
            matrix, n_mels=spec.n_mels, dct_type=2, norm="ortho", ref=1.0, lifter=0
        )
    elif spec.scale == "db":
        mel = librosa.db_to_power(matrix, ref=1.0)
    else:
        mel = matrix
    return np.asarray(mel, dtype=np.float32)


@functools.lru_cache(maxsize=8)
def _mel_pinv(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Pseudo-inverse of the float32 mel filter bank (kept in memory, read-only)."""
    import librosa

    basis = librosa.filters.mel(
        sr=sr,
        n_fft=n_fft,
        n_mels=n_mels,
        fmin=fmin,
        fmax=fmax,
        htk=False,
        norm="slaney",
        dtype=np.float32,
    )
    pinv = np.linalg.pinv(basis)
    pinv.setflags(write=False)
    return pinv


def mel_to_magnitude(mel: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """STFT magnitude from mel power, as ``librosa.feature.inverse.mel_to_stft`` computes it.

    mel_to_stft solves a non-negative least-squares problem with L-BFGS-B started from the
    clipped pseudo-inverse. Its objective and gradient are scaled by 1 / (size of the matrix), so
    on utterance-sized inputs the solver stops at that starting point; building the bounds for
    L-BFGS-B still costs ~0.2 s per utterance. This is the starting point, computed directly with
    a cached pseudo-inverse (the tests check it against mel_to_stft to float32 rounding).
    """
    pinv = _mel_pinv(spec.sample_rate, spec.n_fft, spec.n_mels, spec.fmin, spec.fmax)
    inverse = pinv @ mel.astype(np.float32)
    np.clip(inverse, 0, None, out=inverse)
    return np.power(inverse, 1.0 / spec.power, out=inverse)


def invert(
    matrix: np.ndarray,
    spec: FeatureSpec,
    *,
    n_iter: int = 32,
    seed: int = 0,
    length: int | None = None,
) -> np.ndarray:
    """Audio (float32) rebuilt from a stored mel or MFCC matrix: what an attacker can play back.

    MFCCs go back to mel power (``librosa.feature.inverse.mfcc_to_mel``: inverse DCT, then dB to
    power), mel power to an STFT magnitude (as ``mel_to_stft``), and the magnitude to a waveform
    by Griffin-Lim (``librosa.griffinlim`` with ``random_state=seed``: the same seed gives the
    same samples; ``librosa.feature.inverse.mel_to_audio`` cannot be seeded in librosa 0.11).
    ``length`` trims or pads the output to a known number of samples.
    """
    import librosa

    if not isinstance(spec, FeatureSpec):
        raise InvalidParameterError(f"spec must be a FeatureSpec, got {type(spec).__name__}")
    x = np.asarray(matrix, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] != spec.n_features or x.shape[1] < 2:
        raise InvalidParameterError(
            f"matrix must be ({spec.n_features}, n_frames >= 2) for {spec.name}, got {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise InvalidParameterError("matrix contains NaN or infinite values")
    n_iter = check_int(n_iter, "n_iter", 1, 1000)
    seed = check_int(seed, "seed", 0, 2**32 - 1)
    if length is not None:
        length = check_int(length, "length", 1, 2**31 - 1)
    magnitude = mel_to_magnitude(mel_power(x, spec), spec)
    y = librosa.griffinlim(
        magnitude,
        n_iter=n_iter,
        hop_length=spec.hop_length,
        win_length=spec.win_length,
        n_fft=spec.n_fft,
        window="hann",
        center=True,
        length=length,
        pad_mode="constant",
        momentum=0.99,
        init="random",
        random_state=seed,
    )
    return np.asarray(y, dtype=np.float32)


def reconstruction_pair(
    manifest: Manifest,
    sample_id: str,
    spec: FeatureSpec = MEL_SPEC,
    *,
    n_iter: int = 32,
    seed: int = 0,
    cache: str | os.PathLike[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """``(original, reconstruction, sr)`` for one utterance: extract, store, reload, invert.

    For the notebook's audio players: the reconstruction is what an attacker who stole only the
    stored feature blob can listen to. With ``cache`` (a folder, such as
    :data:`~securepipe.features.leakage.DEFAULT_CACHE`), the reconstruction is kept under the
    same content-addressed name as the leakage tables (data, parameters, code, library
    versions), so a lesson plays it without running Griffin-Lim again; the same arguments give
    the same samples either way (Griffin-Lim is seeded).
    """
    y, sr = load_audio(manifest, sample_id)
    params = {"sample_id": sample_id, "spec": spec.to_dict(), "n_iter": n_iter, "seed": seed}
    path = (Path(cache) / f"reconstruction-{cache_key('reconstruction', manifest, params)}.f32"
            if cache is not None else None)
    if path is not None:
        try:
            data = path.read_bytes()
            if len(data) == 4 * len(y):  # anything else is recomputed, never trusted
                return y, np.frombuffer(data, dtype="<f4").astype(np.float32), sr
        except OSError:
            pass
    matrix, stored_spec = from_bytes(to_bytes(extract(y, sr, spec), spec))
    rebuilt = np.asarray(invert(matrix, stored_spec, n_iter=n_iter, seed=seed, length=len(y)),
                         dtype=np.float32)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".reconstruction-", suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(rebuilt.astype("<f4").tobytes())
            os.replace(tmp, path)
        except OSError:
            pass  # a folder that cannot be written only means the next call inverts again
    return y, rebuilt, sr


def log_spectral_distance(reference: np.ndarray, degraded: np.ndarray, sr: int) -> float:
    """Mean log-spectral distance in dB over the reference's speech frames (same-length signals).

    Per frame, the RMS over frequency of the difference of the two power spectra in dB (512-point
    FFT, 10 ms hop); averaged over frames within 40 dB of the reference's loudest frame.
    """
    import librosa

    sr = check_sr(sr)
    a, b = check_signal(reference, "reference"), check_signal(degraded, "degraded")
    if a.size != b.size:
        raise InvalidParameterError("reference and degraded must have the same length")
    hop = sr // 100

    def power_db(x: np.ndarray) -> np.ndarray:
        spec = np.abs(librosa.stft(x, n_fft=512, hop_length=hop, win_length=400)) ** 2
        return 10.0 * np.log10(spec + 1e-10)

    da, db = power_db(a), power_db(b)
    energy = 10.0 * np.log10(np.sum(10.0 ** (da / 10.0), axis=0) + 1e-10)
    speech = energy > energy.max() + LSD_SPEECH_DB
    return float(np.mean(np.sqrt(np.mean((da - db)[:, speech] ** 2, axis=0))))
