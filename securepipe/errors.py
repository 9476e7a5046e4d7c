"""The kit's one exception hierarchy.

Every error the package raises on purpose derives from :class:`SecurePipeError`, so a caller can
catch the kit's refusals in one place and let programming errors through. Modelled on
pyca/cryptography and the AWS Encryption SDK: flat, typed, and opaque where detail would help an
attacker (decryption failures collapse into one :class:`DecryptionError`).
"""

from __future__ import annotations

from typing import Any


class SecurePipeError(Exception):
    """Root of every error the kit raises on purpose."""


class InvalidParameterError(SecurePipeError, ValueError):
    """A caller passed a value outside its documented range (checked before any work starts)."""


class SandboxError(SecurePipeError):
    """The moto-backed sandbox account could not be created, reached or closed."""


class DatasetError(SecurePipeError):
    """The synthetic voice set or its manifest is missing, malformed or fails its digests."""


class DecryptionError(SecurePipeError):
    """A ciphertext could not be decrypted.

    Deliberately opaque, like Fernet's ``InvalidToken``: tampering, truncation, a wrong key, a
    ciphertext moved to another contractor or sample, or a context mismatch all raise this one
    error with the same message, so the error never tells an attacker which check failed.
    """

    def __init__(self, message: str = "ciphertext could not be decrypted") -> None:
        super().__init__(message)


class SignatureError(SecurePipeError):
    """A signature did not verify, or the key offered to verify it is not the pinned key.

    Opaque like :class:`DecryptionError`: a forged, truncated or foreign signature all raise it.
    """

    def __init__(self, message: str = "signature did not verify") -> None:
        super().__init__(message)


class EncryptionError(SecurePipeError):
    """A plaintext could not be encrypted (for example, KMS refused to generate a data key).

    Unlike :class:`DecryptionError` it may say why: the caller holds the plaintext already.
    Nothing is left at the destination.
    """


class InvalidAudioError(SecurePipeError):
    """An uploaded recording failed validation; ``reason`` is a short code for reports."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class IngestError(SecurePipeError):
    """The ingest pipeline could not finish a sample; nothing was deleted, a re-run resumes."""


class MalformedEventError(SecurePipeError, ValueError):
    """An event (or column) the detector cannot use; ``index`` says which (``None``: whole)."""

    def __init__(self, index: int | None, reason: str) -> None:
        self.index = index
        self.reason = reason
        where = "columns" if index is None else f"event {index}"
        super().__init__(f"{where}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.index, self.reason)  # picklable, e.g. across a process pool


class LogFileError(MalformedEventError):
    """A CloudTrail log file that cannot be read; ``key`` names it (``None``: not known)."""

    def __init__(self, key: str | None, reason: str) -> None:
        super().__init__(None, reason)
        self.key = key
        self.args = (f"{key or 'log file'}: {reason}",)

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.key, self.reason)


class UnknownSpeakerError(SecurePipeError, LookupError):
    """The consent registry has no record of this speaker (nothing was changed)."""


class ErasureError(SecurePipeError):
    """An erasure could not finish (an S3 or registry error); re-run it to resume.

    What was deleted before the failure stays recorded in the registry's erasure journal, so the
    re-run's receipt still lists it; other speakers are never touched.
    """


class RetentionError(SecurePipeError):
    """Listing or reading a bucket's object versions for retention or erasure failed (other than
    the version being gone, which is simply skipped); the message names the bucket and key."""


class JournalRollbackError(ErasureError):
    """A resumed erasure found its journal older than a signed head already anchored outside the
    registry (a rollback or replay of the registry item); nothing was deleted."""


class ErasureInProgressError(ErasureError):
    """Another run holds the speaker's erasure lease (one erasure of a speaker at a time), or
    this run lost its lease to another run after it expired; nothing more was deleted.

    ``speaker`` names the speaker, ``lease_until`` (ISO timestamp, ``None`` if unknown) when the
    other run's lease ends: re-run after it (a crashed run's lease simply expires).
    """

    def __init__(self, speaker: str, lease_until: str | None, detail: str = "") -> None:
        self.speaker = speaker
        self.lease_until = lease_until
        self.detail = detail
        super().__init__(f"another erasure of {speaker!r} holds its lease until "
                         f"{lease_until or 'an unknown time'}"
                         + (f": {detail}" if detail else ""))

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.speaker, self.lease_until, self.detail)


class ConsentError(SecurePipeError):
    """Consent does not cover this write: the speaker withdrew, was erased, their term ended,
    or the registry has no record of them. ``speaker`` names them, ``reason`` is a short code
    (``withdrawn``, ``erased``, ``expired``, ``unknown``, ...). Nothing was written."""

    def __init__(self, speaker: str | None, reason: str, detail: str = "") -> None:
        self.speaker = speaker
        self.reason = reason
        self.detail = detail
        super().__init__(f"speaker {speaker!r}: consent refuses the write ({reason})"
                         + (f": {detail}" if detail else ""))

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.speaker, self.reason, self.detail)


class ConsentRecordError(SecurePipeError, ValueError):
    """A consent item in the registry is malformed; ``speaker`` and ``field`` name it."""

    def __init__(self, speaker: str | None, field: str, detail: str) -> None:
        self.speaker = speaker
        self.field = field
        self.detail = detail
        super().__init__(f"consent record of {speaker!r}: field {field!r} {detail}")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.speaker, self.field, self.detail)


class ProvisioningConflictError(SecurePipeError):
    """The account already holds resources that conflict with the layout; nothing was changed.

    ``conflicts`` lists each one (what, and why it conflicts).
    """

    def __init__(self, conflicts: list[str]) -> None:
        self.conflicts = list(conflicts)
        super().__init__(f"{len(self.conflicts)} conflict(s), nothing changed: "
                         + "; ".join(self.conflicts))
