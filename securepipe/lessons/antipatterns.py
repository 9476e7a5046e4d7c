"""ANTI-PATTERN: the "common pattern" for encrypting voice samples, kept to attack and measure.

These helpers reproduce the approach the kit's lessons start from: one Fernet key shared by every
contractor, read from an environment variable, and each sample read whole into memory and
encrypted with :class:`cryptography.fernet.Fernet`
(https://cryptography.io/en/latest/fernet/). They exist so the notebooks and benchmarks can show
what is wrong with it, with real behaviour rather than a description. **Never copy them**; use
:mod:`securepipe.encryption.envelope` instead.

What the lessons demonstrate with them:

* the ciphertext is bound to nothing: a token made for contractor A's sample decrypts just as
  well after it is copied into contractor B's folder or renamed to another sample;
* one long-lived key for everyone: whoever holds it (every contractor laptop, every CI job) can
  read every sample, and rotating it means re-encrypting everything;
* the whole file sits in memory (Fernet's own docs say it is unsuitable for very large files), the
  token is base64 (about 1.33x the size) and carries its creation time in plaintext.

Step 2's common pattern is here too: :func:`fstring_session_policy` formats a caller-supplied
contractor id into an STS session policy with an f-string (policy injection), and grants
``s3:ListBucket`` without an ``s3:prefix`` condition. The kit's way is
:func:`securepipe.access.credentials.contractor_session_policy`.

Steps 2 and 3 start from :func:`long_lived_reader`: an IAM user whose access key never expires
and may list and read the whole raw bucket (a QA analyst's, or a contractor laptop's), the kind
of key that ends up in a ``.env`` file or a CI variable.

Step 5's common pattern is :data:`ARTICLE_LIFECYCLE_RULE`: one lifecycle rule, Glacier after 30
days and deletion after a year, on a prefix the data does not live under, with no expiry of old
versions. The kit's way is :mod:`securepipe.retention.lifecycle` (rules checked against the data, a
per-speaker sweeper) and :mod:`securepipe.retention.erasure`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from cryptography.fernet import Fernet, InvalidToken

from securepipe.errors import DecryptionError, InvalidParameterError

__all__ = [
    "ARTICLE_LIFECYCLE_RULE",
    "SHARED_KEY_ENV_VAR",
    "LongLivedKey",
    "fernet_decrypt_sample",
    "fernet_encrypt_sample",
    "fstring_session_policy",
    "generate_shared_key",
    "long_lived_reader",
    "shared_key_from_env",
]

#: The one lifecycle rule of the common pattern ("move raw samples to Glacier after 30 days,
#: delete after 1 year"), as a PutBucketLifecycleConfiguration rule. Never copy it.
ARTICLE_LIFECYCLE_RULE: dict[str, object] = {
    "ID": "BiometricRetention",
    "Status": "Enabled",
    "Filter": {"Prefix": "raw-samples/"},
    "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}],
    "Expiration": {"Days": 365},
}

#: The environment variable the common pattern reads its one shared key from.
SHARED_KEY_ENV_VAR = "SAMPLE_ENCRYPTION_KEY"


def generate_shared_key() -> bytes:
    """A fresh Fernet key (``Fernet.generate_key``), as the pattern hands to every contractor."""
    return Fernet.generate_key()


def shared_key_from_env(name: str = SHARED_KEY_ENV_VAR) -> bytes:
    """Read the shared key from an environment variable, as the common pattern does."""
    value = os.environ.get(name)
    if not value:
        raise InvalidParameterError(f"environment variable {name} is not set")
    return value.encode("ascii")


def _fernet(key: bytes) -> Fernet:
    try:
        return Fernet(key)
    except (TypeError, ValueError):
        raise InvalidParameterError("not a Fernet key (32 url-safe base64-encoded bytes)") from None


def fernet_encrypt_sample(path: str | os.PathLike[str], key: bytes) -> bytes:
    """ANTI-PATTERN. Read the whole file into memory and return its Fernet token.

    Wraps ``Fernet.encrypt`` (https://cryptography.io/en/latest/fernet/#cryptography.fernet.Fernet.encrypt).
    Nothing about the contractor, the sample or the purpose goes into the token.
    """
    fernet = _fernet(key)
    raw = Path(path).read_bytes()  # the whole sample in memory, deliberately
    return fernet.encrypt(raw)


def fernet_decrypt_sample(token: bytes, key: bytes) -> bytes:
    """ANTI-PATTERN. Decrypt a token made by :func:`fernet_encrypt_sample`.

    Wraps ``Fernet.decrypt``; a bad token raises :class:`~securepipe.errors.DecryptionError`.
    It decrypts wherever the token was copied to: there is nothing to check it against.
    """
    fernet = _fernet(key)
    try:
        return fernet.decrypt(token)
    except InvalidToken:
        pass
    raise DecryptionError() from None


def fstring_session_policy(contractor_id: str, bucket: str) -> str:
    """ANTI-PATTERN. A session policy made by formatting the contractor id into JSON text.

    Reproduces the common pattern for AssumeRole's ``Policy`` parameter
    (https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html): ``s3:GetObject``
    on ``arn:aws:s3:::<bucket>/<contractor_id>/*`` and, as teams commonly add so the contractor
    can browse, ``s3:ListBucket`` on the bucket with no ``s3:prefix`` condition. Nothing is
    checked or escaped, deliberately, so the lessons can show that:

    * an id of ``*`` yields ``<bucket>/*/*``, every contractor's objects;
    * an id containing ``"`` breaks the JSON, or, crafted, closes the string and injects its own
      statement (a different policy altogether);
    * the unconditioned ListBucket lets every contractor list everyone's keys.

    Never copy it; use :func:`securepipe.access.credentials.contractor_session_policy`.
    """
    return f"""{{
  "Version": "2012-10-17",
  "Statement": [
    {{"Effect": "Allow", "Action": "s3:GetObject",
      "Resource": "arn:aws:s3:::{bucket}/{contractor_id}/*"}},
    {{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::{bucket}"}}
  ]
}}"""


@dataclass(frozen=True)
class LongLivedKey:
    """An IAM user's access key, as whoever copied it holds it."""

    user_arn: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    base_session: boto3.Session = field(repr=False)

    def session(self) -> boto3.Session:
        """A new session configured like the base session, signing with this key."""
        from securepipe.access.credentials import session_with_credentials

        return session_with_credentials(self.base_session, self.access_key_id,
                                        self.secret_access_key)


def long_lived_reader(session: boto3.Session, *, user_name: str, bucket: str) -> LongLivedKey:
    """ANTI-PATTERN: an IAM user with a never-expiring access key that may read the whole bucket.

    Creates the user, an inline policy allowing ``s3:GetObject`` and ``s3:ListBucket`` on all of
    ``bucket``, and an access key (IAM CreateUser, PutUserPolicy, CreateAccessKey:
    https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateAccessKey.html). Its
    ``session()`` is configured like ``session`` (same Region, same sandbox endpoint) but signs
    with the new key. The kit's way is
    :func:`securepipe.access.credentials.vend_contractor_credentials`.
    """
    from securepipe.ids import validate_bucket_name

    bucket = validate_bucket_name(bucket)
    iam = session.client("iam")
    user = iam.create_user(UserName=user_name)["User"]
    iam.put_user_policy(UserName=user_name, PolicyName="read-all", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
                       "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}))
    key = iam.create_access_key(UserName=user_name)["AccessKey"]
    return LongLivedKey(user["Arn"], key["AccessKeyId"], key["SecretAccessKey"], session)
