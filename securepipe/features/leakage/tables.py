"""The leakage lab's tables and plots: what each stored feature set leaks, and what anonymisation
buys, measured with the attacks in :mod:`securepipe.features.leakage.attacks`.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from securepipe.data.dataset import Manifest, load_audio
from securepipe.errors import InvalidParameterError
from securepipe.features.extract import (
    FeatureSpec,
    extract,
    from_bytes,
    to_bytes,
)
from securepipe.features.leakage.anonymise import mcadams, utterance_seed
from securepipe.features.leakage.attacks import content_features, enrolled_accuracy, sentence_hits
from securepipe.features.leakage.common import (
    DEFAULT_GL_ITER,
    DEFAULT_SPECS,
    MCADAMS_FIXED,
    MCADAMS_RANDOM_RANGE,
    check_coefficient,
    check_range,
)
from securepipe.features.leakage.inversion import invert, log_spectral_distance
from securepipe.features.leakage.pitch import (
    F0Comparison,
    compare_tracks,
    f0_track,
    manifest_f0,
    speaker_f0_error,
)
from securepipe.features.speakerid import embed_audio, embed_matrix, leave_one_out_accuracy
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


def _row(
    features: str,
    attacker_sees: str,
    accuracy: float,
    chance: float,
    n_items: int,
    note: str,
    f0: F0Comparison | None = None,
    f0_speaker_err: Any = None,
) -> dict[str, Any]:
    def num(v: float | None, digits: int = 3) -> float | None:
        return None if v is None or not math.isfinite(v) else round(float(v), digits)

    return {
        "features": features,
        "attacker_sees": attacker_sees,
        "reid_accuracy": round(accuracy, 4),
        "chance": round(chance, 4),
        "x_chance": round(accuracy / chance, 2),
        "f0_corr": None if f0 is None else num(f0.correlation),
        "f0_mae_hz": None if f0 is None else num(f0.mae_hz, 1),
        "voiced_overlap": None if f0 is None else num(f0.voiced_overlap),
        "f0_speaker_err_hz": f0_speaker_err,
        "n_items": n_items,
        "note": note,
    }


def leakage_table(
    manifest: Manifest,
    *,
    specs: Sequence[FeatureSpec] = DEFAULT_SPECS,
    n_iter: int = DEFAULT_GL_ITER,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Re-identification (and pitch) from raw audio, stored matrices and their inversions.

    One row for raw audio, then two per spec: the stored matrix (read back from its blob) and the
    audio Griffin-Lim rebuilds from it (``n_iter`` iterations, seeded with ``seed``, every
    utterance). Accuracy is leave-one-out nearest neighbour over all utterances; ``x_chance`` is
    accuracy / chance. ``f0_*`` compare the inversion's pitch with the original's
    (:func:`compare_f0`); ``f0_speaker_err_hz`` is how far each utterance's median pitch is from
    the speaker's true f0 in the manifest, averaged.
    """
    n_iter = check_int(n_iter, "n_iter", 1, 1000)
    seed = check_int(seed, "seed", 0, 2**32 - 1)
    specs = tuple(specs)
    if not specs or not all(isinstance(s, FeatureSpec) for s in specs):
        raise InvalidParameterError("specs must be a non-empty sequence of FeatureSpec")
    audio, sr, labels = _load(manifest)
    chance = 1.0 / len(set(labels))
    n = len(audio)
    true_f0 = manifest_f0(manifest)
    raw_tracks = [f0_track(y, sr) for y in audio]
    raw = np.vstack([embed_audio(y, sr) for y in audio])
    rows = [
        _row(
            "raw audio",
            "raw audio",
            leave_one_out_accuracy(raw, labels),
            chance,
            n,
            "the recordings step 4 deletes",
            f0_speaker_err=speaker_f0_error(raw_tracks, true_f0),
        )
    ]
    for spec in specs:
        stored = [from_bytes(to_bytes(extract(y, sr, spec), spec)) for y in audio]
        direct = np.vstack([embed_matrix(m) for m, _ in stored])
        rows.append(
            _row(
                spec.name,
                "stored matrix",
                leave_one_out_accuracy(direct, labels),
                chance,
                n,
                "embed_matrix on the matrix read back from its blob",
            )
        )
        rebuilt = [
            invert(m, s, n_iter=n_iter, seed=seed, length=len(y))
            for (m, s), y in zip(stored, audio, strict=True)
        ]
        inverted = np.vstack([embed_audio(r, sr) for r in rebuilt])
        tracks = [f0_track(r, sr) for r in rebuilt]
        rows.append(
            _row(
                spec.name,
                "inverted audio",
                leave_one_out_accuracy(inverted, labels),
                chance,
                n,
                f"Griffin-Lim, {n_iter} iterations, seed {seed}, all {n} utterances",
                f0=compare_tracks(list(zip(raw_tracks, tracks, strict=True))),
                f0_speaker_err=speaker_f0_error(tracks, true_f0),
            )
        )
    return rows


