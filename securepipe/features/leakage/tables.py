"""The leakage lab's tables and plots: what each stored feature set leaks, and what anonymisation
buys, measured with the attacks in :mod:`securepipe.features.leakage.attacks`.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from securepipe.data.dataset import Manifest, Utterance, load_audio
from securepipe.data.heldout import HELDOUT_GENERATOR
from securepipe.errors import InvalidParameterError
from securepipe.features.extract import (
    FeatureSpec,
    extract,
    from_bytes,
    to_bytes,
)
from securepipe.features.leakage.anonymise import (
    draw_voice_shift,
    mcadams,
    pitch_formant_shift,
    utterance_seed,
)
from securepipe.features.leakage.attacks import content_features, sentence_hits
from securepipe.features.leakage.cache import cached_rows
from securepipe.features.leakage.common import (
    DEFAULT_GL_ITER,
    DEFAULT_SPECS,
    FORMANT_SHIFT_RANGE,
    MCADAMS_FIXED,
    MCADAMS_RANDOM_RANGE,
    PITCH_SHIFT_SEMITONES,
    check_coefficient,
    check_range,
)
from securepipe.features.leakage.gmm import audio_frames, cross_validated, matrix_frames
from securepipe.features.leakage.inversion import invert, log_spectral_distance
from securepipe.features.leakage.pitch import (
    compare_tracks,
    f0_track,
    manifest_f0,
    median_f0_correlation,
    speaker_f0_error,
)
from securepipe.features.speakerid import embed_audio, embed_matrix
from securepipe.ids import check_int

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _load(manifest: Manifest) -> tuple[list[np.ndarray], int, list[str]]:
    if not isinstance(manifest, Manifest):
        raise InvalidParameterError(f"manifest must be a Manifest, got {type(manifest).__name__}")
    audio, rates = [], set()
    for utt in manifest.utterances:
        y, sr = load_audio(manifest, utt.sample_id)
        audio.append(y)
        rates.add(sr)
    if len(rates) != 1:
        raise InvalidParameterError(f"the set mixes sample rates {sorted(rates)}: resample first")
    labels = [utt.speaker for utt in manifest.utterances]
    if len(set(labels)) < 2:
        raise InvalidParameterError("the manifest needs at least 2 speakers to attack")
    return audio, rates.pop(), labels


def _num(v: float | None, digits: int = 3) -> float | None:
    return None if v is None or not math.isfinite(v) else round(float(v), digits)


@dataclass(frozen=True)
class _View:
    """One way of seeing every utterance: what each attacker works on."""

    vectors: np.ndarray  # (n, d) utterance embeddings, for the nearest-neighbour attacker
    frames: list[np.ndarray]  # per-utterance (n_frames, dim) matrices, for GMM-UBM

    @classmethod
    def of_audio(cls, audio: Sequence[np.ndarray], sr: int) -> _View:
        return cls(np.vstack([embed_audio(y, sr) for y in audio]),
                   [audio_frames(y, sr) for y in audio])

    @classmethod
    def of_matrices(cls, matrices: Sequence[np.ndarray], spec: FeatureSpec) -> _View:
        return cls(np.vstack([embed_matrix(m) for m in matrices]),
                   [matrix_frames(m, spec) for m in matrices])


def _attack(enrol: _View, test: _View, labels: list[str], folds: list[int],
            seed: int) -> dict[str, Any]:
    """Both attackers, enrolled on ``enrol`` and tested on ``test``: the row's attack columns."""
    nn = cross_validated("nn", list(enrol.vectors), list(test.vectors), labels, folds)
    gmm = cross_validated("gmm-ubm", enrol.frames, test.frames, labels, folds, seed=seed)
    return {
        "nn_top1": round(nn.top1, 4),
        "nn_eer": round(nn.eer, 4),
        "gmm_top1": round(gmm.top1, 4),
        "gmm_eer": round(gmm.eer, 4),
        "chance": round(gmm.chance, 4),
        "n_tests": gmm.n_tests,
        "n_trials": gmm.n_trials,
    }


def _family(manifest: Manifest) -> str:
    return "held-out" if manifest.generator == HELDOUT_GENERATOR else "kit"


