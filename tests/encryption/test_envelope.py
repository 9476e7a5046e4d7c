"""Step 1: client-side envelope encryption (securepipe.encryption.envelope) against the sandbox's
KMS."""

from __future__ import annotations

import hashlib
import io
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from aws_encryption_sdk import (
    Algorithm,
    CommitmentPolicy,
    EncryptionSDKClient,
    StrictAwsKmsMasterKeyProvider,
)
from aws_encryption_sdk.internal.formatting.deserialize import (
    deserialize_header,
    deserialize_header_auth,
)

from securepipe.encryption.envelope import (
    ALLOWED_ALGORITHMS,
    DEFAULT_ALGORITHM,
    DEFAULT_FRAME_LENGTH,
    BatchContext,
    BindingContext,
    DataKeyCacheConfig,
    Envelope,
    EnvelopeConfig,
    SampleContext,
    botocore_session_of,
    resolve_key_arn,
)
from securepipe.errors import DecryptionError, InvalidParameterError
from securepipe.sandbox.account import Sandbox

SMALL_FRAME = 4096
OPAQUE = str(DecryptionError())
CTX = SampleContext(
    contractor="acme-voice", sample_id="spk0042_utt0007.wav", purpose="asr-training"
)


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    """One sandbox for the module: the tests only add KMS keys and never change shared state."""
    with Sandbox() as box:
        yield box


@pytest.fixture(scope="module")
def second_key_arn(sb: Sandbox) -> str:
    meta = sb.session.client("kms").create_key(Description="securepipe test: another key")
    return str(meta["KeyMetadata"]["Arn"])


@pytest.fixture(scope="module")
def env(sb: Sandbox) -> Envelope:
    return Envelope(sb.session, EnvelopeConfig(sb.resources.kms_key_arn))


@pytest.fixture(scope="module")
def small_env(sb: Sandbox) -> Envelope:
    """4 KiB frames, so a short message has several frames to attack."""
    return Envelope(sb.session, EnvelopeConfig(sb.resources.kms_key_arn, frame_length=SMALL_FRAME))


@pytest.fixture(scope="module")
def signed_env(sb: Sandbox) -> Envelope:
    config = EnvelopeConfig(
        sb.resources.kms_key_arn,
        algorithm=Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384,
        frame_length=SMALL_FRAME,
    )
    return Envelope(sb.session, config)


PLAINTEXT = os.urandom(3 * SMALL_FRAME + 1000)  # three full frames and a final partial one


@pytest.fixture(scope="module")
def message(small_env: Envelope) -> bytes:
    return small_env.encrypt_bytes(PLAINTEXT, CTX)


@pytest.fixture(scope="module")
def signed_message(signed_env: Envelope) -> bytes:
    return signed_env.encrypt_bytes(PLAINTEXT, CTX)


# -- helpers -----------------------------------------------------------------------------------


def _layout(blob: bytes) -> dict[str, object]:
    """Where the parts of an SDK message are, found with the SDK's own header parser."""
    stream = io.BytesIO(blob)
    header, raw_header = deserialize_header(stream)
    deserialize_header_auth(version=header.version, stream=stream, algorithm=header.algorithm)
    header_end = stream.tell()
    (edk,) = header.encrypted_data_keys
    edk_start = blob.index(edk.encrypted_data_key)
    iv_len, tag_len = header.algorithm.iv_len, header.algorithm.auth_len
    frames: list[tuple[int, int]] = []  # (start, end) of every frame, final frame last
    pos = header_end
    while True:
        (seq,) = struct.unpack_from(">I", blob, pos)
        if seq == 0xFFFFFFFF:
            (length,) = struct.unpack_from(">I", blob, pos + 8 + iv_len)
            end = pos + 8 + iv_len + 4 + length + tag_len
            frames.append((pos, end))
            break
        end = pos + 4 + iv_len + header.frame_length + tag_len
        frames.append((pos, end))
        pos = end
    return {
        "header_end": header_end,
        "raw_header_len": len(raw_header),
        "edk": (edk_start, edk_start + len(edk.encrypted_data_key)),
        "frames": frames,
        "body_end": frames[-1][1],
        "tag_len": tag_len,
        "iv_len": iv_len,
        "header": header,
    }


