"""Helpers that let a lesson show an attack and its refusal in one honest line.

:func:`expect_refusal` runs an attack and *requires* it to be refused, so a notebook that stops
proving its control fails the notebook test instead of printing a reassuring sentence. It also
says who refused: real cryptography or AWS behaviour that moto reproduces, or the kit's
emulation of an AWS control that moto does not enforce (:mod:`securepipe.sandbox.gaps`).
"""

from __future__ import annotations

import urllib.error
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError, SSLError

from securepipe.errors import (
    ConsentError,
    DecryptionError,
    EncryptionError,
    InvalidParameterError,
    SecurePipeError,
    SignatureError,
)
from securepipe.sandbox.emulation import EMULATION

#: The mark every refusal made by the kit's emulation carries (see
# :mod:`securepipe.sandbox.emulation`).
EMULATION_MARK = EMULATION

#: Error codes that mean "refused": access denied, expired credentials, an archived object, a
#: ciphertext KMS will not open. Any other AWS error (NoSuchKey, a bad parameter, a dead
#: endpoint) is a bug in the lesson, not a refusal, and is raised.
REFUSAL_CODES = frozenset({
    "AccessDenied", "AccessDeniedException", "ExpiredToken", "ExpiredTokenException",
    "InvalidObjectState", "InvalidCiphertextException",
})
#: The kit's own refusals: a ciphertext that will not open, a plaintext KMS would not encrypt
#: for this caller, a value the kit's validation rejects before any call.
REFUSAL_ERRORS: tuple[type[SecurePipeError], ...] = (
    DecryptionError, EncryptionError, InvalidParameterError, SignatureError, ConsentError)


def expect_refusal(attack: Callable[[], Any], label: str) -> str:
    """Run ``attack``; print and return how it was refused, or raise if it was not.

    Only a real refusal counts (:data:`REFUSAL_CODES`, :data:`REFUSAL_ERRORS`, HTTP 401/403, a
    TLS verification failure); an attack that succeeds raises ``AssertionError`` and any other
    error propagates, so a broken lesson cell cannot pass for a refusal.
    """
    try:
        attack()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") not in REFUSAL_CODES:
            raise
        message = str(error.get("Message", ""))
        origin = ("emulation of AWS by the kit's sandbox" if EMULATION_MARK in message
                  else "refused by the (mocked) AWS API")
        line = f"REFUSED  {label}: {error.get('Code')} ({origin})"
    except urllib.error.HTTPError as exc:  # a plain HTTP client, e.g. fetching a presigned URL
        if exc.code not in (401, 403):
            raise
        body = exc.read().decode("utf-8", "replace")
        origin = ("emulation of AWS by the kit's sandbox" if EMULATION_MARK in body
                  else "refused by the (mocked) AWS API")
        line = f"REFUSED  {label}: HTTP {exc.code} ({origin})"
    except SSLError as exc:
        line = f"REFUSED  {label}: {type(exc).__name__}: {exc}"
    except REFUSAL_ERRORS as exc:
        line = f"REFUSED  {label}: {type(exc).__name__}: {exc}"
        if _emulated_cause(exc):
            line += " (emulation of AWS by the kit's sandbox)"
    else:
        raise AssertionError(f"expected a refusal, but the attack succeeded: {label}")
    print(line)
    return line


def _emulated_cause(exc: BaseException) -> bool:
    """True if a wrapped cause of ``exc`` is a refusal made by the kit's emulation."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ClientError) and EMULATION_MARK in str(
                current.response.get("Error", {}).get("Message", "")):
            return True
        current = current.__cause__ or current.__context__
    return False


def expect_success(attack: Callable[[], Any], label: str) -> Any:
    """Run an attack that the common pattern does *not* stop; print and return its result."""
    result = attack()
    print(f"SUCCEEDED  {label}")
    return result
