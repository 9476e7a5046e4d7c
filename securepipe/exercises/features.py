"""Lesson 04's exercises: what still identifies a speaker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from securepipe.exercises.base import Exercise

_BIOMETRIC = {
    "raw-wav": True,
    "mel-spectrogram": True,
    "mfcc-13": True,
    "speaker-embedding": True,
    "transcript-text": False,
    "clip-duration-seconds": False,
}


def _biometric_starter() -> set[str]:
    return {"raw-wav"}


def _biometric_judge(answer: Any) -> list[str]:
    if not isinstance(answer, set | frozenset):
        return [f"answer with a set drawn from {sorted(_BIOMETRIC)}"]
    truth = {k for k, v in _BIOMETRIC.items() if v}
    out = [f"{a!r} is not one of the options" for a in sorted(answer - set(_BIOMETRIC))]
    out += [f"{a!r} does not identify a speaker by their voice" for a in
            sorted((answer & set(_BIOMETRIC)) - truth)]
    out += [f"{a!r} still identifies speakers: the leakage lab re-identifies from it" for a in
            sorted(truth - answer)]
    return out


#: ``anonymisation_table`` on the held-out voice family (``securepipe.data.heldout``), as
#: lesson 04 measured it on 2026-12-07 (seed 0, attacker seed 1): top-1 accuracy of the GMM-UBM
#: and nearest-neighbour attackers over 10 speakers. Kept here so the exercise runs in a
#: second; the lesson recomputes it.
_ANON_ROWS: tuple[dict[str, Any], ...] = tuple(
    {"anonymisation": a, "condition": c, "chance": 0.1, "gmm_top1": g, "nn_top1": n}
    for a, c, g, n in (
        ("none", "raw enrolled", 0.9, 0.65),
        ("McAdams alpha=0.8", "ignorant", 0.325, 0.5),
        ("McAdams alpha=0.8", "lazy-informed", 0.85, 0.675),
        ("McAdams alpha~U[0.7, 0.9) per utterance", "ignorant", 0.3, 0.475),
        ("McAdams alpha~U[0.7, 0.9) per utterance", "lazy-informed", 0.6, 0.55),
        ("pitch +-2-5 st & formants x(1+-0.08-0.18) per speaker", "ignorant", 0.2, 0.375),
        ("pitch +-2-5 st & formants x(1+-0.08-0.18) per speaker", "lazy-informed", 0.125,
         0.175),
    ))
#: An attacker who names the right speaker this many times more often than chance identifies.
_IDENTIFIES_X_CHANCE = 3.0


def _anon_starter() -> dict[str, Any]:
    return {"rows": [dict(r) for r in _ANON_ROWS], "still_identifies": set()}


def _anon_judge(answer: Any) -> list[str]:
    return anonymisation_problems(_ANON_ROWS, answer)


def anonymisation_problems(rows: Sequence[Mapping[str, Any]], answer: Any) -> list[str]:
    """What is still wrong with ``answer`` to 04-anonymisation-leaks, judged on ``rows`` (the
    exercise's table, or the lab's own)."""
    got = answer.get("still_identifies") if isinstance(answer, Mapping) else None
    settings = {r["anonymisation"] for r in rows} - {"none"}
    if not isinstance(got, set | frozenset):
        return [f"set answer['still_identifies'] to a set of settings from {sorted(settings)}"]
    informed = {r["anonymisation"]: max(r["gmm_top1"], r["nn_top1"]) / r["chance"]
                for r in rows if r["condition"] == "lazy-informed"}
    truth = {a for a, x in informed.items() if x >= _IDENTIFIES_X_CHANCE}
    out = [f"{a!r} is not a setting in the table" for a in sorted(got - settings)]
    out += [f"{a!r}: the stronger attacker reaches only {informed[a]:.1f}x chance when it "
            "anonymises its own enrolment the same way" for a in sorted((got & settings) - truth)]
    missing = truth - got
    if missing:
        out.append(f"{len(missing)} more setting(s) still identify: read the lazy-informed rows "
                   "(the attacker anonymises its enrolment recordings too), not the ignorant ones")
    return out


EXERCISES: tuple[Exercise, ...] = (
    Exercise("04-still-biometric", "04", "Which of these stored forms still identify a "
             "speaker (biometric data under GDPR Art. 9 and BIPA)? Answer a set from: "
             f"{', '.join(_BIOMETRIC)}.",
             _biometric_starter, _biometric_judge),
    Exercise("04-anonymisation-leaks", "04", "From lesson 04's anonymisation table "
             "(answer['rows']), which settings still let an attacker name the speaker at least "
             "3 times as often as chance? Put them in answer['still_identifies'].",
             _anon_starter, _anon_judge),
)
