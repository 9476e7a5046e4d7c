"""The strong attacker: a GMM-UBM speaker-verification system, and the trial metrics (top-1, EER).

The classic text-independent speaker-verification baseline of Reynolds, Quatieri & Dunn,
"Speaker verification using adapted Gaussian mixture models", Digital Signal Processing 10
(2000) 19-41: a universal background model (UBM), a diagonal-covariance Gaussian mixture fitted
with EM to frames pooled over many speakers (here scikit-learn's ``GaussianMixture``, seeded),
then one model per enrolled speaker made by MAP-adapting the UBM's means to that speaker's frames
with relevance factor ``r`` (section 3: ``alpha_k = n_k / (n_k + r)``, ``r = 16``). A test
utterance's score against a speaker is the average per-frame log-likelihood ratio
``log p(x | speaker) - log p(x | UBM)``.

Both this attacker and the kit's nearest-neighbour one (:mod:`securepipe.features.speakerid`)
produce a score matrix (test utterances x enrolled speakers); :func:`top1_accuracy` reads it as
closed-set identification and :func:`equal_error_rate` as verification trials (every test
utterance against every enrolled speaker), the VoicePrivacy Challenge's primary privacy metric.

Every function refuses mismatched shapes, speakers with fewer than ``MIN_ENROL_UTTERANCES``
enrolment utterances, and NaN or infinite features with :class:`InvalidParameterError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from securepipe.errors import InvalidParameterError
from securepipe.features.extract import FeatureSpec
from securepipe.features.leakage.common import check_signal, check_sr
from securepipe.ids import check_int

MIN_ENROL_UTTERANCES = 2  # per enrolled speaker: one utterance is a recording, not a voice model
UBM_COMPONENTS = 32
MAP_RELEVANCE = 16.0  # Reynolds et al. 2000, section 3.1
N_CEPSTRA = 20  # frame features: cepstra 1..19 (c0, the loudness, dropped)
VAD_DB = 40.0  # frames more than this below the loudest frame are silence
_VAR_FLOOR = 1e-3


def _check_frames(frames: Any, name: str, dim: int | None = None) -> np.ndarray:
    x = np.asarray(frames, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise InvalidParameterError(
            f"{name} must be a (n_frames >= 2, dim) matrix, got shape {x.shape}"
        )
    if dim is not None and x.shape[1] != dim:
        raise InvalidParameterError(f"{name} has {x.shape[1]} dimensions, expected {dim}")
    if not np.all(np.isfinite(x)):
        raise InvalidParameterError(f"{name} contains NaN or infinite values")
    return x


def _cepstra(log_bands: np.ndarray, energy_db: np.ndarray) -> np.ndarray:
    """Orthonormal DCT-II of log bands (bands x frames), speech frames only, c1.. as rows=frames."""
    from scipy.fft import dct

    speech = energy_db > float(np.max(energy_db)) - VAD_DB
    if int(speech.sum()) < 2:
        raise InvalidParameterError("fewer than 2 speech frames: nothing to model")
    c = dct(log_bands[:, speech], type=2, norm="ortho", axis=0)
    return np.ascontiguousarray(c[1:N_CEPSTRA].T)


def audio_frames(y: np.ndarray, sr: int) -> np.ndarray:
    """Frame-level features of a recording: MFCC 1-19 (40 mel bands, 32 ms / 10 ms), speech only."""
    import librosa

    sr = check_sr(sr)
    x = check_signal(y).astype(np.float32)
    if not np.any(x):
        raise InvalidParameterError("y is digital silence: there is no voice to model")
    mel = librosa.feature.melspectrogram(
        y=x, sr=sr, n_fft=512, hop_length=sr // 100, n_mels=40, fmin=20.0
    )
    log_mel = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    energy = librosa.power_to_db(mel.sum(axis=0), ref=1.0, amin=1e-10, top_db=None)
    return _cepstra(np.asarray(log_mel, dtype=np.float64), np.asarray(energy, dtype=np.float64))


def matrix_frames(matrix: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Frame-level features from a stored matrix alone, as an attacker holding the blob makes them.

    A dB mel matrix is turned into cepstra 1-19 (orthonormal DCT over the bands); a mel power
    matrix is converted to dB first; an MFCC matrix is used as stored, minus c0. Silence is
    dropped with the matrix's own energy (c0, or the bands' total power).
    """
    if not isinstance(spec, FeatureSpec):
        raise InvalidParameterError(f"spec must be a FeatureSpec, got {type(spec).__name__}")
    x = np.asarray(matrix, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != spec.n_features or x.shape[1] < 2:
        raise InvalidParameterError(
            f"matrix must be ({spec.n_features}, n_frames >= 2) for {spec.name}, got {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise InvalidParameterError("matrix contains NaN or infinite values")
    if spec.kind == "mfcc":
        # c0 of an orthonormal DCT is sqrt(n_mels) times the frame's mean band level in dB.
        speech = x[0] > float(np.max(x[0])) - VAD_DB * float(np.sqrt(spec.n_mels))
        if int(speech.sum()) < 2:
            raise InvalidParameterError("fewer than 2 speech frames: nothing to model")
        return np.ascontiguousarray(x[1:, speech].T)
    log_bands = x if spec.scale == "db" else 10.0 * np.log10(np.maximum(x, 1e-10))
    energy = 10.0 * np.log10(np.sum(10.0 ** (log_bands / 10.0), axis=0) + 1e-10)
    return _cepstra(log_bands, energy)


@dataclass(frozen=True)
class Ubm:
    """A fitted universal background model: diagonal GMM in a standardised feature space."""

    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, D)
    variances: np.ndarray  # (K, D)
    shift: np.ndarray  # (D,) feature mean of the training pool
    scale: np.ndarray  # (D,) feature std of the training pool
    seed: int

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    def standardise(self, frames: np.ndarray) -> np.ndarray:
        return (_check_frames(frames, "frames", self.dim) - self.shift) / self.scale


def train_ubm(
    pool: Sequence[np.ndarray],
    *,
    n_components: int = UBM_COMPONENTS,
    seed: int = 0,
    max_iter: int = 100,
) -> Ubm:
    """Fit the UBM to the frames of every utterance in ``pool`` (scikit-learn EM, k-means init).

    ``seed`` is scikit-learn's ``random_state``: the same pool and seed give the same model.
    """
    from sklearn.mixture import GaussianMixture

    n_components = check_int(n_components, "n_components", 1, 1024)
    seed = check_int(seed, "seed", 0, 2**32 - 1)
    max_iter = check_int(max_iter, "max_iter", 1, 10_000)
    mats = list(pool)
    if not mats:
        raise InvalidParameterError("the UBM needs at least one utterance of frames")
    first = _check_frames(mats[0], "pool[0]")
    frames = np.vstack([first, *(_check_frames(m, f"pool[{i}]", first.shape[1])
                                 for i, m in enumerate(mats[1:], 1))])
    if frames.shape[0] < 4 * n_components:
        raise InvalidParameterError(
            f"{frames.shape[0]} frames cannot fit {n_components} components (need 4 per component)"
        )
    shift = frames.mean(axis=0)
    scale = frames.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    gmm = GaussianMixture(
        n_components=n_components,
        covariance_type="diag",
        max_iter=max_iter,
        reg_covar=_VAR_FLOOR,
        random_state=seed,
    )
    gmm.fit((frames - shift) / scale)
    return Ubm(
        weights=np.asarray(gmm.weights_, dtype=np.float64),
        means=np.asarray(gmm.means_, dtype=np.float64),
        variances=np.asarray(gmm.covariances_, dtype=np.float64),
        shift=shift,
        scale=scale,
        seed=seed,
    )


def _component_loglik(z: np.ndarray, means: np.ndarray, variances: np.ndarray,
                      weights: np.ndarray) -> np.ndarray:
    """log(w_k N(z_t; mu_k, diag var_k)) for every frame t and component k: (T, K)."""
    prec = 1.0 / variances
    quad = (
        (z * z) @ prec.T
        - 2.0 * z @ (means * prec).T
        + np.sum(means * means * prec, axis=1)[None, :]
    )
    log_det = np.sum(np.log(variances), axis=1)
    return np.log(weights)[None, :] - 0.5 * (z.shape[1] * np.log(2.0 * np.pi) + log_det + quad)


def _frame_loglik(z: np.ndarray, means: np.ndarray, ubm: Ubm) -> np.ndarray:
    from scipy.special import logsumexp

    return np.asarray(logsumexp(_component_loglik(z, means, ubm.variances, ubm.weights), axis=1))


def map_adapt(ubm: Ubm, utterances: Sequence[np.ndarray],
              relevance: float = MAP_RELEVANCE) -> np.ndarray:
    """A speaker's means: the UBM's means MAP-adapted to the frames of ``utterances`` (means only).

    ``n_k`` and ``E_k`` are the component occupancies and posterior-weighted means of the
    speaker's frames; each adapted mean is ``a_k E_k + (1 - a_k) mu_k`` with
    ``a_k = n_k / (n_k + relevance)``.
    """
    from scipy.special import softmax

    if isinstance(relevance, bool) or not isinstance(relevance, int | float) or not (
        0.0 < float(relevance) < 1e6
    ):
        raise InvalidParameterError(f"relevance must be a positive number, got {relevance!r}")
    mats = list(utterances)
    if len(mats) < MIN_ENROL_UTTERANCES:
        raise InvalidParameterError(
            f"enrolment needs at least {MIN_ENROL_UTTERANCES} utterances, got {len(mats)}"
        )
    z = np.vstack([ubm.standardise(m) for m in mats])
    post = softmax(_component_loglik(z, ubm.means, ubm.variances, ubm.weights), axis=1)
    n_k = post.sum(axis=0)
    e_k = (post.T @ z) / np.maximum(n_k, 1e-10)[:, None]
    alpha = (n_k / (n_k + float(relevance)))[:, None]
    return np.asarray(alpha * e_k + (1.0 - alpha) * ubm.means)


def llr_score(ubm: Ubm, speaker_means: np.ndarray, frames: np.ndarray) -> float:
    """Average per-frame log-likelihood ratio of ``frames``: speaker model against the UBM."""
    means = np.asarray(speaker_means, dtype=np.float64)
    if means.shape != ubm.means.shape or not np.all(np.isfinite(means)):
        raise InvalidParameterError(
            f"speaker means must be finite with shape {ubm.means.shape}, got {means.shape}"
        )
    z = ubm.standardise(frames)
    return float(np.mean(_frame_loglik(z, means, ubm) - _frame_loglik(z, ubm.means, ubm)))


# --- both attackers as score matrices ------------------------------------------------------------


def _enrolled_speakers(labels: Sequence[object], n_items: int) -> list[object]:
    labels = list(labels)
    if len(labels) != n_items:
        raise InvalidParameterError(
            f"{n_items} enrolment items but {len(labels)} labels: they must match one to one"
        )
    speakers = sorted(set(labels), key=str)
    if len(speakers) < 2:
        raise InvalidParameterError("need at least 2 enrolled speakers")
    for spk in speakers:
        count = labels.count(spk)
        if count < MIN_ENROL_UTTERANCES:
            raise InvalidParameterError(
                f"speaker {spk!r} has {count} enrolment utterance(s); "
                f"at least {MIN_ENROL_UTTERANCES} are needed"
            )
    return speakers


def gmm_ubm_scores(
    enrol: Sequence[np.ndarray],
    enrol_labels: Sequence[object],
    tests: Sequence[np.ndarray],
    *,
    n_components: int = UBM_COMPONENTS,
    relevance: float = MAP_RELEVANCE,
    seed: int = 0,
) -> tuple[np.ndarray, list[object]]:
    """GMM-UBM scores (tests x speakers) and the speakers' order.

    The UBM is trained on the pooled enrolment frames (the attacker's own data; no test frame),
    then each speaker's model is MAP-adapted from their enrolment utterances.
    """
    enrol, tests = list(enrol), list(tests)
    speakers = _enrolled_speakers(enrol_labels, len(enrol))
    if not tests:
        raise InvalidParameterError("need at least one test utterance")
    ubm = train_ubm(enrol, n_components=n_components, seed=seed)
    labels = list(enrol_labels)
    models = [
        map_adapt(ubm, [m for m, lab in zip(enrol, labels, strict=True) if lab == spk], relevance)
        for spk in speakers
    ]
    scores = np.array([[llr_score(ubm, mu, t) for mu in models] for t in tests])
    return scores, speakers


def nearest_neighbour_scores(
    enrol: np.ndarray,
    enrol_labels: Sequence[object],
    tests: np.ndarray,
) -> tuple[np.ndarray, list[object]]:
    """The kit's attacker as scores: best cosine similarity to each speaker's enrolment vectors.

    Vectors are utterance embeddings (:func:`~securepipe.features.speakerid.embed_audio` or
    ``embed_matrix``), z-scored with the enrolment set's statistics, as in ``enrolled_accuracy``.
    """
    e = _check_frames(enrol, "enrol")
    t = np.asarray(tests, dtype=np.float64)
    if t.ndim != 2 or t.shape[0] < 1 or t.shape[1] != e.shape[1]:
        raise InvalidParameterError(
            f"tests must be (n, {e.shape[1]}) like the enrolment, got shape {t.shape}"
        )
    if not np.all(np.isfinite(t)):
        raise InvalidParameterError("tests contain NaN or infinite values")
    speakers = _enrolled_speakers(enrol_labels, e.shape[0])
    mean, std = e.mean(axis=0), e.std(axis=0)
    std = np.where(std > 0, std, 1.0)

    def unit(v: np.ndarray) -> np.ndarray:
        z = (v - mean) / std
        norms = np.linalg.norm(z, axis=1, keepdims=True)
        return z / np.where(norms > 0, norms, 1.0)

    sim = unit(t) @ unit(e).T
    labels = np.asarray([speakers.index(lab) for lab in enrol_labels])
    scores = np.stack([sim[:, labels == k].max(axis=1) for k in range(len(speakers))], axis=1)
    return scores, speakers


def _trials(scores: Any, speakers: Sequence[object],
            test_labels: Sequence[object]) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    labels = list(test_labels)
    if s.ndim != 2 or s.shape != (len(labels), len(speakers)) or s.shape[0] < 1:
        raise InvalidParameterError(
            f"scores must be (n_tests, n_speakers) = ({len(labels)}, {len(speakers)}), "
            f"got {s.shape}"
        )
    if not np.all(np.isfinite(s)):
        raise InvalidParameterError("scores contain NaN or infinite values")
    target = np.array([[lab == spk for spk in speakers] for lab in labels], dtype=bool)
    return s, target


def top1_accuracy(scores: np.ndarray, speakers: Sequence[object],
                  test_labels: Sequence[object]) -> float:
    """Closed-set identification: fraction of tests whose best-scoring speaker is the right one."""
    s, target = _trials(scores, speakers, test_labels)
    return float(np.mean(target[np.arange(s.shape[0]), s.argmax(axis=1)]))


def equal_error_rate(scores: np.ndarray, speakers: Sequence[object],
                     test_labels: Sequence[object]) -> float:
    """EER of the verification trials (every test against every enrolled speaker).

    The operating point where the false-acceptance rate equals the false-rejection rate, found by
    linear interpolation between the two empirical curves. 0.5 is a coin toss; 0.0 a perfect
    separation. Needs at least one target and one non-target trial.
    """
    s, target = _trials(scores, speakers, test_labels)
    tar, non = s[target], s[~target]
    if tar.size == 0 or non.size == 0:
        raise InvalidParameterError("EER needs target and non-target trials")
    thresholds = np.unique(np.concatenate([tar, non, [np.inf]]))
    frr = np.array([np.mean(tar < th) for th in thresholds])  # rises with the threshold
    far = np.array([np.mean(non >= th) for th in thresholds])  # falls with the threshold
    i = int(np.argmax(frr >= far))
    if i == 0:
        return float((frr[0] + far[0]) / 2.0)
    d0, d1 = far[i - 1] - frr[i - 1], far[i] - frr[i]
    w = d0 / (d0 - d1) if d0 != d1 else 0.5
    return float(far[i - 1] + w * (far[i] - far[i - 1]))


# --- the protocol: enrol on some sentences, test on another ---------------------------------------


@dataclass(frozen=True)
class AttackResult:
    """One attacker's outcome over every fold: identification and verification."""

    top1: float  # closed-set identification accuracy
    eer: float  # equal error rate of all (test, enrolled speaker) trials
    chance: float  # 1 / number of enrolled speakers
    n_tests: int
    n_trials: int


def cross_validated(
    attacker: str,
    enrol_items: Sequence[Any],
    test_items: Sequence[Any],
    labels: Sequence[object],
    folds: Sequence[int],
    *,
    seed: int = 0,
) -> AttackResult:
    """Run ``attacker`` (``"nn"`` or ``"gmm-ubm"``) fold by fold, pooling the trials.

    Item ``i`` is utterance ``i`` seen two ways: ``enrol_items[i]`` (what the attacker enrols,
    e.g. a raw recording's features) and ``test_items[i]`` (what it is given to identify, e.g. the
    anonymised recording's). In fold ``f`` every speaker is enrolled from their utterances whose
    fold is not ``f`` and tested on those whose fold is ``f``: with folds = sentence indices, no
    test sentence is ever enrolled. For ``"nn"`` the items are embedding vectors, for
    ``"gmm-ubm"`` frame matrices; ``seed`` seeds the UBM.
    """
    if attacker not in ("nn", "gmm-ubm"):
        raise InvalidParameterError(f"attacker must be 'nn' or 'gmm-ubm', got {attacker!r}")
    labels, folds = list(labels), list(folds)
    n = len(labels)
    if not (len(enrol_items) == len(test_items) == len(folds) == n) or n == 0:
        raise InvalidParameterError("enrol items, test items, labels and folds must align")
    all_scores, test_labels, speakers = [], [], None
    for fold in sorted(set(folds)):
        enrol_idx = [i for i in range(n) if folds[i] != fold]
        test_idx = [i for i in range(n) if folds[i] == fold]
        enrol_labels = [labels[i] for i in enrol_idx]
        if attacker == "nn":
            scores, spk = nearest_neighbour_scores(
                np.vstack([enrol_items[i] for i in enrol_idx]),
                enrol_labels,
                np.vstack([test_items[i] for i in test_idx]),
            )
        else:
            scores, spk = gmm_ubm_scores(
                [enrol_items[i] for i in enrol_idx],
                enrol_labels,
                [test_items[i] for i in test_idx],
                seed=seed,
            )
        if speakers is not None and spk != speakers:
            raise InvalidParameterError("every fold must enrol the same speakers")
        speakers = spk
        all_scores.append(scores)
        test_labels += [labels[i] for i in test_idx]
    assert speakers is not None
    matrix = np.vstack(all_scores)
    return AttackResult(
        top1=top1_accuracy(matrix, speakers, test_labels),
        eer=equal_error_rate(matrix, speakers, test_labels),
        chance=1.0 / len(speakers),
        n_tests=len(test_labels),
        n_trials=int(matrix.size),
    )
