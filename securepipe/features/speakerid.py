"""The baseline attacker: who is speaking, from MFCC statistics and a nearest neighbour.

A recording (or a stored feature matrix) becomes one vector: the mean and standard deviation of
each MFCC over the speech frames. Leave-one-out cosine nearest neighbour over z-scored vectors then
names the speaker. Crude on purpose: if this works far above chance, the data identify people, and
every later defence in the kit is measured by how far it pushes this number back towards chance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from securepipe.data.dataset import Manifest, load_audio
from securepipe.errors import InvalidParameterError
from securepipe.features import spectral

__all__ = [
    "DROP_C0",
    "HOP_LENGTH",
    "N_FFT",
    "N_MELS",
    "N_MFCC",
    "VAD_TOP_DB",
    "IdentificationResult",
    "embed_audio",
    "embed_matrix",
    "identify_speakers",
    "leave_one_out_accuracy",
]

N_MFCC = 20  # coefficients per frame
N_FFT = 512  # 32 ms window at 16 kHz
HOP_LENGTH = 160  # 10 ms hop at 16 kHz
N_MELS = 40  # mel bands the MFCCs are computed from
FMIN = 20.0  # lowest mel band edge, Hz
VAD_TOP_DB = 40.0  # frames more than this below the loudest frame count as silence
# c0 is the frame's log energy: it tracks loudness and recording gain, not the speaker, and the
# set is peak-normalised anyway. Drop it so the attack rests on spectral shape alone.
DROP_C0 = True


@dataclass(frozen=True)
class IdentificationResult:
    """Outcome of a leave-one-out speaker-identification attack."""

    accuracy: float
    chance: float  # 1 / n_speakers
    n_trials: int
    n_speakers: int


def embed_matrix(features: np.ndarray) -> np.ndarray:
    """Per-row mean and standard deviation of a (n_features, n_frames) matrix, as one vector.

    Works on any stored frame-wise features (an MFCC matrix, a mel spectrogram in dB...), so an
    attacker who only sees the features, not the audio, can still build a voiceprint.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise InvalidParameterError(
            f"features must be a non-empty (n_features, n_frames) matrix, got shape {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise InvalidParameterError("features contain NaN or infinite values")
    return np.concatenate([x.mean(axis=1), x.std(axis=1)])


def embed_audio(y: np.ndarray, sr: int) -> np.ndarray:
    """MFCC statistics of a mono signal (speech frames only): a 2 x (N_MFCC - DROP_C0) vector."""
    if isinstance(sr, bool) or not isinstance(sr, int | np.integer) or sr <= 0:
        raise InvalidParameterError(f"sr must be a positive int, got {sr!r}")
    x = np.asarray(y, dtype=np.float32)
    if x.ndim != 1 or x.size < N_FFT:
        raise InvalidParameterError(f"y must be a 1-D signal of at least {N_FFT} samples")
    if not np.all(np.isfinite(x)):
        raise InvalidParameterError("y contains NaN or infinite values")
    if not np.any(x):
        raise InvalidParameterError("y is digital silence: there is no voice to embed")
    # librosa's melspectrogram defaults (window = n_fft, fmax = sr / 2), in NumPy
    # (securepipe.features.spectral, held to librosa by its tests).
    mel = spectral.melspectrogram(x, sr=int(sr), n_fft=N_FFT, hop_length=HOP_LENGTH,
                                  win_length=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=sr / 2)
    log_mel = spectral.power_to_db(mel, ref=None, top_db=80.0)
    energy = spectral.power_to_db(mel.sum(axis=0), ref=None, top_db=None)
    speech = energy > -VAD_TOP_DB
    if int(speech.sum()) < 2:
        raise InvalidParameterError("y holds no speech (every frame is near silence)")
    mfcc = spectral.mfcc_from_db(log_mel[:, speech], N_MFCC)
    return embed_matrix(mfcc[1:] if DROP_C0 else mfcc)


def leave_one_out_accuracy(embeddings: np.ndarray, labels: Sequence[object]) -> float:
    """Fraction of items whose cosine nearest neighbour (others only) has the same label.

    Each dimension is z-scored with the mean and standard deviation of the whole set first.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    labels = list(labels)
    if x.ndim != 2:
        raise InvalidParameterError(f"embeddings must be 2-D (n_items, dim), got shape {x.shape}")
    if len(labels) != x.shape[0]:
        raise InvalidParameterError(
            f"{x.shape[0]} embeddings but {len(labels)} labels: they must match one to one"
        )
    if len(set(labels)) < 2:
        raise InvalidParameterError("need at least 2 speakers to identify anyone")
    if not np.all(np.isfinite(x)):
        raise InvalidParameterError("embeddings contain NaN or infinite values")
    std = x.std(axis=0)
    z = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    unit = z / np.where(norms > 0, norms, 1.0)
    sim = unit @ unit.T
    np.fill_diagonal(sim, -np.inf)
    nearest = sim.argmax(axis=1)
    hits = sum(labels[i] == labels[j] for i, j in enumerate(nearest))
    return hits / len(labels)


def identify_speakers(manifest: Manifest) -> IdentificationResult:
    """Run the raw-audio attack on every utterance of ``manifest`` (digests checked on load)."""
    labels = [utt.speaker for utt in manifest.utterances]
    n_speakers = len(set(labels))
    if n_speakers < 2:
        raise InvalidParameterError(
            f"the manifest needs at least 2 speakers to attack, it has {n_speakers}"
        )
    embeddings = []
    for utt in manifest.utterances:
        y, sr = load_audio(manifest, utt.sample_id)
        embeddings.append(embed_audio(y, sr))
    return IdentificationResult(
        accuracy=leave_one_out_accuracy(np.vstack(embeddings), labels),
        chance=1.0 / n_speakers,
        n_trials=len(labels),
        n_speakers=n_speakers,
    )
