"""KMS asymmetric signing: signatures made with kms:Sign verify offline with the public key only,
and nothing a verifier holds can produce one."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from securepipe.encryption.signing import KmsSigner, PublicKeyVerifier, create_signing_key
from securepipe.errors import InvalidParameterError, SignatureError
from securepipe.sandbox import Sandbox


@pytest.fixture(scope="module")
def kit():
    with Sandbox() as sb:
        arn = sb.resources.signing_key_arn
        yield sb, KmsSigner(sb.session, arn), PublicKeyVerifier.from_kms(sb.session, arn)


def test_round_trip_and_pinned_pem(kit) -> None:
    _sb, signer, verifier = kit
    sig = signer.sign(b"checkpoint 1")
    verifier.verify(b"checkpoint 1", sig)
    pinned = PublicKeyVerifier.from_pem(verifier.pem, signer.key_arn)
    pinned.verify(b"checkpoint 1", sig)


@settings(max_examples=25, deadline=None)
@given(message=st.binary(max_size=256), flip=st.integers(min_value=0, max_value=10_000))
def test_any_edit_of_message_or_signature_is_refused(kit, message: bytes, flip: int) -> None:
    _, signer, verifier = kit
    sig = signer.sign(message)
    verifier.verify(message, sig)
    with pytest.raises(SignatureError):
        verifier.verify(message + b"x", sig)
    bad = bytearray(sig)
    bad[flip % len(bad)] ^= 1 << (flip % 8)
    with pytest.raises(SignatureError):
        verifier.verify(message, bytes(bad))


def test_a_signature_by_another_key_is_refused(kit) -> None:
    sb, _signer, verifier = kit
    other_arn = create_signing_key(sb.session, description="another signer")
    forged = KmsSigner(sb.session, other_arn).sign(b"record")
    with pytest.raises(SignatureError):
        verifier.verify(b"record", forged)
    # A verifier's own key pair cannot stand in for the pinned one either.
    attacker = ec.generate_private_key(ec.SECP256R1())
    self_signed = attacker.sign(hashlib.sha256(b"record").digest(), ec.ECDSA(hashes.SHA256()))
    with pytest.raises(SignatureError):
        verifier.verify(b"record", self_signed)


def test_a_public_key_that_is_not_the_pinned_keys_is_refused(kit) -> None:
    sb, signer, _ = kit
    with pytest.raises((SignatureError, InvalidParameterError)):
        PublicKeyVerifier.from_kms(sb.session, sb.resources.kms_key_arn)  # a symmetric data key
    other = create_signing_key(sb.session, description="not the pinned one")
    theirs = PublicKeyVerifier.from_kms(sb.session, other)
    with pytest.raises(SignatureError):
        theirs.verify(b"m", signer.sign(b"m"))


def test_signatures_verify_with_plain_pyca_as_aws_documents(kit) -> None:
    """Independent of the kit's verifier: ECDSA_SHA_256 over the signed RAW message (the digest)."""
    from cryptography.hazmat.primitives import serialization

    sb, signer, _ = kit
    der = sb.session.client("kms").get_public_key(KeyId=signer.key_arn)["PublicKey"]
    key = serialization.load_der_public_key(der)
    digest = hashlib.sha256(b"receipt").digest()
    key.verify(signer.sign(b"receipt"), digest, ec.ECDSA(hashes.SHA256()))


def test_bad_arguments_are_typed() -> None:
    with pytest.raises(InvalidParameterError):
        PublicKeyVerifier.from_pem(b"not pem", "arn:aws:kms:eu-west-1:123456789012:key/abc")
    with pytest.raises(InvalidParameterError):
        KmsSigner(object(), "arn:aws:kms:eu-west-1:123456789012:key/not-a-key")  # type: ignore[arg-type]


def test_a_signature_has_one_valid_spelling(kit) -> None:
    """ECDSA's (r, n - s) twin and non-canonical base64 are refused, so a signed line cannot be
    re-spelled undetected (attacker finding: a malleated seal changed the trail's head)."""
    import base64

    from cryptography.hazmat.primitives.asymmetric.utils import (
        decode_dss_signature,
        encode_dss_signature,
    )

    from securepipe.encryption.signing import signature_from_text, signature_to_text

    _, signer, verifier = kit
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    for i in range(8):                       # KMS answers high s about half the time
        message = f"seal {i}".encode()
        sig = signer.sign(message)
        r, s = decode_dss_signature(sig)
        assert s <= order // 2               # normalised by the kit's signer
        verifier.verify(message, sig)
        twin = encode_dss_signature(r, order - s)
        with pytest.raises(SignatureError):
            verifier.verify(message, twin)
        text = signature_to_text(sig)
        assert signature_from_text(text) == sig
        padded = text.rstrip("=")
        for spelling in (text + "\n", " " + text, padded if padded != text else text + "=="):
            with pytest.raises(SignatureError):
                signature_from_text(spelling)
    # non-zero padding bits decode to the same bytes but are not the canonical spelling
    raw = base64.b64encode(b"\x01").decode()          # 'AQ=='
    with pytest.raises(SignatureError):
        signature_from_text(raw[0] + chr(ord(raw[1]) + 1) + raw[2:])
