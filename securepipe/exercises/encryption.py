"""Lesson 01's exercises: binding a ciphertext to its context."""

from __future__ import annotations

from typing import Any

from securepipe.exercises.base import Exercise


def _context_starter() -> dict[str, str]:
    return {"contractor": "c07", "sample_id": "spk03_u2"}


def _context_judge(answer: Any) -> list[str]:
    from securepipe.encryption.envelope import SampleContext

    if not isinstance(answer, SampleContext):
        return ["build a securepipe.encryption.SampleContext (a dict binds nothing: it is not "
                "checked and the SDK would accept any keys)"]
    want = {"contractor": "c07", "sample_id": "spk03_u2", "purpose": "speech-model-training"}
    got = {"contractor": answer.contractor, "sample_id": answer.sample_id,
           "purpose": answer.purpose}
    return [f"{k} is {got[k]!r}; the recording is {v!r}" for k, v in want.items() if got[k] != v]


def _moved_starter() -> set[str]:
    return set()


_MOVES = {
    "copied-to-c02-folder": True,   # the context names c01; a c02 reader asks for c02's
    "renamed-sample-id": True,      # the sample id is in the context
    "purpose-changed": True,        # purpose too
    "same-key-same-context": False,  # nothing changed: it decrypts
    "re-uploaded-by-c01": False,    # c01 uploading its own sample again decrypts for c01
}


def _moved_judge(answer: Any) -> list[str]:
    if not isinstance(answer, set | frozenset):
        return [f"answer with a set drawn from {sorted(_MOVES)}"]
    out = [f"{a!r} is not one of the cases" for a in sorted(answer - set(_MOVES))]
    refused = {k for k, v in _MOVES.items() if v}
    out += [f"{a!r} still decrypts: its encryption context did not change" for a in
            sorted((answer & set(_MOVES)) - refused)]
    out += [f"{a!r} is refused too: which field of the context changed?" for a in
            sorted(refused - answer)]
    return out


EXERCISES: tuple[Exercise, ...] = (
    Exercise("01-bind-the-context", "01", "Contractor c07 uploads sample spk03_u2 for speech "
             "model training. Build the SampleContext that binds its ciphertext.",
             _context_starter, _context_judge),
    Exercise("01-what-refuses", "01", "A sample was encrypted bound to c01. Which of these "
             "changes make decryption refuse? Answer a set of case names from: "
             f"{', '.join(_MOVES)}.",
             _moved_starter, _moved_judge),
)