def _flip(blob: bytes, offset: int) -> bytes:
    return blob[:offset] + bytes([blob[offset] ^ 0x01]) + blob[offset + 1 :]


def _assert_refused(
    envelope: Envelope, blob: bytes, tmp_path: Path, expected: SampleContext = CTX
) -> None:
    """Decrypting ``blob`` fails opaquely and leaves nothing in the output folder."""
    src = tmp_path / "in" / "sample.enc"
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(blob)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    with pytest.raises(DecryptionError) as info:
        envelope.decrypt_file(src, out / "sample.wav", expected)
    assert str(info.value) == OPAQUE
    assert info.value.__cause__ is None and info.value.__context__ is None
    assert list(out.iterdir()) == []  # no plaintext, no temporary file
    with pytest.raises(DecryptionError) as info_bytes:
        envelope.decrypt_bytes(blob, expected)
    assert str(info_bytes.value) == OPAQUE


def _raw_sdk_message(
    sb: Sandbox,
    context: dict[str, str],
    *,
    algorithm: Algorithm = DEFAULT_ALGORITHM,
    frame_length: int = SMALL_FRAME,
    policy: CommitmentPolicy = CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT,
) -> bytes:
    """A message made with the SDK directly, as any other holder of kms:GenerateDataKey could."""
    provider = StrictAwsKmsMasterKeyProvider(
        key_ids=[sb.resources.kms_key_arn], botocore_session=botocore_session_of(sb.session)
    )
    client = EncryptionSDKClient(commitment_policy=policy)
    blob, _ = client.encrypt(
        source=PLAINTEXT,
        key_provider=provider,
        encryption_context=context,
        algorithm=algorithm,
        frame_length=frame_length,
    )
    return bytes(blob)


