"""Re-identification and content attacks on stored features: enrolled speaker identification and
sentence identification by DTW.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from securepipe.errors import InvalidParameterError
from securepipe.features.leakage.common import CONTENT_HOP, check_signal, check_sr


def enrolled_accuracy(
    enrol: np.ndarray,
    enrol_labels: Sequence[object],
    probes: np.ndarray,
    probe_labels: Sequence[object],
    *,
    exclude_same_index: bool = True,
) -> float:
    """Fraction of probes whose cosine nearest enrolment vector has the probe's label.

    The attacker of :mod:`securepipe.features.speakerid`, split in two: enrolment vectors (e.g. raw
    recordings the attacker holds) and probes (e.g. anonymised recordings). Both are z-scored with
    the enrolment's statistics. With ``exclude_same_index`` probe ``i`` never matches enrolment
    ``i`` (its own original recording), as in leave-one-out.
    """
    e = np.asarray(enrol, dtype=np.float64)
    p = np.asarray(probes, dtype=np.float64)
    e_labels, p_labels = list(enrol_labels), list(probe_labels)
    if e.ndim != 2 or p.ndim != 2 or e.shape[1] != p.shape[1]:
        raise InvalidParameterError(
            f"enrol and probes must be 2-D with the same width, got {e.shape} and {p.shape}"
        )
    if len(e_labels) != e.shape[0] or len(p_labels) != p.shape[0]:
        raise InvalidParameterError("labels must match the embeddings one to one")
    if exclude_same_index and e.shape[0] != p.shape[0]:
        raise InvalidParameterError("exclude_same_index needs as many probes as enrolments")
    if p.shape[0] < 1 or e.shape[0] < 2 or len(set(e_labels)) < 2:
        raise InvalidParameterError("need probes and at least 2 enrolled speakers")
    if not (np.all(np.isfinite(e)) and np.all(np.isfinite(p))):
        raise InvalidParameterError("embeddings contain NaN or infinite values")
    mean, std = e.mean(axis=0), e.std(axis=0)
    std = np.where(std > 0, std, 1.0)

    def unit(v: np.ndarray) -> np.ndarray:
        z = (v - mean) / std
        norms = np.linalg.norm(z, axis=1, keepdims=True)
        return z / np.where(norms > 0, norms, 1.0)

    sim = unit(p) @ unit(e).T
    if exclude_same_index:
        np.fill_diagonal(sim, -np.inf)
    nearest = sim.argmax(axis=1)
    return sum(p_labels[i] == e_labels[j] for i, j in enumerate(nearest)) / len(p_labels)


def content_features(y: np.ndarray, sr: int) -> np.ndarray:
    """Speaker-normalised content features: MFCC 1-12 at 20 ms, mean/variance per utterance."""
    import librosa

    mel = librosa.feature.melspectrogram(
        y=np.asarray(y, dtype=np.float32),
        sr=sr,
        n_fft=512,
        hop_length=CONTENT_HOP,
        win_length=400,
        n_mels=40,
        fmin=20.0,
    )
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel, ref=np.max, top_db=80.0), n_mfcc=13)
    c = mfcc[1:].astype(np.float64)
    return (c - c.mean(axis=1, keepdims=True)) / (c.std(axis=1, keepdims=True) + 1e-8)


def _dtw_cost(a: np.ndarray, b: np.ndarray) -> float:
    import librosa
    from scipy.spatial.distance import cdist

    acc = librosa.sequence.dtw(C=cdist(a.T, b.T, "euclidean"), backtrack=False)
    return float(acc[-1, -1]) / (a.shape[1] + b.shape[1])


def sentence_accuracy(
    probes: Sequence[np.ndarray],
    references: Sequence[np.ndarray],
    speakers: Sequence[object],
    sentences: Sequence[int],
    sr: int,
) -> float:
    """Utility proxy: can the words still be recognised? Leave-one-speaker-out sentence ID.

    Probe ``i`` (spoken by ``speakers[i]``) is labelled with the sentence of the reference, among
    the *other* speakers' references, at the smallest dynamic-time-warping distance between
    speaker-normalised MFCC sequences. Every speaker reads the same sentences, so this asks
    whether the content survived, not who spoke. Chance is 1 / number of sentences; sentence
    length alone gives part of the answer, so read it next to the raw-audio score.
    """
    sr = check_sr(sr)
    n = len(probes)
    if not n or len(references) != n or len(speakers) != n or len(sentences) != n:
        raise InvalidParameterError("probes, references, speakers and sentences must align")
    refs = [content_features(check_signal(r, "reference"), sr) for r in references]
    feats = [content_features(check_signal(p, "probe"), sr) for p in probes]
    return sentence_hits(feats, refs, speakers, sentences)


def sentence_hits(
    probe_feats: Sequence[np.ndarray],
    ref_feats: Sequence[np.ndarray],
    speakers: Sequence[object],
    sentences: Sequence[int],
) -> float:
    n = len(probe_feats)
    hits = 0
    for i, feats in enumerate(probe_feats):
        others = [j for j in range(n) if speakers[j] != speakers[i]]
        if not others:
            raise InvalidParameterError("sentence identification needs at least 2 speakers")
        best = min(others, key=lambda j: (_dtw_cost(feats, ref_feats[j]), j))
        hits += sentences[best] == sentences[i]
    return hits / n
