"""Asymmetric signatures with a KMS key: sign with ``kms:Sign``, verify with the public key alone.

A verifier that needs a secret to verify can also forge (an HMAC key verifies and signs alike).
With an asymmetric KMS key (``KeyUsage=SIGN_VERIFY``, ``ECC_NIST_P256``) only a principal allowed
``kms:Sign`` can produce a signature; anyone holding the public key, fetched once with
``kms:GetPublicKey`` or pinned as PEM, can check one offline with pyca/cryptography. This is the
shape of CloudTrail's own log-file integrity validation (digest files signed by a key only
CloudTrail holds, verified with its public key).

The kit signs the 32-byte SHA-256 digest of the content, sent to KMS as a ``RAW`` message that
KMS hashes once more under ``ECDSA_SHA_256``; so a message of any length costs one small KMS call,
and AWS and the sandbox agree (moto ignores ``MessageType=DIGEST`` and hashes the digest again:
gap ``kms-sign-digest``). Verification failures collapse into one opaque
:class:`~securepipe.errors.SignatureError`.

ECDSA signatures are malleable: ``(r, s)`` and ``(r, n - s)`` both verify, and base64 text can be
spelled several ways. So that a signed line has exactly one valid byte form, the kit's signer
normalises every signature to low ``s`` in minimal DER, and the verifier accepts only that form
and only canonical base64 (:func:`signature_from_text`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any

import boto3
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from securepipe.clients import shared_client
from securepipe.errors import InvalidParameterError, SignatureError
from securepipe.ids import validate_kms_key_arn

__all__ = [
    "KEY_SPEC",
    "SIGNING_ALGORITHM",
    "KmsSigner",
    "PublicKeyVerifier",
    "create_signing_key",
    "signature_from_text",
    "signature_to_text",
]

#: The order of the P-256 group; a canonical signature has s <= N // 2.
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _low_s(signature: bytes) -> bytes:
    """The same signature with s <= n/2, in minimal DER (both forms verify; this one is unique)."""
    r, s = decode_dss_signature(signature)
    if s > _P256_ORDER // 2:
        s = _P256_ORDER - s
    return encode_dss_signature(r, s)


def _canonical(signature: bytes) -> bool:
    try:
        r, s = decode_dss_signature(signature)
    except ValueError:
        return False
    return 0 < s <= _P256_ORDER // 2 and encode_dss_signature(r, s) == signature


def signature_to_text(signature: bytes) -> str:
    """A signature as base64 text (the one spelling :func:`signature_from_text` accepts)."""
    return base64.b64encode(signature).decode("ascii")


def signature_from_text(text: object) -> bytes:
    """Decode base64 signature text; :class:`SignatureError` unless it is the canonical spelling."""
    if not isinstance(text, str) or not text.isascii():
        raise SignatureError()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError() from None
    if signature_to_text(raw) != text:
        raise SignatureError()
    return raw

#: The key spec and algorithm the kit signs with (P-256 ECDSA over SHA-256).
KEY_SPEC = "ECC_NIST_P256"
SIGNING_ALGORITHM = "ECDSA_SHA_256"


def _digest(message: bytes) -> bytes:
    if not isinstance(message, bytes | bytearray | memoryview):
        raise InvalidParameterError("the message to sign or verify must be bytes")
    return hashlib.sha256(message).digest()


def create_signing_key(session: boto3.Session, *, description: str) -> str:
    """Create an ``ECC_NIST_P256`` ``SIGN_VERIFY`` customer-managed key; return its ARN.

    Wraps KMS CreateKey: https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateKey.html
    """
    if not isinstance(description, str) or not description:
        raise InvalidParameterError("description must be a non-empty string")
    meta = session.client("kms").create_key(
        Description=description, KeyUsage="SIGN_VERIFY", KeySpec=KEY_SPEC
    )["KeyMetadata"]
    return str(meta["Arn"])


@dataclass(frozen=True)
class KmsSigner:
    """Signs with a KMS asymmetric key; the caller needs ``kms:Sign`` on ``key_arn``.

    Wraps KMS Sign: https://docs.aws.amazon.com/kms/latest/APIReference/API_Sign.html
    """

    session: boto3.Session
    key_arn: str

    def __post_init__(self) -> None:
        validate_kms_key_arn(self.key_arn)
        if not hasattr(self.session, "client"):
            raise InvalidParameterError("session must be a boto3.Session")

    def sign(self, message: bytes) -> bytes:
        """A DER-encoded ECDSA signature for ``message`` (over its SHA-256 digest): one KMS call."""
        return self.sign_digest(_digest(message))

    def sign_digest(self, digest: bytes) -> bytes:
        """A DER-encoded ECDSA_SHA_256 signature whose message is the 32-byte ``digest``."""
        if not isinstance(digest, bytes) or len(digest) != 32:
            raise InvalidParameterError("digest must be 32 bytes (SHA-256)")
        out = shared_client(self.session, "kms").sign(
            KeyId=self.key_arn,
            Message=digest,
            MessageType="RAW",
            SigningAlgorithm=SIGNING_ALGORITHM,
        )
        return _low_s(bytes(out["Signature"]))


@dataclass(frozen=True)
class PublicKeyVerifier:
    """Verifies signatures offline with a public key pinned to a key ARN; holds nothing that signs.

    Build it with :meth:`from_kms` (one ``kms:GetPublicKey`` call,
    https://docs.aws.amazon.com/kms/latest/APIReference/API_GetPublicKey.html) or :meth:`from_pem`.
    """

    key_arn: str
    public_key: ec.EllipticCurvePublicKey

    def __post_init__(self) -> None:
        validate_kms_key_arn(self.key_arn)
        if not isinstance(self.public_key, ec.EllipticCurvePublicKey) or not isinstance(
            self.public_key.curve, ec.SECP256R1
        ):
            raise InvalidParameterError("the public key must be a P-256 (ECC_NIST_P256) key")

    @classmethod
    def from_kms(cls, session: boto3.Session, key_arn: str) -> PublicKeyVerifier:
        """Fetch the public key of ``key_arn`` and check it is the pinned key and a signing key."""
        validate_kms_key_arn(key_arn)
        out: dict[str, Any] = shared_client(session, "kms").get_public_key(KeyId=key_arn)
        # AWS answers with the key ARN; moto with the bare key id (gap kms-get-public-key-id),
        # which is accepted only as the pinned ARN's own id.
        if out.get("KeyId") not in (key_arn, key_arn.rsplit("/", 1)[-1]):
            raise SignatureError("the public key returned is not the pinned key's")
        if out.get("KeyUsage") != "SIGN_VERIFY" or SIGNING_ALGORITHM not in out.get(
            "SigningAlgorithms", []
        ):
            raise SignatureError("the pinned key is not an ECDSA_SHA_256 signing key")
        return cls.from_der(bytes(out["PublicKey"]), key_arn)

    @classmethod
    def from_der(cls, der: bytes, key_arn: str) -> PublicKeyVerifier:
        """From a DER SubjectPublicKeyInfo (what GetPublicKey returns)."""
        try:
            key = serialization.load_der_public_key(der)
        except (ValueError, TypeError):
            raise InvalidParameterError("not a DER public key") from None
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise InvalidParameterError("the public key must be a P-256 (ECC_NIST_P256) key")
        return cls(key_arn, key)

    @classmethod
    def from_pem(cls, pem: bytes | str, key_arn: str) -> PublicKeyVerifier:
        """From a pinned PEM public key (:attr:`pem`), with the key ARN it belongs to."""
        data = pem.encode() if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, TypeError):
            raise InvalidParameterError("not a PEM public key") from None
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise InvalidParameterError("the public key must be a P-256 (ECC_NIST_P256) key")
        return cls(key_arn, key)

    @property
    def pem(self) -> str:
        """The public key as PEM, to pin beside the key ARN."""
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def verify(self, message: bytes, signature: bytes) -> None:
        """Raise :class:`SignatureError` unless ``signature`` is this key's over ``message``."""
        self.verify_digest(_digest(message), signature)

    def verify_digest(self, digest: bytes, signature: bytes) -> None:
        """Raise :class:`SignatureError` unless ``signature`` is this key's over ``digest``."""
        if not isinstance(signature, bytes) or not isinstance(digest, bytes) or len(digest) != 32:
            raise SignatureError()
        if not _canonical(signature):  # a malleated (high-s, non-minimal DER) twin
            raise SignatureError()
        try:
            self.public_key.verify(
                signature, digest, ec.ECDSA(hashes.SHA256())
            )
        except (InvalidSignature, ValueError):
            raise SignatureError() from None