# -- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size",
    [
        0,
        1,
        DEFAULT_FRAME_LENGTH - 1,
        DEFAULT_FRAME_LENGTH,
        DEFAULT_FRAME_LENGTH + 1,
        3 * 1024 * 1024 + 123,
    ],
)
def test_file_round_trip_is_byte_exact(env: Envelope, tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    src, enc, dec = tmp_path / "clip.wav", tmp_path / "clip.enc", tmp_path / "clip.out.wav"
    src.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()

    er = env.encrypt_file(src, enc, CTX)
    assert (er.plaintext_bytes, er.ciphertext_bytes) == (size, enc.stat().st_size)
    assert er.plaintext_sha256 == digest
    assert er.algorithm == DEFAULT_ALGORITHM.name and er.frame_length == DEFAULT_FRAME_LENGTH
    assert er.kms_calls == 1  # one GenerateDataKey, no cache
    assert data[:64] not in enc.read_bytes() or size < 64

    dr = env.decrypt_file(enc, dec, CTX)
    assert dec.read_bytes() == data
    assert (dr.plaintext_bytes, dr.plaintext_sha256, dr.context) == (size, digest, CTX)
    assert dr.ciphertext_bytes == er.ciphertext_bytes
    assert dr.kms_calls == 1  # one Decrypt of the data key
    assert dec.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.enc", "clip.out.wav", "clip.wav"]


@pytest.mark.parametrize("algorithm", ALLOWED_ALGORITHMS, ids=lambda a: a.name)
def test_both_allowed_suites_round_trip(sb: Sandbox, tmp_path: Path, algorithm: Algorithm) -> None:
    envelope = Envelope(sb.session, EnvelopeConfig(sb.resources.kms_key_arn, algorithm=algorithm))
    blob = envelope.encrypt_bytes(PLAINTEXT, CTX)
    header = _layout(blob)["header"]
    assert header.algorithm is algorithm  # type: ignore[attr-defined]
    signed = "aws-crypto-public-key" in header.encryption_context  # type: ignore[attr-defined]
    assert signed == algorithm.is_signing()
    assert envelope.decrypt_bytes(blob, CTX) == PLAINTEXT
    (tmp_path / "x.enc").write_bytes(blob)
    result = envelope.decrypt_file(tmp_path / "x.enc", tmp_path / "x.wav", CTX)
    assert result.algorithm == algorithm.name
    assert (tmp_path / "x.wav").read_bytes() == PLAINTEXT


def test_either_suite_decrypts_with_any_envelope(
    small_env: Envelope, signed_env: Envelope, message: bytes, signed_message: bytes
) -> None:
    assert small_env.decrypt_bytes(signed_message, CTX) == PLAINTEXT
    assert signed_env.decrypt_bytes(message, CTX) == PLAINTEXT


def test_context_is_namespaced_and_in_the_header(message: bytes) -> None:
    ec = CTX.as_encryption_context()
    assert ec == {
        "securepipe:contractor": "acme-voice",
        "securepipe:sample-id": "spk0042_utt0007.wav",
        "securepipe:purpose": "asr-training",
        "securepipe:format": "sp1",
    }
    assert _layout(message)["header"].encryption_context == ec  # type: ignore[attr-defined]


def test_plaintext_only_ever_goes_to_the_destination_folder(
    env: Envelope, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import securepipe.encryption.envelope as module

    dirs: list[Path] = []

    class Spy(module.AtomicOutput):
        def __init__(self, dst: Path) -> None:
            dirs.append(Path(dst).parent)
            super().__init__(dst)

    monkeypatch.setattr(module, "AtomicOutput", Spy)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "clip.wav").write_bytes(PLAINTEXT)
    env.encrypt_file(tmp_path / "a" / "clip.wav", tmp_path / "b" / "clip.enc", CTX)
    env.decrypt_file(tmp_path / "b" / "clip.enc", tmp_path / "a" / "clip2.wav", CTX)
    assert dirs == [tmp_path / "b", tmp_path / "a"]


# -- tampering ---------------------------------------------------------------------------------


def test_message_layout_is_what_the_tests_attack(message: bytes) -> None:
    lay = _layout(message)
    assert len(lay["frames"]) == 4  # type: ignore[arg-type]
    assert lay["body_end"] == len(message)  # unsigned: no footer
    assert 0 < lay["edk"][0] < lay["raw_header_len"]  # type: ignore[index,operator]


def test_tampering_header_edk_frame_and_tag_is_refused(
    small_env: Envelope, message: bytes, tmp_path: Path
) -> None:
    lay = _layout(message)
    iv_len, tag_len = lay["iv_len"], lay["tag_len"]
    edk_start, edk_end = lay["edk"]  # type: ignore[misc]
    frames: list[tuple[int, int]] = lay["frames"]  # type: ignore[assignment]
    first, final = frames[0], frames[-1]
    targets = {
        "version": 0,
        "algorithm id": 1,
        "message id": 5,
        "context value": message.index(b"acme-voice"),
        "edk provider info (key ARN)": message.index(b"arn:aws:kms"),
        "encrypted data key": (edk_start + edk_end) // 2,
        "content type / frame length": lay["raw_header_len"] - 1,  # type: ignore[operator]
        "header auth tag": lay["header_end"] - 1,  # type: ignore[operator]
        "frame 1 sequence number": first[0] + 3,
        "frame 1 iv": first[0] + 4,
        "frame 1 body": first[0] + 4 + iv_len + 100,  # type: ignore[operator]
        "frame 1 tag": first[1] - tag_len,  # type: ignore[operator]
        "final frame marker": final[0],
        "final frame length": final[0] + 8 + iv_len + 3,  # type: ignore[operator]
        "final frame body": final[0] + 8 + iv_len + 4 + 10,  # type: ignore[operator]
        "final frame tag": final[1] - 1,
    }
    for name, offset in targets.items():
        assert 0 <= offset < len(message), name  # type: ignore[operator]
        _assert_refused(small_env, _flip(message, offset), tmp_path)  # type: ignore[arg-type]


@pytest.mark.parametrize("which", ["unsigned", "signed"])
def test_flipping_any_byte_is_refused(
    request: pytest.FixtureRequest, tmp_path: Path, which: str
) -> None:
    unsigned = which == "unsigned"
    envelope: Envelope = request.getfixturevalue("small_env" if unsigned else "signed_env")
    blob: bytes = request.getfixturevalue("message" if unsigned else "signed_message")
    offsets = [*range(0, len(blob), 97), len(blob) - 1]
    for offset in offsets:
        _assert_refused(envelope, _flip(blob, offset), tmp_path)


def test_truncation_at_every_frame_boundary_and_mid_frame_is_refused(
    small_env: Envelope, signed_env: Envelope, message: bytes, signed_message: bytes, tmp_path: Path
) -> None:
    for envelope, blob in ((small_env, message), (signed_env, signed_message)):
        lay = _layout(blob)
        frames: list[tuple[int, int]] = lay["frames"]  # type: ignore[assignment]
        cuts = {0, 1, lay["raw_header_len"], lay["header_end"], len(blob) - 1}
        for start, end in frames:
            cuts.update({start, (start + end) // 2, end - 1})
        if blob is signed_message:
            cuts.add(lay["body_end"])  # everything but the signature footer
            cuts.add(lay["body_end"] + 2)  # signature length without the signature
        cuts.discard(len(blob))
        for cut in sorted(cuts):  # type: ignore[type-var]
            _assert_refused(envelope, blob[:cut], tmp_path)  # type: ignore[misc]


def test_dropping_or_reordering_frames_is_refused(
    small_env: Envelope, message: bytes, tmp_path: Path
) -> None:
    lay = _layout(message)
    (f1, f2, f3, final) = lay["frames"]  # type: ignore[misc]
    head = message[: lay["header_end"]]  # type: ignore[misc]

    def part(span: tuple[int, int]) -> bytes:
        return message[span[0] : span[1]]

    _assert_refused(small_env, head + part(f1) + part(f3) + part(final), tmp_path)
    _assert_refused(small_env, head + part(f2) + part(f1) + part(f3) + part(final), tmp_path)
    _assert_refused(small_env, head + part(f1) + part(f2) + part(f3), tmp_path)


@pytest.mark.parametrize(
    "extra", [b"\x00", b"x" * 5000, None], ids=["1 byte", "5000 bytes", "message twice"]
)
def test_appended_bytes_are_refused(
    small_env: Envelope, message: bytes, tmp_path: Path, extra: bytes | None
) -> None:
    _assert_refused(small_env, message + (message if extra is None else extra), tmp_path)


def test_signature_footer_tampering_is_refused(
    signed_env: Envelope, signed_message: bytes, tmp_path: Path
) -> None:
    body_end: int = _layout(signed_message)["body_end"]  # type: ignore[assignment]
    assert len(signed_message) - body_end > 64  # a footer: 2-byte length + ECDSA P-384 signature
    for offset in (body_end, body_end + 1, body_end + 10, len(signed_message) - 1):
        _assert_refused(signed_env, _flip(signed_message, offset), tmp_path)


def test_garbage_is_refused(small_env: Envelope, tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    fernet_token = Fernet(Fernet.generate_key()).encrypt(PLAINTEXT)
    for blob in (b"", b"\x02", os.urandom(64), os.urandom(10_000), fernet_token):
        _assert_refused(small_env, blob, tmp_path)


def test_no_partial_plaintext_when_the_last_frame_fails(
    small_env: Envelope, message: bytes, tmp_path: Path
) -> None:
    """Three frames authenticate and are released by the SDK; the final one is bad."""
    final_tag = len(message) - 1
    dst = tmp_path / "out" / "sample.wav"
    dst.parent.mkdir()
    dst.write_bytes(b"previous version")
    (tmp_path / "bad.enc").write_bytes(_flip(message, final_tag))
    with pytest.raises(DecryptionError):
        small_env.decrypt_file(tmp_path / "bad.enc", dst, CTX)
    assert dst.read_bytes() == b"previous version"  # untouched, not half-overwritten
    assert [p.name for p in dst.parent.iterdir()] == ["sample.wav"]


# -- wrong context, wrong key, wrong suite -----------------------------------------------------


@pytest.mark.parametrize(
    "expected",
    [
        SampleContext("other-contractor", CTX.sample_id, CTX.purpose),
        SampleContext(CTX.contractor, "spk0042_utt0008.wav", CTX.purpose),
        SampleContext(CTX.contractor, CTX.sample_id, "marketing"),
    ],
    ids=["moved to another contractor", "renamed to another sample", "other purpose"],
)
def test_ciphertext_moved_to_another_context_is_refused(
    small_env: Envelope, message: bytes, tmp_path: Path, expected: SampleContext
) -> None:
    _assert_refused(small_env, message, tmp_path, expected)


def test_context_must_match_exactly(sb: Sandbox, small_env: Envelope, tmp_path: Path) -> None:
    ec = CTX.as_encryption_context()
    # Control: a message from any producer with exactly the right context decrypts.
    assert small_env.decrypt_bytes(_raw_sdk_message(sb, ec), CTX) == PLAINTEXT
    missing = {k: v for k, v in ec.items() if k != "securepipe:purpose"}
    extra_ns = {**ec, "securepipe:batch": "b1"}
    extra_other = {**ec, "team": "x"}
    changed_format = {**ec, "securepipe:format": "sp0"}
    for context in (missing, extra_ns, extra_other, changed_format, {}):
        _assert_refused(small_env, _raw_sdk_message(sb, context), tmp_path)


def test_non_committing_and_unframed_messages_are_refused(
    sb: Sandbox, small_env: Envelope, tmp_path: Path
) -> None:
    ec = CTX.as_encryption_context()
    legacy = _raw_sdk_message(
        sb,
        ec,
        algorithm=Algorithm.AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384,
        policy=CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT,
    )
    _assert_refused(small_env, legacy, tmp_path)
    _assert_refused(small_env, _raw_sdk_message(sb, ec, frame_length=0), tmp_path)


def test_wrong_kms_key_is_refused(
    sb: Sandbox, second_key_arn: str, small_env: Envelope, message: bytes, tmp_path: Path
) -> None:
    other = Envelope(sb.session, EnvelopeConfig(second_key_arn, frame_length=SMALL_FRAME))
    _assert_refused(other, message, tmp_path)
    _assert_refused(small_env, other.encrypt_bytes(PLAINTEXT, CTX), tmp_path)


def test_missing_source_is_an_os_error_not_a_decryption_error(
    env: Envelope, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError):
        env.decrypt_file(tmp_path / "absent.enc", tmp_path / "x.wav", CTX)
    assert list(tmp_path.iterdir()) == []


# -- data-key caching and KMS call counting ----------------------------------------------------


def _encrypt_clips(envelope: Envelope, folder: Path, contexts: list[SampleContext]) -> None:
    folder.mkdir()
    for i, context in enumerate(contexts):
        clip = folder / f"clip{i}.wav"
        clip.write_bytes(os.urandom(2000))
        envelope.encrypt_file(clip, folder / f"clip{i}.enc", context)


def test_cache_cuts_generate_data_key_calls(sb: Sandbox, tmp_path: Path) -> None:
    arn = sb.resources.kms_key_arn
    plain = Envelope(sb.session, EnvelopeConfig(arn))
    cached = Envelope(sb.session, EnvelopeConfig(arn, cache=DataKeyCacheConfig()))
    _encrypt_clips(plain, tmp_path / "plain", [CTX] * 50)
    _encrypt_clips(cached, tmp_path / "cached", [CTX] * 50)
    assert plain.kms_calls == {"GenerateDataKey": 50}
    assert cached.kms_calls == {"GenerateDataKey": 1}

    # Decrypting: one KMS Decrypt for all 50 messages that share the cached data key.
    reader = Envelope(sb.session, EnvelopeConfig(arn, cache=DataKeyCacheConfig()))
    for i in range(50):
        enc = tmp_path / "cached" / f"clip{i}.enc"
        reader.decrypt_file(enc, tmp_path / "cached" / f"clip{i}.out", CTX)
        assert (tmp_path / "cached" / f"clip{i}.out").read_bytes() == (
            tmp_path / "cached" / f"clip{i}.wav"
        ).read_bytes()
    assert reader.kms_calls == {"Decrypt": 1}


def test_cache_bounds_limit_reuse_and_contexts_never_share_keys(
    sb: Sandbox, tmp_path: Path
) -> None:
    arn = sb.resources.kms_key_arn
    bounded = Envelope(sb.session, EnvelopeConfig(arn, cache=DataKeyCacheConfig(max_messages=10)))
    _encrypt_clips(bounded, tmp_path / "bounded", [CTX] * 50)
    assert bounded.kms_calls == {"GenerateDataKey": 5}  # a fresh data key every 10 messages

    per_sample = Envelope(sb.session, EnvelopeConfig(arn, cache=DataKeyCacheConfig()))
    contexts = [SampleContext(CTX.contractor, f"clip{i}", CTX.purpose) for i in range(20)]
    _encrypt_clips(per_sample, tmp_path / "per-sample", contexts)
    assert per_sample.kms_calls == {"GenerateDataKey": 20}  # the cache is keyed on the context


def test_counter_ignores_other_clients_of_the_session(sb: Sandbox) -> None:
    envelope = Envelope(sb.session, EnvelopeConfig(sb.resources.kms_key_arn))
    sb.session.client("kms").list_keys()
    assert envelope.kms_calls == {}
    envelope.encrypt_bytes(b"x", CTX)
    assert envelope.kms_calls == {"GenerateDataKey": 1}


# -- validation --------------------------------------------------------------------------------


def test_resolve_key_arn_turns_an_alias_into_the_key_arn(sb: Sandbox) -> None:
    assert resolve_key_arn(sb.session, sb.resources.kms_alias_arn) == sb.resources.kms_key_arn
    assert resolve_key_arn(sb.session, "alias/securepipe-data") == sb.resources.kms_key_arn


def test_config_defaults_are_the_safe_ones(sb: Sandbox) -> None:
    config = EnvelopeConfig(sb.resources.kms_key_arn)
    assert config.key_arns == (sb.resources.kms_key_arn,)
    assert config.algorithm is Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY
    assert config.commitment_policy is CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    assert (config.frame_length, config.cache, config.max_encrypted_data_keys) == (65536, None, 1)
    by_name = EnvelopeConfig(
        [sb.resources.kms_key_arn], algorithm="AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384"
    )
    assert by_name.algorithm is Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384
    cache = DataKeyCacheConfig()
    assert (cache.max_age_s, cache.max_messages, cache.max_bytes) == (300.0, 1000, 1024**3)


ARN = "arn:aws:kms:eu-west-1:210000000001:key/0f0e0d0c-0b0a-4908-8706-050403020100"
ARN2 = "arn:aws:kms:eu-west-1:210000000001:key/1f0e0d0c-0b0a-4908-8706-050403020100"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"key_arns": "arn:aws:kms:eu-west-1:210000000001:alias/securepipe-data"},
        {"key_arns": "0f0e0d0c-0b0a-4908-8706-050403020100"},
        {"key_arns": "alias/securepipe-data"},
        {"key_arns": ARN + "\n"},
        {"key_arns": ()},
        {"key_arns": (ARN, ARN)},
        {"key_arns": 42},
        {"key_arns": (ARN, ARN2)},  # more keys than max_encrypted_data_keys=1
        {"key_arns": ARN, "algorithm": Algorithm.AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384},
        {"key_arns": ARN, "algorithm": Algorithm.AES_256_GCM_IV12_TAG16},
        {"key_arns": ARN, "algorithm": "AES_256_GCM_IV12_TAG16"},
        {"key_arns": ARN, "algorithm": "nope"},
        {"key_arns": ARN, "frame_length": 0},
        {"key_arns": ARN, "frame_length": 1024},
        {"key_arns": ARN, "frame_length": 4097},
        {"key_arns": ARN, "frame_length": 8 * 1024 * 1024},
        {"key_arns": ARN, "frame_length": True},
        {"key_arns": ARN, "frame_length": 65536.0},
        {"key_arns": ARN, "cache": {"max_age_s": 1}},
        {"key_arns": ARN, "max_encrypted_data_keys": 0},
        {"key_arns": ARN, "max_encrypted_data_keys": 5},
    ],
)
def test_invalid_config_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidParameterError):
        EnvelopeConfig(**kwargs)  # type: ignore[arg-type]


