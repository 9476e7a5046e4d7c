"""Step 1 of the kit: client-side envelope encryption of voice samples with the AWS Encryption SDK.

A sample is encrypted on the contractor's machine *before* it is uploaded, so a leaked bucket
credential alone yields ciphertext. The work is done by the AWS Encryption SDK
(https://docs.aws.amazon.com/encryption-sdk/latest/developer-guide/introduction.html); this module
is glue that fixes the safe choices in one place:

* one fresh data key per message from AWS KMS (``GenerateDataKey``), wrapped under a
  customer-managed key named by its key ARN (``StrictAwsKmsMasterKeyProvider``);
* an encryption context naming the contractor, the sample and the purpose, bound to the message
  and to the KMS-wrapped data key, and checked *exactly* on decrypt, so a ciphertext copied into
  another contractor's folder or renamed to another sample refuses to decrypt (or, with the
  opt-in :class:`BatchContext`, naming the contractor's batch instead of the sample, so the
  data-key cache can serve a whole batch: see :class:`BatchContext` for the trade-off);
* a key-committing algorithm suite and the ``REQUIRE_ENCRYPT_REQUIRE_DECRYPT`` commitment policy;
* framed, streaming, constant-memory file-to-file encryption and decryption;
* decryption that never leaves partial or unauthenticated plaintext behind, and whose every failure
  is the same opaque :class:`~securepipe.errors.DecryptionError`.

Message format: https://docs.aws.amazon.com/encryption-sdk/latest/developer-guide/message-format.html
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import aws_encryption_sdk
import boto3
import botocore.session
from aws_encryption_sdk import (
    Algorithm,
    CachingCryptoMaterialsManager,
    CommitmentPolicy,
    DefaultCryptoMaterialsManager,
    LocalCryptoMaterialsCache,
    StrictAwsKmsMasterKeyProvider,
)
from aws_encryption_sdk.exceptions import AWSEncryptionSDKClientError
from aws_encryption_sdk.identifiers import ContentType
from aws_encryption_sdk.materials_managers.base import CryptoMaterialsManager
from botocore.credentials import CredentialProvider, CredentialResolver
from botocore.exceptions import BotoCoreError, ClientError

from securepipe.encryption.atomic import AtomicOutput, sweep_stale_parts
from securepipe.errors import DecryptionError, EncryptionError, InvalidParameterError
from securepipe.ids import (
    check_int,
    is_kms_alias_arn,
    validate_contractor_id,
    validate_kms_key_arn,
    validate_purpose,
    validate_sample_id,
)

__all__ = [
    "ALLOWED_ALGORITHMS",
    "COMMITMENT_POLICY",
    "CONTEXT_PREFIX",
    "DEFAULT_ALGORITHM",
    "DEFAULT_FRAME_LENGTH",
    "FORMAT_VERSION",
    "MAX_FRAME_LENGTH",
    "MIN_FRAME_LENGTH",
    "BatchContext",
    "BindingContext",
    "DataKeyCacheConfig",
    "DecryptResult",
    "EncryptResult",
    "Envelope",
    "EnvelopeConfig",
    "SampleContext",
    "botocore_session_of",
    "resolve_key_arn",
]

# -- constants ---------------------------------------------------------------------------------

#: Namespace of every encryption-context key the kit writes (and checks on decrypt).
CONTEXT_PREFIX = "securepipe:"
#: Keys the SDK itself adds to the context (``aws-crypto-public-key`` for signed suites).
_SDK_RESERVED_PREFIX = "aws-crypto-"
#: Context format versions this module writes and accepts.
FORMAT_VERSION = "sp1"
_FORMAT_VERSIONS = frozenset({FORMAT_VERSION})

# Why the default suite is committing *without* an ECDSA signature:
# * A signature protects against a party that holds kms:Decrypt on the key forging a message
#   (with the data key it recovered) that other decrypt-capable readers then trust. In this
#   pipeline the only holders of kms:Decrypt are the uploader's envelope and the ingest
#   pipeline, both trusted; contractors upload through scoped credentials (step 2).
# * The signature costs throughput: the SDK's default (signed suite, 4 KiB frames) ran ~3x slower
#   to encrypt and ~4-5x slower to decrypt than this default (unsigned, 64 KiB frames) on a 64 MiB
#   file, file to file, one core; at equal 64 KiB frames the signature alone costs ~1.8x. Plus an
#   ECDSA P-384 key pair per message and ~200 bytes per message (public key in the header, a
#   105-byte signature footer).
# * Key commitment is kept: it stops key-substitution attacks (one ciphertext that decrypts to two
#   different plaintexts under two data keys), which matter as soon as a message carries more
#   than one encrypted data key or a reader tries several keys.
# Choose the signed suite when parties that may decrypt must not be able to author messages.
DEFAULT_ALGORITHM = Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY
ALLOWED_ALGORITHMS: tuple[Algorithm, ...] = (
    Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
    Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384,
)
#: Always required: encrypt with and decrypt only key-committing suites.
COMMITMENT_POLICY = CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT

DEFAULT_FRAME_LENGTH = 64 * 1024
MIN_FRAME_LENGTH = 4 * 1024
#: Also the largest frame the decryptor will buffer (``max_body_length``), whatever a header says.
MAX_FRAME_LENGTH = 4 * 1024 * 1024
_FRAME_ALIGN = 16  # AES block size; the SDK requires frame lengths to be multiples of it
_MAX_KEYS = 4  # wrapping keys per message (and encrypted data keys accepted on decrypt)
_MAX_IN_MEMORY = 64 * 1024 * 1024  # encrypt_bytes / decrypt_bytes are for small payloads

# Identifier rules live in securepipe.ids (one place for the whole kit).


# -- the context ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleContext:
    """Who a sample belongs to and what it may be used for, bound to its ciphertext.

    Becomes the message's encryption context
    (https://docs.aws.amazon.com/encryption-sdk/latest/developer-guide/concepts.html#encryption-context):
    authenticated, stored in plaintext in the header (so never put secrets or personal data in
    it), and passed to KMS with the wrapped data key. Every field is checked against a strict
    allow-list when the object is built.

    :param contractor: ``[a-z0-9][a-z0-9-]{0,31}`` (see :mod:`securepipe.ids`).
    :param sample_id: ``[A-Za-z0-9][A-Za-z0-9_.-]{0,127}`` without ``..``.
    :param purpose: what the speaker consented to, ``[a-z0-9][a-z0-9-]{0,62}``.
    :param format_version: the kit's context layout; only ``"sp1"`` exists.
    """

    contractor: str
    sample_id: str
    purpose: str
    format_version: str = FORMAT_VERSION

    def __post_init__(self) -> None:
        validate_contractor_id(self.contractor)
        validate_sample_id(self.sample_id)
        validate_purpose(self.purpose)
        if not isinstance(self.format_version, str) or self.format_version not in _FORMAT_VERSIONS:
            raise InvalidParameterError(f"unsupported format_version {self.format_version!r}")

    def as_encryption_context(self) -> dict[str, str]:
        """The encryption context, every key namespaced with ``securepipe:``."""
        return {
            f"{CONTEXT_PREFIX}contractor": self.contractor,
            f"{CONTEXT_PREFIX}sample-id": self.sample_id,
            f"{CONTEXT_PREFIX}purpose": self.purpose,
            f"{CONTEXT_PREFIX}format": self.format_version,
        }


@dataclass(frozen=True)
class BatchContext:
    """Opt-in batch binding: the ciphertext names the contractor's batch, not the sample.

    Same rules as :class:`SampleContext` (strict allow-list, ``securepipe:`` keys, exact match on
    decrypt), but the context is ``securepipe:contractor``, ``securepipe:batch``,
    ``securepipe:purpose`` and ``securepipe:format``. Its key set differs from a
    :class:`SampleContext`'s, so a message made under one never decrypts under the other.

    Why it exists: the SDK's data-key cache
    (https://docs.aws.amazon.com/encryption-sdk/latest/developer-guide/data-key-caching.html)
    only reuses a data key between messages whose encryption context is identical. Every clip
    of a batch shares one BatchContext, so with a :class:`DataKeyCacheConfig` N clips cost about
    ``N / max_messages`` KMS ``GenerateDataKey`` calls instead of N.

    The trade-off, honestly:

    * **Per-sample binding** (:class:`SampleContext`, the default and the recommendation)
      refuses a ciphertext moved to any other sample id. It costs one KMS ``GenerateDataKey`` per
      clip, which is usually cheap: KMS bills symmetric-key requests at a small price per ten
      thousand (https://aws.amazon.com/kms/pricing/), and the limit that bites first is the
      request-rate quota for cryptographic operations, set per account and per Region and
      shared by every caller of the account's keys; over it, KMS throttles
      (https://docs.aws.amazon.com/kms/latest/developerguide/requests-per-second.html).
    * **Batch binding** plus the bounded cache cuts those calls, but a clip moved to another
      sample id *within the same contractor batch* still decrypts; moved to another contractor,
      purpose or batch it is still refused. One cached data key also protects up to
      ``max_messages`` clips, so a leaked data key exposes that many. Use it only when the
      request rate or quota is a real constraint, and keep the sample-to-object mapping
      elsewhere (for example the object key and a manifest).

    :param contractor: ``[a-z0-9][a-z0-9-]{0,31}`` (see :mod:`securepipe.ids`).
    :param batch_id: ``[A-Za-z0-9][A-Za-z0-9_.-]{0,127}`` without ``..``.
    :param purpose: what the speakers consented to, ``[a-z0-9][a-z0-9-]{0,62}``.
    :param format_version: the kit's context layout; only ``"sp1"`` exists.
    """

    contractor: str
    batch_id: str
    purpose: str
    format_version: str = FORMAT_VERSION

    def __post_init__(self) -> None:
        validate_contractor_id(self.contractor)
        validate_sample_id(self.batch_id, kind="batch_id")
        validate_purpose(self.purpose)
        if not isinstance(self.format_version, str) or self.format_version not in _FORMAT_VERSIONS:
            raise InvalidParameterError(f"unsupported format_version {self.format_version!r}")

    def as_encryption_context(self) -> dict[str, str]:
        """The encryption context, every key namespaced with ``securepipe:``."""
        return {
            f"{CONTEXT_PREFIX}contractor": self.contractor,
            f"{CONTEXT_PREFIX}batch": self.batch_id,
            f"{CONTEXT_PREFIX}purpose": self.purpose,
            f"{CONTEXT_PREFIX}format": self.format_version,
        }


#: What a message may be bound to: one sample (default, recommended) or one contractor batch.
BindingContext = SampleContext | BatchContext


# -- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DataKeyCacheConfig:
    """Bounds for reusing one KMS data key across messages (the SDK's data key caching).

    Wraps :class:`~aws_encryption_sdk.CachingCryptoMaterialsManager` over a
    :class:`~aws_encryption_sdk.LocalCryptoMaterialsCache`
    (https://docs.aws.amazon.com/encryption-sdk/latest/developer-guide/data-key-caching.html).

    Honest trade-off: the SDK keys its cache on the *encryption context* (and algorithm suite),
    and KMS binds each wrapped data key to that context, so a data key is only reused between
    messages with exactly the same context. :class:`SampleContext` names the sample, so caching
    saves KMS calls when one sample (context) is encrypted many times, for example a clip and its
    re-encodings or a batch of chunks under one id; thousands of clips with distinct sample ids
    still cost one ``GenerateDataKey`` each. A :class:`BatchContext` (opt-in, weaker binding:
    see its docstring) is shared by a whole batch, so the cache then serves every clip of it.
    Within its context a cached key encrypts at most
    ``max_messages`` messages and ``max_bytes`` bytes for at most ``max_age_s`` seconds: those
    bounds are the blast radius of one leaked data key. On decrypt the cache saves a KMS
    ``Decrypt`` for every further message that carries the same wrapped data key.

    :param max_age_s: seconds a cached data key may be used (0 < x <= 86400).
    :param max_messages: messages one data key may encrypt (1 to 2**32).
    :param max_bytes: plaintext bytes one data key may encrypt (1 B to 2**63-1); a single message
        at least this large is never cached.
    :param capacity: entries the local cache holds (least recently used evicted first).
    """

    max_age_s: float = 300.0
    max_messages: int = 1000
    max_bytes: int = 1024**3
    capacity: int = 1000

    def __post_init__(self) -> None:
        age = self.max_age_s
        if isinstance(age, bool) or not isinstance(age, int | float) or not 0 < age <= 86_400:
            raise InvalidParameterError(f"max_age_s must be in (0, 86400], got {age!r}")
        check_int(self.max_messages, "max_messages", 1, 2**32)
        check_int(self.max_bytes, "max_bytes", 1, 2**63 - 1)
        check_int(self.capacity, "capacity", 1, 1_000_000)


@dataclass(frozen=True)
class EnvelopeConfig:
    """How :class:`Envelope` encrypts; checked when built, with safe defaults.

    :param key_arns: KMS key ARN(s) that wrap each data key (1 to 4; a single ``str`` is
        accepted). Key ARNs, not aliases: a strict provider decrypts only with keys named by ARN
        (use :func:`resolve_key_arn` to turn an alias into one).
    :param algorithm: :data:`DEFAULT_ALGORITHM` (committing, unsigned) or the signed
        ``AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384``; an ``Algorithm`` or its name.
    :param frame_length: plaintext bytes per frame, a multiple of 16 in
        [:data:`MIN_FRAME_LENGTH`, :data:`MAX_FRAME_LENGTH`]; default 64 KiB.
    :param cache: data-key cache bounds, or ``None`` (default) for a fresh data key per message.
    :param max_encrypted_data_keys: most wrapped data keys a message may carry on encrypt and
        decrypt (1 to 4, at least ``len(key_arns)``); bounds the KMS calls a hostile header costs.

    The commitment policy is not configurable: always :data:`COMMITMENT_POLICY`.
    """

    key_arns: str | Sequence[str]
    algorithm: Algorithm = DEFAULT_ALGORITHM
    frame_length: int = DEFAULT_FRAME_LENGTH
    cache: DataKeyCacheConfig | None = None
    max_encrypted_data_keys: int = 1

    def __post_init__(self) -> None:
        arns = self.key_arns
        if isinstance(arns, str):
            arns = (arns,)
        if not isinstance(arns, Iterable):
            raise InvalidParameterError("key_arns must be a key ARN or a sequence of key ARNs")
        arns = tuple(arns)
        if not 1 <= len(arns) <= _MAX_KEYS:
            raise InvalidParameterError(f"between 1 and {_MAX_KEYS} key ARNs are needed")
        for arn in arns:
            if is_kms_alias_arn(arn):
                raise InvalidParameterError(
                    f"{arn!r} is an alias ARN; pass the key ARN (see resolve_key_arn)"
                )
            validate_kms_key_arn(arn)
        if len(set(arns)) != len(arns):
            raise InvalidParameterError("duplicate key ARN")
        object.__setattr__(self, "key_arns", arns)

        algorithm = self.algorithm
        if isinstance(algorithm, str):
            algorithm = Algorithm.__members__.get(algorithm)
        if algorithm not in ALLOWED_ALGORITHMS:
            allowed = ", ".join(a.name for a in ALLOWED_ALGORITHMS)
            raise InvalidParameterError(
                f"algorithm {self.algorithm!r} is not allowed; use one of {allowed}"
            )
        object.__setattr__(self, "algorithm", algorithm)

        check_int(self.frame_length, "frame_length", MIN_FRAME_LENGTH, MAX_FRAME_LENGTH)
        if self.frame_length % _FRAME_ALIGN:
            raise InvalidParameterError(f"frame_length must be a multiple of {_FRAME_ALIGN}")
        if self.cache is not None and not isinstance(self.cache, DataKeyCacheConfig):
            raise InvalidParameterError("cache must be a DataKeyCacheConfig or None")
        check_int(self.max_encrypted_data_keys, "max_encrypted_data_keys", 1, _MAX_KEYS)
        if len(arns) > self.max_encrypted_data_keys:
            raise InvalidParameterError("max_encrypted_data_keys is smaller than len(key_arns)")

    @property
    def arns(self) -> tuple[str, ...]:
        """The key ARNs as a tuple (``key_arns`` after validation)."""
        return tuple(self.key_arns) if not isinstance(self.key_arns, str) else (self.key_arns,)

    @property
    def commitment_policy(self) -> CommitmentPolicy:
        """Always ``REQUIRE_ENCRYPT_REQUIRE_DECRYPT``."""
        return COMMITMENT_POLICY


# -- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncryptResult:
    """What :meth:`Envelope.encrypt_file` wrote.

    ``kms_calls`` is how many KMS API calls the envelope made during the operation (0 on a cache
    hit); approximate if the same envelope is used from several threads at once.
    """

    dst: Path
    context: BindingContext
    plaintext_bytes: int
    ciphertext_bytes: int
    plaintext_sha256: str
    algorithm: str
    frame_length: int
    kms_calls: int


@dataclass(frozen=True)
class DecryptResult:
    """What :meth:`Envelope.decrypt_file` wrote, after the whole message authenticated."""

    dst: Path
    context: BindingContext
    plaintext_bytes: int
    ciphertext_bytes: int
    plaintext_sha256: str
    algorithm: str
    kms_calls: int


# -- helpers ----------------------------------------------------------------------------------


def botocore_session_of(session: boto3.Session) -> botocore.session.Session:
    """The botocore session behind a boto3 Session (what the AWS Encryption SDK takes).

    boto3 keeps it in ``Session._session``
    (https://boto3.amazonaws.com/v1/documentation/api/latest/reference/core/session.html).
    """
    if not isinstance(session, boto3.Session):
        raise InvalidParameterError("expected a boto3.Session")
    inner = session._session
    if not isinstance(inner, botocore.session.Session):  # pragma: no cover - boto3 internals
        raise InvalidParameterError("the boto3 Session has no botocore session")
    return inner


def resolve_key_arn(session: boto3.Session, key_id: str) -> str:
    """The key ARN for a key id, key ARN, alias name or alias ARN.

    Wraps KMS DescribeKey (https://docs.aws.amazon.com/kms/latest/APIReference/API_DescribeKey.html).
    """
    if not isinstance(key_id, str) or not 1 <= len(key_id) <= 2048:
        raise InvalidParameterError(f"invalid key id {key_id!r}")
    return str(session.client("kms").describe_key(KeyId=key_id)["KeyMetadata"]["Arn"])


class _CallerCredentials(CredentialProvider):
    """The caller's session's own credentials object (refreshable ones keep refreshing)."""

    METHOD = "securepipe-caller-session"
    CANONICAL_NAME = "securepipe-caller-session"

    def __init__(self, source: botocore.session.Session) -> None:
        super().__init__()
        self._source = source

    def load(self) -> Any:
        return self._source.get_credentials()


def _sdk_botocore_session(caller: botocore.session.Session) -> botocore.session.Session:
    """A botocore session for the SDK's KMS clients, configured like the caller's session.

    The SDK wraps the botocore session it is given in a new ``boto3.Session``, and every boto3
    Session registers boto3's S3 customisations on its botocore session once more; with two
    copies, every later ``session.client("s3")`` on the caller's session fails ("Cannot inject
    class attribute 'upload_file'"). So the SDK gets its own botocore session: the caller's
    configuration variables (profile, config file, region, CA bundle, ...), default client
    configuration and credentials object, but its own event handlers
    (https://docs.aws.amazon.com/botocore/latest/reference/session.html).
    """
    private = botocore.session.Session()
    for name, value in caller.instance_variables().items():
        private.set_config_variable(name, value)
    private.register_component(
        "credential_provider", CredentialResolver([_CallerCredentials(caller)])
    )
    # and the caller's default client configuration (a worker sizes its connection pools there)
    default = caller.get_default_client_config()
    if default is not None:
        private.set_default_client_config(default)
    return private


class _KmsCallCounter:
    """Counts KMS API calls by operation (a botocore ``after-call.kms`` handler)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def __call__(self, model: Any = None, **_: Any) -> None:
        name = getattr(model, "name", "unknown")
        with self._lock:
            self._counts[name] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())


class _HashingReader:
    """Read-only stream wrapper that hashes and counts what the SDK reads from the source."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.count = 0

    @property
    def closed(self) -> bool:
        return self._raw.closed

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.sha256.update(data)
        self.count += len(data)
        return data


_T = TypeVar("_T")


def _opaque(call: Callable[[], _T]) -> _T:
    """Run one step of decryption; any failure becomes the one opaque DecryptionError.

    The raise happens outside the ``except`` block, so the cause is neither chained nor kept
    as ``__context__``.
    """
    try:
        return call()
    except Exception:  # every failure must look the same
        pass
    raise DecryptionError() from None


def _fail() -> None:
    raise DecryptionError() from None


# -- the envelope -----------------------------------------------------------------------------

_uid = itertools.count(1)


class Envelope:
    """Encrypts and decrypts samples with the AWS Encryption SDK under a KMS key.

    Built from a boto3 Session (sandbox or real account) and an :class:`EnvelopeConfig`; uses the
    SDK's streaming interface (``EncryptionSDKClient.stream``,
    https://aws-encryption-sdk-python.readthedocs.io/en/latest/generated/aws_encryption_sdk.html)
    with a :class:`~aws_encryption_sdk.StrictAwsKmsMasterKeyProvider`.

    Every method takes a :data:`BindingContext`: a :class:`SampleContext` (default, recommended:
    one KMS ``GenerateDataKey`` per clip, and a ciphertext moved to any other sample refuses to
    decrypt) or a :class:`BatchContext` (with a :class:`DataKeyCacheConfig`, about
    ``N / max_messages`` ``GenerateDataKey`` calls for N clips, but a clip moved to another
    sample id within the same contractor batch still decrypts). Decryption always requires every
    ``securepipe:`` key to match the expected context exactly, so the two kinds never mix.

    :attr:`kms_calls` counts the KMS API calls made by the clients this envelope created.

    Logging: the AWS Encryption SDK logs each failed KMS call (with a traceback) on the
    ``aws_encryption_sdk`` logger. The error this class raises stays opaque; those log lines do
    not, so route that logger where only operators read it (or raise its level).
    """

    def __init__(self, session: boto3.Session, config: EnvelopeConfig) -> None:
        if not isinstance(config, EnvelopeConfig):
            raise InvalidParameterError("config must be an EnvelopeConfig")
        self._init_engine(config)
        bc = _sdk_botocore_session(botocore_session_of(session))
        # botocore clients copy the session's event handlers when they are created: register the
        # counter only while the provider creates its KMS clients, so it counts those clients
        # and nothing else made from the caller's session.
        uid = f"securepipe-envelope-{next(_uid)}"
        bc.register("after-call.kms", self._counter, unique_id=uid)
        try:
            provider = StrictAwsKmsMasterKeyProvider(
                key_ids=list(config.arns), botocore_session=bc
            )
            provider.add_regional_clients_from_list(
                sorted({arn.split(":")[3] for arn in config.arns})
            )
        finally:
            bc.unregister("after-call.kms", unique_id=uid)
        self._provider = provider
        cmm: CryptoMaterialsManager
        if config.cache is None:
            cmm = DefaultCryptoMaterialsManager(master_key_provider=provider)
        else:
            cmm = CachingCryptoMaterialsManager(
                master_key_provider=provider,
                cache=LocalCryptoMaterialsCache(capacity=config.cache.capacity),
                max_age=float(config.cache.max_age_s),
                max_messages_encrypted=config.cache.max_messages,
                max_bytes_encrypted=config.cache.max_bytes,
            )
        self._cmm = cmm

    def _init_engine(self, config: EnvelopeConfig) -> None:
        """The parts every envelope shares: config, KMS call counter, SDK client, read size."""
        self._config = config
        self._counter = _KmsCallCounter()
        self._client = aws_encryption_sdk.EncryptionSDKClient(
            commitment_policy=COMMITMENT_POLICY,
            max_encrypted_data_keys=config.max_encrypted_data_keys,
        )
        # One frame per read: the SDK concatenates bytes per frame, so larger reads are slower.
        self._chunk = config.frame_length

    def _materials_manager(self) -> CryptoMaterialsManager:
        """The materials manager for one message (subclasses may build one per message).

        Called inside the error handling of each operation: on encrypt a failure here becomes
        :class:`~securepipe.errors.EncryptionError`, on decrypt the opaque ``DecryptionError``.
        """
        return self._cmm

    def _decryption_materials_manager(self) -> CryptoMaterialsManager:
        """The materials manager for decrypting one message: :meth:`_materials_manager` unless
        a subclass needs less to decrypt than to encrypt. Called inside the opaque error
        handling of decryption: any failure here is the one ``DecryptionError``."""
        return self._materials_manager()

    @property
    def config(self) -> EnvelopeConfig:
        return self._config

    @property
    def kms_calls(self) -> Mapping[str, int]:
        """KMS API calls so far by operation, e.g. ``{"GenerateDataKey": 3, "Decrypt": 1}``."""
        return self._counter.snapshot()

    # -- files ---------------------------------------------------------------------------------
    def encrypt_file(
        self, src: str | os.PathLike[str], dst: str | os.PathLike[str], context: BindingContext
    ) -> EncryptResult:
        """Encrypt ``src`` into ``dst`` (an SDK message), streaming with constant memory.

        ``context`` is a :class:`SampleContext` (recommended) or a :class:`BatchContext`
        (fewer KMS calls with a cache, weaker binding: see :class:`BatchContext`).

        The ciphertext is written to a 0600 temporary file beside ``dst`` and moved onto ``dst``
        only when complete; on any failure nothing is left behind. KMS or SDK errors propagate
        wrapped in :class:`~securepipe.errors.EncryptionError`.
        """
        src_path, dst_path = _paths(src, dst)
        _require_context(context)
        sweep_stale_parts(dst_path.parent)
        kms_before = self._counter.total()
        with open(src_path, "rb") as fsrc, AtomicOutput(dst_path) as out:
            reader = _HashingReader(fsrc)
            length = os.fstat(fsrc.fileno()).st_size
            written = self._encrypt_stream(reader, length, out.file, context)
            out.commit()
        return EncryptResult(
            dst=dst_path,
            context=context,
            plaintext_bytes=reader.count,
            ciphertext_bytes=written,
            plaintext_sha256=reader.sha256.hexdigest(),
            algorithm=self._config.algorithm.name,
            frame_length=self._config.frame_length,
            kms_calls=self._counter.total() - kms_before,
        )

    def decrypt_file(
        self,
        src: str | os.PathLike[str],
        dst: str | os.PathLike[str],
        expected_context: BindingContext,
    ) -> DecryptResult:
        """Decrypt the message in ``src`` into ``dst`` if, and only if, all of it authenticates.

        The message's encryption context must equal ``expected_context`` exactly (SDK-reserved
        ``aws-crypto-*`` keys aside): a :class:`BatchContext` message never decrypts under a
        :class:`SampleContext` expectation, nor the reverse. Plaintext goes to an unnamed (Linux
        ``O_TMPFILE``) or 0600 locked temporary file beside ``dst``
        (:class:`~securepipe.encryption.atomic.AtomicOutput`; the SDK releases each frame once
        that frame verifies, before the end of the message has been checked) and is moved onto
        ``dst`` only after the final frame, the signature (signed suites) and the absence of
        trailing bytes are checked; on any failure the temporary file is deleted, and a part
        left by a process killed part-way is swept on the next call
        (:func:`~securepipe.encryption.atomic.sweep_stale_parts`). Every failure of the
        ciphertext, key or context raises the same :class:`~securepipe.errors.DecryptionError`;
        a missing ``src`` or an unwritable destination raises the usual ``OSError``.
        """
        src_path, dst_path = _paths(src, dst)
        _require_context(expected_context)
        sweep_stale_parts(dst_path.parent)
        kms_before = self._counter.total()
        with open(src_path, "rb") as fsrc, AtomicOutput(dst_path) as out:
            size, digest, algorithm = self._decrypt_stream(fsrc, out.file, expected_context)
            ciphertext_bytes = fsrc.tell()
            out.commit()
        return DecryptResult(
            dst=dst_path,
            context=expected_context,
            plaintext_bytes=size,
            ciphertext_bytes=ciphertext_bytes,
            plaintext_sha256=digest,
            algorithm=algorithm,
            kms_calls=self._counter.total() - kms_before,
        )

    # -- small payloads ------------------------------------------------------------------------
    def encrypt_bytes(self, data: bytes, context: BindingContext) -> bytes:
        """Encrypt a small payload (up to 64 MiB, e.g. a feature matrix) into an SDK message."""
        _require_context(context)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidParameterError("data must be bytes")
        if len(data) > _MAX_IN_MEMORY:
            raise InvalidParameterError("payload too large for encrypt_bytes; use encrypt_file")
        sink = io.BytesIO()
        payload = data if isinstance(data, bytes) else bytes(data)   # bytes: no copy
        # no _HashingReader: nobody reads a digest of an in-memory payload
        self._encrypt_stream(io.BytesIO(payload), len(payload), sink, context)
        return sink.getvalue()

    def decrypt_bytes(self, message: bytes, expected_context: BindingContext) -> bytes:
        """Decrypt a small SDK message (up to 64 MiB); same checks as :meth:`decrypt_file`."""
        _require_context(expected_context)
        if not isinstance(message, bytes | bytearray | memoryview):
            raise InvalidParameterError("message must be bytes")
        if len(message) > _MAX_IN_MEMORY:
            raise InvalidParameterError("message too large for decrypt_bytes; use decrypt_file")
        sink = io.BytesIO()
        source = io.BytesIO(message if isinstance(message, bytes) else bytes(message))
        self._decrypt_stream(source, sink, expected_context, digest=False)
        return sink.getvalue()

    # -- internals -----------------------------------------------------------------------------
    def _encrypt_stream(
        self, reader: IO[bytes] | _HashingReader, length: int, sink: IO[bytes],
        context: BindingContext,
    ) -> int:
        written = 0
        try:
            with self._client.stream(
                mode="e",
                source=reader,
                source_length=length,  # lets the caching CMM count bytes; caps the input
                materials_manager=self._materials_manager(),
                encryption_context=context.as_encryption_context(),
                algorithm=self._config.algorithm,
                frame_length=self._config.frame_length,
            ) as encryptor:
                while chunk := encryptor.read(self._chunk):
                    sink.write(chunk)
                    written += len(chunk)
        except (AWSEncryptionSDKClientError, ClientError, BotoCoreError) as exc:
            cause = exc.__cause__ or exc.__context__
            code = cause.response.get("Error", {}).get("Code") if isinstance(
                cause, ClientError) else None
            raise EncryptionError(
                f"could not encrypt: {type(exc).__name__}" + (f" ({code} from KMS)" if code else "")
            ) from exc
        return written

    def _decrypt_stream(
        self, source: IO[bytes], sink: IO[bytes], expected: BindingContext, *,
        digest: bool = True,
    ) -> tuple[int, str, str]:
        """Decrypt ``source`` into ``sink``; ``(plaintext bytes, plaintext SHA-256 hex or ""
        when ``digest`` is False, algorithm name)``."""
        expected_ec = expected.as_encryption_context()
        decryptor = _opaque(
            lambda: self._client.stream(
                mode="d",
                source=source,
                materials_manager=self._decryption_materials_manager(),
                max_body_length=MAX_FRAME_LENGTH,
            )
        )
        hasher = hashlib.sha256() if digest else None
        size = 0
        try:
            # Reads and authenticates the header: KMS Decrypt of the data key (bound to the
            # context), key commitment, header tag.
            header = _opaque(lambda: decryptor.header)
            found = {
                k: v
                for k, v in header.encryption_context.items()
                if not k.startswith(_SDK_RESERVED_PREFIX)
            }
            if (
                header.algorithm not in ALLOWED_ALGORITHMS
                or header.content_type != ContentType.FRAMED_DATA  # the kit only writes frames
                or found != expected_ec
            ):
                _fail()
            while chunk := _opaque(lambda: decryptor.read(self._chunk)):
                sink.write(chunk)  # OSError here is the destination's problem: not opaque
                if hasher is not None:
                    hasher.update(chunk)
                size += len(chunk)
            # close() refuses unless the final frame (and, if signed, the signature) was read.
            _opaque(decryptor.close)
            if _opaque(lambda: source.read(1)):  # bytes after the end of the message
                _fail()
        finally:
            if not decryptor.closed:
                # Mark closed without the SDK's "footer not read" check, which would otherwise
                # run again (and log) when the object is garbage-collected.
                io.IOBase.close(decryptor)
        return size, hasher.hexdigest() if hasher else "", header.algorithm.name


def _require_context(context: object) -> None:
    if not isinstance(context, SampleContext | BatchContext):
        raise InvalidParameterError("context must be a SampleContext or a BatchContext")


def _paths(src: object, dst: object) -> tuple[Path, Path]:
    """``src`` and ``dst`` as paths, or :class:`InvalidParameterError` for anything else."""
    for name, value in (("src", src), ("dst", dst)):
        if not isinstance(value, str | os.PathLike) or not str(value):
            raise InvalidParameterError(f"{name} must be a path (str or os.PathLike), got "
                                        f"{type(value).__name__}")
    return Path(src), Path(dst)  # type: ignore[arg-type]  # checked just above
