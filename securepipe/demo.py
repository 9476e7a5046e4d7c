"""Helpers that let a lesson show an attack and its refusal in one honest line.

:func:`expect_refusal` runs an attack and *requires* it to be refused, so a notebook that stops
proving its control fails the notebook test instead of printing a reassuring sentence. It also
says who refused: real cryptography or AWS behaviour that moto reproduces, or the kit's
emulation of an AWS control that moto does not enforce (:mod:`securepipe.moto_gaps`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from securepipe.errors import SecurePipeError

EMULATION_MARK = "emulated AWS enforcement"


def expect_refusal(attack: Callable[[], Any], label: str) -> str:
    """Run ``attack``; print and return how it was refused, or raise if it succeeded."""
    try:
        attack()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        message = str(error.get("Message", ""))
        origin = ("emulation of AWS by the kit's sandbox" if EMULATION_MARK in message
                  else "refused by the (mocked) AWS API")
        line = f"REFUSED  {label}: {error.get('Code')} ({origin})"
    except (SecurePipeError, BotoCoreError) as exc:
        line = f"REFUSED  {label}: {type(exc).__name__}: {exc}"
    else:
        raise AssertionError(f"expected a refusal, but the attack succeeded: {label}")
    print(line)
    return line


def expect_success(attack: Callable[[], Any], label: str) -> Any:
    """Run an attack that the common pattern does *not* stop; print and return its result."""
    result = attack()
    print(f"SUCCEEDED  {label}")
    return result