def test_two_keys_need_room_for_two_data_keys() -> None:
    config = EnvelopeConfig((ARN, ARN2), max_encrypted_data_keys=2)
    assert config.key_arns == (ARN, ARN2)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_age_s": 0},
        {"max_age_s": -1.0},
        {"max_age_s": 86_401},
        {"max_age_s": "300"},
        {"max_messages": 0},
        {"max_messages": 2**32 + 1},
        {"max_bytes": 0},
        {"capacity": 0},
        {"capacity": True},
    ],
)
def test_invalid_cache_bounds_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidParameterError):
        DataKeyCacheConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"contractor": "Acme"},
        {"contractor": "acme/../other"},
        {"contractor": "-acme"},
        {"contractor": "acme\n"},
        {"contractor": "a" * 64},
        {"contractor": ""},
        {"contractor": 7},
        {"sample_id": ".hidden"},
        {"sample_id": "a..b"},
        {"sample_id": "a/b"},
        {"sample_id": "clip 1"},
        {"sample_id": "clip*"},
        {"sample_id": "x" * 129},
        {"purpose": "ASR"},
        {"purpose": "asr training"},
        {"format_version": "sp2"},
    ],
)
def test_invalid_sample_context_is_refused(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {"contractor": "acme", "sample_id": "s1", "purpose": "asr"}
    fields.update(kwargs)
    with pytest.raises(InvalidParameterError):
        SampleContext(**fields)  # type: ignore[arg-type]


def test_envelope_refuses_wrong_argument_types(env: Envelope, tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError):
        Envelope(object(), env.config)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError):
        env.encrypt_bytes(b"x", CTX.as_encryption_context())  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError):
        env.decrypt_bytes("text", CTX)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError):
        env.decrypt_file(tmp_path / "a", tmp_path / "b", {"securepipe:contractor": "x"})  # type: ignore[arg-type]


