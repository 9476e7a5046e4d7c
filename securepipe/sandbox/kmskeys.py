"""Speed only: moto's KMS makes a key's private key when it is first used, not at CreateKey.

moto gives every key it creates a private key, symmetric keys included (its
``generate_private_key`` falls back to RSA-2048 for ``SYMMETRIC_DEFAULT``), and only ever uses
it for Sign, Verify and GetPublicKey. Generating the RSA key costs about 0.13 s on the 2-core
build machine, twice per sandbox (its two symmetric keys) and again for every symmetric key a
lesson or test creates. While a sandbox is open, :func:`defer_private_keys` makes moto's call
return a stand-in that generates the same kind of key, by moto's own function, on first
attribute access; nothing moto answers changes.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_saved: Any = None


class DeferredPrivateKey:
    """moto's private key for ``key_spec``, generated on first use by moto's own function."""

    __slots__ = ("_generate", "_key", "_key_spec", "_lock")

    def __init__(self, generate: Any, key_spec: str) -> None:
        self._generate = generate
        self._key_spec = key_spec
        self._key: Any = None
        self._lock = threading.Lock()

    @property
    def generated(self) -> bool:
        return self._key is not None

    def _real(self) -> Any:
        with self._lock:
            if self._key is None:
                self._key = self._generate(self._key_spec)
            return self._key

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._real(), name)


def defer_private_keys() -> None:
    """Patch ``moto.kms.models.generate_private_key`` (restored by :func:`restore`)."""
    global _saved
    import moto.kms.models as kms_models

    with _lock:
        if _saved is not None:
            return
        _saved = kms_models.generate_private_key
        original = _saved

        def _deferred(key_spec: str) -> DeferredPrivateKey:
            return DeferredPrivateKey(original, key_spec)

        kms_models.generate_private_key = _deferred  # type: ignore[assignment]


def restore() -> None:
    """Undo :func:`defer_private_keys`."""
    global _saved
    with _lock:
        if _saved is None:
            return
        import moto.kms.models as kms_models

        kms_models.generate_private_key = _saved
        _saved = None
