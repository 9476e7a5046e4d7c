"""Workshop exercises: two or three per lesson, each with a checker that says what is still wrong.

A lesson ends with its exercises. In a cell, :func:`show` prints the task and returns the
starting value; the attendee edits it and calls :func:`check`, which prints what is still wrong
(or that it is solved) and never raises, so a class can run the notebook top to bottom. The
solutions live apart, in ``notebooks/solutions/<exercise id>.py`` (each defines ``answer``), and the
test suite runs every checker against its starting value (it must fail) and its solution (it must
pass).

Checkers judge with the kit's own code where the kit has it (the IAM evaluator for policies, the
id validators, the gap register, the scorecard's registry), so an exercise cannot drift from what
the kit teaches.

Each lesson's exercises live in a module of their own (``welcome`` for 00, ``encryption``,
``access``, ``audit`` for 03 and 03b, ``features``, ``retention``, ``checklist``).
"""

from __future__ import annotations

from typing import Any

from securepipe.errors import InvalidParameterError
from securepipe.exercises import access, audit, checklist, encryption, features, retention, welcome
from securepipe.exercises.base import Exercise

__all__ = ["EXERCISES", "Exercise", "check", "problems", "show"]

EXERCISES: dict[str, Exercise] = {
    e.id: e for module in (welcome, encryption, access, audit, features, retention, checklist)
    for e in module.EXERCISES
}


def _get(exercise_id: str) -> Exercise:
    try:
        return EXERCISES[exercise_id]
    except (KeyError, TypeError):
        raise InvalidParameterError(f"no exercise {exercise_id!r}; see EXERCISES") from None


def show(exercise_id: str) -> Any:
    """Print the task and return a fresh starting value to edit."""
    exercise = _get(exercise_id)
    print(f"Exercise {exercise.id}: {exercise.task}")
    return exercise.starter()


def problems(exercise_id: str, answer: Any) -> list[str]:
    """What is still wrong with ``answer`` (empty when solved)."""
    return _get(exercise_id).judge(answer)


def check(exercise_id: str, answer: Any) -> bool:
    """Print what is still wrong with ``answer`` (or that it is solved); True when solved."""
    wrong = problems(exercise_id, answer)
    if not wrong:
        print(f"{exercise_id}: solved")
        return True
    print(f"{exercise_id}: not yet")
    for line in wrong:
        print(f"  - {line}")
    return False
