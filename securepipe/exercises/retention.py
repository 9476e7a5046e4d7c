"""Lesson 05's exercises: lifecycle rules and where erased data hides."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from securepipe.exercises.base import Exercise

#: The rules exercise 05-never-expires asks about (shown in the lesson's exercise cell).
LIFECYCLE_RULES: list[dict[str, Any]] = [
    {"ID": "a-raw-7d", "Status": "Enabled", "Filter": {"Prefix": "raw/"},
     "Expiration": {"Days": 7}, "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
    {"ID": "b-transition-only", "Status": "Enabled", "Filter": {"Prefix": "features/"},
     "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}]},
    {"ID": "c-far-date", "Status": "Enabled", "Filter": {"Prefix": "features/"},
     "Expiration": {"Date": "2999-01-01T00:00:00Z"}},
    {"ID": "d-disabled", "Status": "Disabled", "Filter": {"Prefix": "raw/"},
     "Expiration": {"Days": 1}},
    {"ID": "e-features-3y", "Status": "Enabled", "Filter": {"Prefix": "features/"},
     "Expiration": {"Days": 1095}, "NoncurrentVersionExpiration": {"NoncurrentDays": 30}},
    {"ID": "f-current-only", "Status": "Enabled", "Filter": {"Prefix": "archive/"},
     "Expiration": {"Days": 365}},
]


def _expires_within(rule: Mapping[str, Any], days: int, today: dt.date) -> bool:
    """True if an enabled rule deletes current versions within ``days`` of their creation."""
    if rule.get("Status") != "Enabled":
        return False
    exp = rule.get("Expiration") or {}
    if "Days" in exp:
        return int(exp["Days"]) <= days
    if "Date" in exp:
        date = dt.date.fromisoformat(str(exp["Date"])[:10])
        return (date - today).days <= days
    return False


def _never_starter() -> set[str]:
    return {"c-far-date"}


def _never_judge(answer: Any) -> list[str]:
    if not isinstance(answer, set | frozenset):
        return [f"answer with a set of rule IDs from {[r['ID'] for r in LIFECYCLE_RULES]}"]
    today = dt.date(2026, 12, 6)
    truth = {r["ID"] for r in LIFECYCLE_RULES if not _expires_within(r, 1095, today)}
    ids = {r["ID"] for r in LIFECYCLE_RULES}
    out = [f"{a!r} is not a rule ID" for a in sorted(answer - ids)]
    out += [f"{a!r} does expire current versions within BIPA's 3 years" for a in
            sorted((answer & ids) - truth)]
    out += [f"{a!r} never deletes current versions within 3 years: look at Status, "
            "Expiration and transitions" for a in sorted(truth - answer)]
    return out


_HIDING = {
    "noncurrent-versions": True,
    "delete-marker-hidden-versions": True,
    "unfinished-multipart-uploads": True,
    "archive-copies": True,
    "key-registry-backups": True,
    "the-delete-marker-itself": False,
}


def _hiding_starter() -> set[str]:
    return {"noncurrent-versions"}


def _hiding_judge(answer: Any) -> list[str]:
    if not isinstance(answer, set | frozenset):
        return [f"answer with a set drawn from {sorted(_HIDING)}"]
    truth = {k for k, v in _HIDING.items() if v}
    out = [f"{a!r} is not one of the options" for a in sorted(answer - set(_HIDING))]
    out += [f"{a!r} holds no recording" for a in sorted((answer & set(_HIDING)) - truth)]
    out += [f"{a!r} can still hold (or restore) the speaker's data after a plain DELETE"
            for a in sorted(truth - answer)]
    return out


EXERCISES: tuple[Exercise, ...] = (
    Exercise("05-never-expires", "05", "Which of these lifecycle rules never delete current "
             "versions within BIPA's 3 years? The rules are "
             "securepipe.exercises.retention.LIFECYCLE_RULES. Answer a set of rule IDs (today "
             "is 2026-12-06).",
             _never_starter, _never_judge),
    Exercise("05-where-data-hides", "05", "In a versioned bucket, after a plain DELETE of a "
             "speaker's object, where can their data still be? Answer a set from: "
             f"{', '.join(_HIDING)}.",
             _hiding_starter, _hiding_judge),
)
