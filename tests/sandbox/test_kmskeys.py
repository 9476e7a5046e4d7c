"""moto's KMS private keys are made on first use while a sandbox is open (speed only): a
symmetric key never pays for an RSA key, and what moto answers for signing keys is unchanged."""

from __future__ import annotations

import moto.kms.models as kms_models
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from securepipe.sandbox import start_sandbox
from securepipe.sandbox.kmskeys import DeferredPrivateKey


def _moto_key(sb: object, key_id: str) -> object:
    backend = kms_models.kms_backends[sb.account_id][sb.region]  # type: ignore[attr-defined]
    return backend.keys[key_id]


def test_symmetric_keys_get_no_rsa_key_and_signing_still_verifies() -> None:
    original = kms_models.generate_private_key
    sb = start_sandbox()
    try:
        kms = sb.session.client("kms")
        data_key = _moto_key(sb, sb.resources.kms_key_id).private_key  # type: ignore[attr-defined]
        assert isinstance(data_key, DeferredPrivateKey) and not data_key.generated
        kms.encrypt(KeyId=sb.resources.kms_key_arn, Plaintext=b"x")  # symmetric use: still none
        assert not data_key.generated

        signing = sb.resources.signing_key_arn
        sig = kms.sign(KeyId=signing, Message=b"receipt", MessageType="RAW",
                       SigningAlgorithm="ECDSA_SHA_256")["Signature"]
        assert kms.verify(KeyId=signing, Message=b"receipt", MessageType="RAW", Signature=sig,
                          SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"]
        assert not kms.verify(KeyId=signing, Message=b"forged", MessageType="RAW", Signature=sig,
                              SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"]
        # Verifying with the public key alone (as an auditor does) works on the same key.
        der = kms.get_public_key(KeyId=signing)["PublicKey"]
        public = serialization.load_der_public_key(der)
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(sig, b"receipt", ec.ECDSA(hashes.SHA256()))
    finally:
        sb.close()
    assert kms_models.generate_private_key is original  # restored when the sandbox closes