def test_streaming_memory_does_not_grow_with_the_file(env: Envelope, tmp_path: Path) -> None:
    import tracemalloc

    src = tmp_path / "long.wav"
    with open(src, "wb") as f:
        for _ in range(8):
            f.write(os.urandom(1024 * 1024))
    tracemalloc.start()
    try:
        env.encrypt_file(src, tmp_path / "long.enc", CTX)
        env.decrypt_file(tmp_path / "long.enc", tmp_path / "long.out", CTX)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024  # a few 64 KiB frames, never the 8 MiB file
    assert (tmp_path / "long.out").read_bytes() == src.read_bytes()


# -- batch binding (opt-in) --------------------------------------------------------------------

BATCH = BatchContext(contractor="acme-voice", batch_id="2026-11-26_b001", purpose="asr-training")


def _encrypt_batch(
    envelope: Envelope, folder: Path, contexts: list[BindingContext]
) -> list[tuple[Path, Path]]:
    """Encrypt one small random clip per context; returns (plaintext, ciphertext) paths."""
    folder.mkdir()
    pairs = []
    for i, context in enumerate(contexts):
        clip, enc = folder / f"clip{i}.wav", folder / f"clip{i}.enc"
        clip.write_bytes(os.urandom(2000))
        assert envelope.encrypt_file(clip, enc, context).context == context
        pairs.append((clip, enc))
    return pairs