def anonymisation_table(
    manifest: Manifest,
    *,
    fixed: float = MCADAMS_FIXED,
    random_range: tuple[float, float] = MCADAMS_RANDOM_RANGE,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Privacy and utility of McAdams anonymisation: none, a fixed and a random coefficient.

    ``reid_raw_enrolled``: the attacker enrols every raw recording and names the speaker of each
    anonymised one (its own original excluded) -- the realistic threat when enrolment audio
    exists elsewhere (VoicePrivacy's "ignorant" attacker). ``reid_anon_enrolled``: leave-one-out
    among the anonymised recordings, i.e. an attacker who links one person's anonymised
    recordings together (close to VoicePrivacy's "lazy-informed" attacker). Random coefficients
    are drawn per utterance from ``random_range`` with a seed made of ``seed`` and the sample id.
    Utility: :func:`sentence_accuracy` (chance ``sentence_chance``) and
    :func:`log_spectral_distance` against the original.

    The random row is one draw. On the kit's 40-utterance set, seeds 0-7 of U[0.7, 0.9) gave
    ``reid_raw_enrolled`` 0.28-0.40 (fixed 0.8: 0.30) and ``reid_anon_enrolled`` 0.58-0.93, mean
    0.72 (fixed: 0.88); seed 0 is the lowest of those draws. Randomness does not help against
    the raw-enrolled attacker here; it makes recordings somewhat harder to link to each other.
    """
    fixed = check_coefficient(fixed)
    low, high = check_range(random_range)
    seed = check_int(seed, "seed", 0, 2**32 - 1)
    audio, sr, labels = _load(manifest)
    sentences = [utt.sentence_index for utt in manifest.utterances]
    chance = 1.0 / len(set(labels))
    sentence_chance = 1.0 / len(set(sentences))
    raw = np.vstack([embed_audio(y, sr) for y in audio])
    raw_content = [content_features(y, sr) for y in audio]
    conditions: list[tuple[str, float, float, list[np.ndarray]]] = [
        ("none", 1.0, 1.0, list(audio)),
        (
            f"McAdams fixed alpha={fixed:g}",
            fixed,
            fixed,
            [mcadams(y, sr, fixed) for y in audio],
        ),
        (
            f"McAdams random alpha~U[{low:g}, {high:g}) per utterance, seed {seed}",
            low,
            high,
            [
                mcadams(y, sr, (low, high), seed=utterance_seed(seed, utt.sample_id))
                for y, utt in zip(audio, manifest.utterances, strict=True)
            ],
        ),
    ]
    rows = []
    for name, a_low, a_high, anonymised in conditions:
        if name == "none":
            probes, content = raw, raw_content
        else:
            probes = np.vstack([embed_audio(y, sr) for y in anonymised])
            content = [content_features(y, sr) for y in anonymised]
        raw_enrolled = enrolled_accuracy(raw, labels, probes, labels)
        pairs = zip(audio, anonymised, strict=True)
        lsd = (
            0.0
            if name == "none"
            else float(np.mean([log_spectral_distance(o, a, sr) for o, a in pairs]))
        )
        rows.append(
            {
                "anonymisation": name,
                "alpha_low": a_low,
                "alpha_high": a_high,
                "reid_raw_enrolled": round(raw_enrolled, 4),
                "reid_anon_enrolled": round(leave_one_out_accuracy(probes, labels), 4),
                "chance": round(chance, 4),
                "x_chance": round(raw_enrolled / chance, 2),
                "sentence_accuracy": round(
                    sentence_hits(content, raw_content, labels, sentences), 4
                ),
                "sentence_chance": round(sentence_chance, 4),
                "lsd_db": round(lsd, 2),
                "n_items": len(audio),
            }
        )
    return rows


def _check_rows(rows: Any, keys: tuple[str, ...]) -> list[Mapping[str, Any]]:
    rows = list(rows)
    if not rows or not all(isinstance(r, Mapping) and all(k in r for k in keys) for r in rows):
        raise InvalidParameterError(f"rows must be a non-empty list of dicts with {keys}")
    return rows


def plot_leakage(rows: Iterable[Mapping[str, Any]]) -> Figure:
    """Bars of re-identification accuracy per row of :func:`leakage_table`, chance marked."""
    import matplotlib.pyplot as plt

    rows = _check_rows(rows, ("features", "attacker_sees", "reid_accuracy", "chance"))
    labels = [f"{r['features']}\n{r['attacker_sees']}" for r in rows]
    colours = {"raw audio": "#5f6368", "stored matrix": "#1a73e8", "inverted audio": "#b3261e"}
    fig, (ax, ax_f0) = plt.subplots(
        1, 2, figsize=(12, 0.45 * len(rows) + 1.8), gridspec_kw={"width_ratios": [3, 2]}
    )
    pos = np.arange(len(rows))[::-1]
    acc = [float(r["reid_accuracy"]) for r in rows]
    ax.barh(pos, acc, color=[colours.get(r["attacker_sees"], "#888888") for r in rows])
    ax.axvline(float(rows[0]["chance"]), color="black", linestyle="--", label="chance")
    for p, a in zip(pos, acc, strict=True):
        ax.text(min(a + 0.01, 0.9), p, f"{a:.2f}", va="center", fontsize=8)
    ax.set_yticks(pos, labels, fontsize=8)
    ax.set_xlim(0, 1.05)
    ax.set_xlabel("speaker re-identification accuracy (leave-one-out)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Who is speaking? Raw audio vs stored features")
    f0 = [r.get("f0_corr") for r in rows]
    ax_f0.barh(pos, [v if v is not None else 0.0 for v in f0], color="#b3261e")
    for p, v in zip(pos, f0, strict=True):
        ax_f0.text(0.01, p, "n/a" if v is None else f"{v:.2f}", va="center", fontsize=8)
    ax_f0.set_yticks(pos, [""] * len(rows))
    ax_f0.set_xlim(0, 1.05)
    ax_f0.set_xlabel("f0 correlation, original vs inverted")
    ax_f0.set_title("Does the pitch survive inversion?")
    fig.tight_layout()
    return fig


def plot_anonymisation(rows: Iterable[Mapping[str, Any]]) -> Figure:
    """Grouped bars for :func:`anonymisation_table`: two attackers and the utility proxy."""
    import matplotlib.pyplot as plt

    keys = ("anonymisation", "reid_raw_enrolled", "reid_anon_enrolled", "sentence_accuracy")
    rows = _check_rows(rows, keys)
    series = [
        ("reid_raw_enrolled", "re-id, attacker enrolled on raw audio", "#b3261e"),
        ("reid_anon_enrolled", "re-id, attacker links anonymised audio", "#f29900"),
        ("sentence_accuracy", "sentence identified (utility)", "#188038"),
    ]
    fig, ax = plt.subplots(figsize=(10, 4))
    x = np.arange(len(rows))
    width = 0.26
    for k, (key, label, colour) in enumerate(series):
        values = [float(r[key]) for r in rows]
        ax.bar(x + (k - 1) * width, values, width, label=label, color=colour)
    if "chance" in rows[0]:
        ax.axhline(float(rows[0]["chance"]), color="black", linestyle="--", label="re-id chance")
    ax.set_xticks(x, [textwrap.fill(str(r["anonymisation"]), 26) for r in rows], fontsize=8)
    ax.set_ylim(0, 1.3)
    ax.set_ylabel("accuracy")
    ax.set_title("McAdams anonymisation: privacy against utility")
    ax.legend(fontsize=8, loc="upper center", ncol=2)
    fig.tight_layout()
    return fig
