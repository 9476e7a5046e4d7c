"""Every exercise's checker fails on its starting value and passes on its kept-apart solution."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from securepipe.errors import InvalidParameterError
from securepipe.exercises import EXERCISES, check, problems, show

SOLUTIONS = Path(__file__).resolve().parents[1] / "notebooks" / "solutions"


def test_every_exercise_has_a_solution_and_every_solution_an_exercise() -> None:
    assert {p.stem for p in SOLUTIONS.glob("*.py")} == set(EXERCISES)


def test_every_lesson_has_exercises() -> None:
    lessons = {e.lesson for e in EXERCISES.values()}
    assert lessons == {"00", "01", "02", "03", "04", "05", "06"}


@pytest.mark.parametrize("exercise_id", sorted(EXERCISES))
def test_checker_fails_the_start_and_passes_the_solution(exercise_id: str, capsys) -> None:
    start = show(exercise_id)
    assert exercise_id in capsys.readouterr().out
    assert problems(exercise_id, start), "the starting value must not already be a solution"
    assert check(exercise_id, start) is False
    answer = runpy.run_path(str(SOLUTIONS / f"{exercise_id}.py"))["answer"]
    assert problems(exercise_id, answer) == []
    assert check(exercise_id, answer) is True
    assert "solved" in capsys.readouterr().out


@pytest.mark.parametrize("exercise_id", sorted(EXERCISES))
def test_checker_survives_any_wrong_type(exercise_id: str) -> None:
    for junk in (None, 3, "x", [], {}, object()):
        assert isinstance(problems(exercise_id, junk), list)


def test_the_policy_checker_names_each_leak() -> None:
    start = show("02-leaky-session-policy")
    found = "\n".join(problems("02-leaky-session-policy", start))
    assert "c02's recording" in found and "prefix 'raw/'" in found and "decrypt" in found


def test_unknown_exercise_is_a_typed_error() -> None:
    with pytest.raises(InvalidParameterError):
        show("99-nope")