def test_batch_context_is_namespaced_and_distinct_from_a_sample_context() -> None:
    assert BATCH.as_encryption_context() == {
        "securepipe:contractor": "acme-voice",
        "securepipe:batch": "2026-11-26_b001",
        "securepipe:purpose": "asr-training",
        "securepipe:format": "sp1",
    }
    assert set(BATCH.as_encryption_context()) != set(CTX.as_encryption_context())


def test_batch_binding_with_a_bounded_cache_cuts_generate_data_key_calls(
    sb: Sandbox, tmp_path: Path
) -> None:
    arn = sb.resources.kms_key_arn
    cache = DataKeyCacheConfig(max_messages=100)
    batched = Envelope(sb.session, EnvelopeConfig(arn, cache=cache))
    pairs = _encrypt_batch(batched, tmp_path / "batch", [BATCH] * 200)
    assert batched.kms_calls["GenerateDataKey"] <= 2  # about N / max_messages
    assert set(batched.kms_calls) == {"GenerateDataKey"}

    per_sample = Envelope(sb.session, EnvelopeConfig(arn, cache=cache))
    contexts: list[BindingContext] = [
        SampleContext(BATCH.contractor, f"clip{i}", BATCH.purpose) for i in range(200)
    ]
    _encrypt_batch(per_sample, tmp_path / "per-sample", contexts)
    assert per_sample.kms_calls == {"GenerateDataKey": 200}  # one data key per clip

    # Every clip decrypts under the batch context; a caching reader needs one Decrypt per key.
    reader = Envelope(sb.session, EnvelopeConfig(arn, cache=DataKeyCacheConfig()))
    for clip, enc in pairs:
        reader.decrypt_file(enc, enc.with_suffix(".out"), BATCH)
        assert enc.with_suffix(".out").read_bytes() == clip.read_bytes()
    assert reader.kms_calls == {"Decrypt": batched.kms_calls["GenerateDataKey"]}