def leakage_table(
    manifest: Manifest,
    *,
    specs: Sequence[FeatureSpec] = DEFAULT_SPECS,
    n_iter: int = DEFAULT_GL_ITER,
    seed: int = 0,
    cache: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """Who is speaking, from raw audio, stored matrices and their Griffin-Lim inversions.

    Both attackers (nearest neighbour on utterance statistics, GMM-UBM on frames) run the same
    protocol (:func:`~securepipe.features.leakage.gmm.cross_validated`): enrol each speaker on
    three sentences, test on the fourth, every fold; ``*_top1`` is identification accuracy
    (``chance`` = 1 / speakers), ``*_eer`` the equal error rate of all verification trials.
    Rows: raw audio; per spec, the stored matrix (the attacker enrols matrices made with the spec
    named in the blob's header); the inverted audio (``n_iter`` Griffin-Lim iterations, seeded
    with ``seed``) against an *ignorant* attacker enrolled on raw audio and a *lazy-informed* one
    enrolled on inversions too. ``seed`` also seeds the UBM. ``f0_*`` compare the inversion's
    pitch with the original's frame by frame (:func:`compare_f0`); ``median_f0_corr`` correlates
    each utterance's median pitch (speaker level). With ``cache`` (a folder), the rows are read
    from / written to a file named by a hash of the data, the parameters and this code.
    """
    n_iter = check_int(n_iter, "n_iter", 1, 1000)
    seed = check_int(seed, "seed", 0, 2**32 - 1)
    specs = tuple(specs)
    if not specs or not all(isinstance(s, FeatureSpec) for s in specs):
        raise InvalidParameterError("specs must be a non-empty sequence of FeatureSpec")
    params = {"specs": [s.to_dict() for s in specs], "n_iter": n_iter, "seed": seed}
    return cached_rows(
        cache, "leakage", manifest, params, lambda: _leakage(manifest, specs, n_iter, seed)
    )


def _leakage(
    manifest: Manifest, specs: Sequence[FeatureSpec], n_iter: int, seed: int
) -> list[dict[str, Any]]:
    audio, sr, labels = _load(manifest)
    folds = [utt.sentence_index for utt in manifest.utterances]
    family, n = _family(manifest), len(audio)
    true_f0 = manifest_f0(manifest)
    raw_tracks = [f0_track(y, sr) for y in audio]
    raw = _View.of_audio(audio, sr)

    def row(features: str, sees: str, condition: str, attack: dict[str, Any],
            note: str, **extra: Any) -> dict[str, Any]:
        return {"family": family, "features": features, "attacker_sees": sees,
                "condition": condition, **attack, "seed": seed,
                "f0_corr": None, "median_f0_corr": None, "f0_speaker_err_hz": None,
                **extra, "n_items": n, "note": note}

    rows = [row("raw audio", "raw audio", "raw enrolled", _attack(raw, raw, labels, folds, seed),
                "the recordings step 4 deletes",
                f0_speaker_err_hz=speaker_f0_error(raw_tracks, true_f0))]
    for spec in specs:
        stored = [from_bytes(to_bytes(extract(y, sr, spec), spec)) for y in audio]
        view = _View.of_matrices([m for m, _ in stored], spec)
        rows.append(row(spec.name, "stored matrix", "spec in blob header",
                        _attack(view, view, labels, folds, seed),
                        "the matrices read back from their blobs"))
        rebuilt = [
            invert(m, s, n_iter=n_iter, seed=seed, length=len(y))
            for (m, s), y in zip(stored, audio, strict=True)
        ]
        inverted = _View.of_audio(rebuilt, sr)
        tracks = [f0_track(r, sr) for r in rebuilt]
        f0 = compare_tracks(list(zip(raw_tracks, tracks, strict=True)))
        pitch = {
            "f0_corr": _num(f0.correlation),
            "median_f0_corr": median_f0_correlation(raw_tracks, tracks),
            "f0_speaker_err_hz": speaker_f0_error(tracks, true_f0),
        }
        note = f"Griffin-Lim, {n_iter} iterations, seed {seed}"
        rows.append(row(spec.name, "inverted audio", "ignorant",
                        _attack(raw, inverted, labels, folds, seed), note + "; enrolled raw",
                        **pitch))
        rows.append(row(spec.name, "inverted audio", "lazy-informed",
                        _attack(inverted, inverted, labels, folds, seed),
                        note + "; enrolled inversions", **pitch))
    return rows


def _anonymiser(name: str, fixed: float, low: float, high: float, seed: int,
                ) -> tuple[str, Callable[[np.ndarray, int, Utterance, int], np.ndarray]]:
    """A named anonymisation method as ``f(y, sr, utterance, seed)``."""
    if name == "mcadams-fixed":
        return f"McAdams alpha={fixed:g}", lambda y, sr, u, s: mcadams(y, sr, fixed)
    if name == "mcadams-random":
        return (
            f"McAdams alpha~U[{low:g}, {high:g}) per utterance",
            lambda y, sr, u, s: mcadams(y, sr, (low, high), seed=utterance_seed(s, u.sample_id)),
        )
    lo_s, hi_s = PITCH_SHIFT_SEMITONES
    lo_f, hi_f = FORMANT_SHIFT_RANGE

    def shift(y: np.ndarray, sr: int, u: Utterance, s: int) -> np.ndarray:
        semitones, factor = draw_voice_shift(s, u.speaker)
        return pitch_formant_shift(y, sr, semitones, factor)

    return (
        f"pitch +-{lo_s:g}-{hi_s:g} st & formants x(1+-{lo_f:g}-{hi_f:g}) per speaker",
        shift,
    )


ANONYMISERS: tuple[str, ...] = ("mcadams-fixed", "mcadams-random", "pitch-formant")


def anonymisation_table(
    manifest: Manifest,
    *,
    fixed: float = MCADAMS_FIXED,
    random_range: tuple[float, float] = MCADAMS_RANDOM_RANGE,
    seed: int = 0,
    attacker_seed: int = 1,
    cache: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """Privacy and utility of each anonymiser, against both attackers, in two attack conditions.

    Methods: none; McAdams with a fixed coefficient; McAdams with a coefficient drawn per
    utterance from ``random_range``; LPC pitch and formant shifting with a pseudo-voice drawn per
    speaker (:func:`draw_voice_shift`). Random draws use ``seed`` (the defender's). Conditions,
    after the VoicePrivacy Challenge: *ignorant* (the attacker enrols raw recordings of the
    speakers, obtained elsewhere) and *lazy-informed* (the attacker anonymises its enrolment
    recordings with the same method, its random draws seeded with ``attacker_seed``). Attack
    columns as in :func:`leakage_table`. Utility: ``sentence_accuracy``, sentence identification
    by DTW against other speakers' raw readings (chance ``sentence_chance``), and
    ``lsd_db``, the log-spectral distance to the original. ``cache`` as in :func:`leakage_table`.
    """
    fixed = check_coefficient(fixed)
    low, high = check_range(random_range)
    seed = check_int(seed, "seed", 0, 2**32 - 1)
    attacker_seed = check_int(attacker_seed, "attacker_seed", 0, 2**32 - 1)
    if attacker_seed == seed:
        raise InvalidParameterError("the attacker's seed must differ from the defender's")
    params = {"fixed": fixed, "random_range": [low, high], "seed": seed,
              "attacker_seed": attacker_seed}
    return cached_rows(
        cache, "anonymisation", manifest, params,
        lambda: _anonymisation(manifest, fixed, low, high, seed, attacker_seed),
    )


def _anonymisation(manifest: Manifest, fixed: float, low: float, high: float, seed: int,
                   attacker_seed: int) -> list[dict[str, Any]]:
    audio, sr, labels = _load(manifest)
    utts = manifest.utterances
    folds = [u.sentence_index for u in utts]
    sentences = folds
    family = _family(manifest)
    raw = _View.of_audio(audio, sr)
    raw_content = [content_features(y, sr) for y in audio]
    base = {"family": family, "seed": seed}
    rows = [{**base, "anonymisation": "none", "condition": "raw enrolled",
             **_attack(raw, raw, labels, folds, seed),
             "sentence_accuracy": round(sentence_hits(raw_content, raw_content, labels,
                                                      sentences), 4),
             "sentence_chance": round(1.0 / len(set(sentences)), 4), "lsd_db": 0.0,
             "attacker_seed": None}]
    for method in ANONYMISERS:
        name, anonymise = _anonymiser(method, fixed, low, high, seed)
        defended = [anonymise(y, sr, u, seed) for y, u in zip(audio, utts, strict=True)]
        test = _View.of_audio(defended, sr)
        if method == "mcadams-fixed":
            attacker_view = test  # no randomness: the attacker's copy is the same signal
        else:
            attacker_view = _View.of_audio(
                [anonymise(y, sr, u, attacker_seed) for y, u in zip(audio, utts, strict=True)],
                sr,
            )
        content = [content_features(y, sr) for y in defended]
        utility = {
            "sentence_accuracy": round(sentence_hits(content, raw_content, labels, sentences), 4),
            "sentence_chance": round(1.0 / len(set(sentences)), 4),
            "lsd_db": round(float(np.mean([
                log_spectral_distance(o, a, sr) for o, a in zip(audio, defended, strict=True)
            ])), 2),
        }
        for condition, enrol in (("ignorant", raw), ("lazy-informed", attacker_view)):
            rows.append({**base, "anonymisation": name, "condition": condition,
                         **_attack(enrol, test, labels, folds, seed), **utility,
                         "attacker_seed": attacker_seed if condition == "lazy-informed" else None})
    return rows


def _check_rows(rows: Any, keys: tuple[str, ...]) -> list[Mapping[str, Any]]:
    rows = list(rows)
    if not rows or not all(isinstance(r, Mapping) and all(k in r for k in keys) for r in rows):
        raise InvalidParameterError(f"rows must be a non-empty list of dicts with {keys}")
    return rows


def _families(rows: list[Mapping[str, Any]]) -> list[str]:
    return list(dict.fromkeys(str(r["family"]) for r in rows))


def plot_leakage(rows: Iterable[Mapping[str, Any]]) -> Figure:
    """Top-1 identification per row of :func:`leakage_table`, both attackers, one panel a family."""
    import matplotlib.pyplot as plt

    keys = ("family", "features", "attacker_sees", "condition", "nn_top1", "gmm_top1", "chance")
    rows = _check_rows(rows, keys)
    families = _families(rows)
    per = max(sum(r["family"] == f for r in rows) for f in families)
    fig, axes = plt.subplots(1, len(families), figsize=(6 * len(families), 0.5 * per + 1.8),
                             squeeze=False, sharey=True)
    for ax, family in zip(axes[0], families, strict=True):
        mine = [r for r in rows if r["family"] == family]
        pos = np.arange(len(mine))[::-1]
        for k, (key, label, colour) in enumerate((("gmm_top1", "GMM-UBM", "#b3261e"),
                                                  ("nn_top1", "nearest neighbour", "#1a73e8"))):
            ax.barh(pos + (0.2 - 0.4 * k), [float(r[key]) for r in mine], height=0.4,
                    color=colour, label=label)
        ax.axvline(float(mine[0]["chance"]), color="black", linestyle="--", label="chance")
        ax.set_yticks(pos, [f"{r['features']} / {r['attacker_sees']}\n{r['condition']}"
                            for r in mine], fontsize=8)
        ax.set_xlim(0, 1.05)
        ax.set_xlabel("top-1 speaker identification")
        ax.set_title(f"{family} voices")
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle("Who is speaking? Raw audio, stored features, and their inversions")
    fig.tight_layout()
    return fig


def plot_anonymisation(rows: Iterable[Mapping[str, Any]]) -> Figure:
    """Grouped bars for :func:`anonymisation_table`: both attackers' top-1 and the utility proxy."""
    import matplotlib.pyplot as plt

    keys = ("family", "anonymisation", "condition", "nn_top1", "gmm_top1", "sentence_accuracy")
    rows = _check_rows(rows, keys)
    families = _families(rows)
    fig, axes = plt.subplots(len(families), 1, figsize=(11, 3.6 * len(families)), squeeze=False)
    series = (("gmm_top1", "re-id, GMM-UBM", "#b3261e"),
              ("nn_top1", "re-id, nearest neighbour", "#1a73e8"),
              ("sentence_accuracy", "sentence identified (utility)", "#188038"))
    for ax, family in zip(axes[:, 0], families, strict=True):
        mine = [r for r in rows if r["family"] == family]
        x = np.arange(len(mine))
        for k, (key, label, colour) in enumerate(series):
            ax.bar(x + (k - 1) * 0.26, [float(r[key]) for r in mine], 0.26, label=label,
                   color=colour)
        if "chance" in mine[0]:
            ax.axhline(float(mine[0]["chance"]), color="black", linestyle="--",
                       label="re-id chance")
        ax.set_xticks(x, [textwrap.fill(f"{r['anonymisation']} ({r['condition']})", 24)
                          for r in mine], fontsize=7)
        ax.set_ylim(0, 1.3)
        ax.set_ylabel("accuracy")
        ax.set_title(f"Anonymisation on the {family} voices: privacy against utility")
        ax.legend(fontsize=8, loc="upper center", ncol=4)
    fig.tight_layout()
    return fig