@pytest.mark.parametrize(
    "expected",
    [
        BatchContext("other-contractor", BATCH.batch_id, BATCH.purpose),
        BatchContext(BATCH.contractor, "2026-11-26_b002", BATCH.purpose),
        BatchContext(BATCH.contractor, BATCH.batch_id, "marketing"),
    ],
    ids=["moved to another contractor", "moved to another batch", "other purpose"],
)
def test_batch_message_moved_out_of_its_batch_is_refused(
    small_env: Envelope, tmp_path: Path, expected: BatchContext
) -> None:
    blob = small_env.encrypt_bytes(PLAINTEXT, BATCH)
    src = tmp_path / "sample.enc"
    src.write_bytes(blob)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DecryptionError) as info:
        small_env.decrypt_file(src, out / "sample.wav", expected)
    assert str(info.value) == OPAQUE
    assert list(out.iterdir()) == []
    with pytest.raises(DecryptionError):
        small_env.decrypt_bytes(blob, expected)
    # The documented trade-off: within its batch the message names no sample, so it decrypts
    # wherever in the batch it was copied to.
    assert small_env.decrypt_bytes(blob, BATCH) == PLAINTEXT


def test_batch_and_sample_messages_never_decrypt_as_each_other(
    small_env: Envelope, tmp_path: Path
) -> None:
    batch_blob = small_env.encrypt_bytes(PLAINTEXT, BATCH)
    # Same contractor and purpose, and a sample id equal to the batch id: still refused.
    look_alike = SampleContext(BATCH.contractor, BATCH.batch_id, BATCH.purpose)
    _assert_refused(small_env, batch_blob, tmp_path, look_alike)
    _assert_refused(small_env, batch_blob, tmp_path, CTX)

    sample_blob = small_env.encrypt_bytes(PLAINTEXT, look_alike)
    out = tmp_path / "out2"
    out.mkdir()
    (tmp_path / "s.enc").write_bytes(sample_blob)
    with pytest.raises(DecryptionError):
        small_env.decrypt_file(tmp_path / "s.enc", out / "s.wav", BATCH)
    assert list(out.iterdir()) == []
    with pytest.raises(DecryptionError):
        small_env.decrypt_bytes(sample_blob, BATCH)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"contractor": "Acme"},
        {"contractor": "../acme"},
        {"batch_id": ""},
        {"batch_id": "b..1"},
        {"batch_id": "b/1"},
        {"batch_id": "x" * 129},
        {"purpose": "asr training"},
        {"format_version": "sp2"},
        {"batch_id": 7},
    ],
)
def test_invalid_batch_context_is_refused(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {"contractor": "acme", "batch_id": "b1", "purpose": "asr"}
    fields.update(kwargs)
    with pytest.raises(InvalidParameterError):
        BatchContext(**fields)  # type: ignore[arg-type]


def test_building_an_envelope_leaves_the_callers_session_usable(sandbox: Sandbox) -> None:
    # The SDK wraps the botocore session it gets in a new boto3.Session, which would register
    # boto3's S3 customisations on the caller's session a second time and break every later
    # S3 client ("Cannot inject class attribute 'upload_file'"); the envelope gives it its own.
    # A fresh sandbox: the module's session is already wrapped by _raw_sdk_message's provider.
    sb = sandbox
    Envelope(sb.session, EnvelopeConfig(sb.resources.kms_key_arn))
    Envelope(sb.session, EnvelopeConfig(sb.resources.kms_key_arn))
    s3 = sb.session.client("s3")
    assert callable(s3.upload_file)
    assert sb.resources.bucket("raw") in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert sb.session.resource("s3").Bucket(sb.resources.bucket("raw")).name
