"""Step 1, upload path (securepipe.encryption.upload) against the in-process sandbox's S3 and
KMS."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

import securepipe.encryption.upload as upload
from securepipe.data.dataset import Manifest, load_manifest
from securepipe.encryption.envelope import BatchContext, Envelope, EnvelopeConfig, SampleContext
from securepipe.encryption.upload import (
    CONSENT_NOT_CHECKED,
    META_CIPHERTEXT_SHA256,
    META_FORMAT,
    download_sample,
    sample_key,
    upload_sample,
)
from securepipe.errors import ConsentError, DecryptionError, InvalidParameterError
from securepipe.sandbox.account import Sandbox

OPAQUE = str(DecryptionError())


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    """One sandbox for the module: every test writes under its own object keys."""
    with Sandbox() as box:
        yield box


@pytest.fixture(scope="module")
def env(sb: Sandbox) -> Envelope:
    return Envelope(sb.session, EnvelopeConfig(sb.resources.kms_key_arn))


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return load_manifest()


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point tempfile's default directory at an empty folder the test can inspect."""
    folder = tmp_path / "system-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _wav(manifest: Manifest, index: int = 0) -> tuple[Path, SampleContext]:
    utt = manifest.utterances[index]
    purpose = manifest.speaker(utt.speaker).consent.purpose
    return manifest.path_of(utt), SampleContext(utt.contractor, utt.sample_id, purpose)


def _upload(sb: Sandbox, env: Envelope, src: Path, ctx: SampleContext, **kw: int) -> object:
    return upload_sample(
        sb.session,
        env,
        src,
        bucket=sb.resources.bucket("raw"),
        context=ctx,
        key_arn=sb.resources.kms_key_arn,
        consent=CONSENT_NOT_CHECKED,
        **kw,
    )


# -- round trip --------------------------------------------------------------------------------


def test_round_trip_is_byte_exact_and_the_bucket_holds_only_ciphertext(
    sb: Sandbox, env: Envelope, manifest: Manifest, tmp_path: Path
) -> None:
    src, ctx = _wav(manifest)
    plaintext = src.read_bytes()
    assert plaintext[:4] == b"RIFF"
    bucket, arn = sb.resources.bucket("raw"), sb.resources.kms_key_arn

    result = _upload(sb, env, src, ctx)
    assert isinstance(result, upload.UploadResult)
    assert result.key == f"raw/{ctx.contractor}/{ctx.sample_id}" == sample_key(
        ctx.contractor, ctx.sample_id
    )
    assert (result.bucket, result.multipart) == (bucket, False)
    assert result.plaintext_sha256 == hashlib.sha256(plaintext).hexdigest()
    assert result.context == ctx.as_encryption_context()
    assert result.version_id is not None  # the raw bucket is versioned

    s3 = sb.client("s3")
    head = s3.head_object(Bucket=bucket, Key=result.key, ChecksumMode="ENABLED")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == arn
    assert head["BucketKeyEnabled"] is True
    assert head["VersionId"] == result.version_id
    assert head["ContentLength"] == result.ciphertext_bytes
    assert head["Metadata"] == {
        META_FORMAT: "sp1",
        META_CIPHERTEXT_SHA256: result.ciphertext_sha256,
        upload.META_SAMPLE: ctx.sample_id,
    }
    # No plaintext digest anywhere in the metadata, in any encoding.
    raw_digest = hashlib.sha256(plaintext).digest()
    for value in head["Metadata"].values():
        assert value not in (raw_digest.hex(), base64.b64encode(raw_digest).decode())

    stored = s3.get_object(Bucket=bucket, Key=result.key)["Body"].read()
    assert stored != plaintext
    assert not stored.startswith(b"RIFF") and b"WAVEfmt " not in stored
    assert plaintext[44:4096] not in stored  # no run of the PCM samples either
    assert hashlib.sha256(stored).hexdigest() == result.ciphertext_sha256
    # The checksum S3 keeps (and, on AWS, verifies on arrival) is the ciphertext's.
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(stored).digest()).decode()

    dst = tmp_path / "out" / "clip.wav"
    dst.parent.mkdir()
    decrypted = download_sample(
        sb.session, env, bucket=bucket, key=result.key, dst=dst, expected_context=ctx
    )
    assert dst.read_bytes() == plaintext
    assert decrypted.plaintext_sha256 == result.plaintext_sha256
    assert decrypted.ciphertext_bytes == result.ciphertext_bytes
    assert stat.S_IMODE(dst.stat().st_mode) == 0o600


def test_large_ciphertexts_use_multipart_with_the_same_protections(
    sb: Sandbox, env: Envelope, tmp_path: Path
) -> None:
    src = tmp_path / "long.wav"
    src.write_bytes(os.urandom(6 * 1024 * 1024))
    ctx = SampleContext("c99", "long-clip", "speech-model-training")
    sent: dict[str, str] = {}

    def record(request: object, **_: object) -> None:
        for name, value in request.headers.items():  # type: ignore[attr-defined]
            if "amz-server" in name or "checksum" in name:
                sent[name.lower()] = value.decode() if isinstance(value, bytes) else value

    events = sb.session.events
    events.register("before-sign.s3.CreateMultipartUpload", record, unique_id="t-mpu")
    try:
        result = _upload(sb, env, src, ctx, multipart_threshold=5 * 1024 * 1024)
    finally:
        events.unregister("before-sign.s3.CreateMultipartUpload", unique_id="t-mpu")
    assert isinstance(result, upload.UploadResult) and result.multipart
    assert result.version_id is not None
    # s3transfer refuses BucketKeyEnabled in ExtraArgs; the kit adds it to CreateMultipartUpload.
    assert sent == {
        "x-amz-server-side-encryption": "aws:kms",
        "x-amz-server-side-encryption-aws-kms-key-id": sb.resources.kms_key_arn,
        "x-amz-server-side-encryption-bucket-key-enabled": "true",
        "x-amz-checksum-algorithm": "SHA256",
    }

    head = sb.client("s3").head_object(Bucket=result.bucket, Key=result.key)
    assert head["ETag"].endswith('-1"')  # a multipart upload with one part
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == sb.resources.kms_key_arn
    # moto 5.2 drops the bucket-key header of CreateMultipartUpload (AWS keeps it), so
    # BucketKeyEnabled is checked on the request above rather than read back here.
    assert head["VersionId"] == result.version_id
    assert head["Metadata"][META_CIPHERTEXT_SHA256] == result.ciphertext_sha256

    dst = tmp_path / "long.out"
    download_sample(
        sb.session, env, bucket=result.bucket, key=result.key, dst=dst, expected_context=ctx
    )
    assert dst.read_bytes() == src.read_bytes()


# -- refusals ----------------------------------------------------------------------------------


def test_ciphertext_copied_to_another_contractor_does_not_decrypt(
    sb: Sandbox, env: Envelope, manifest: Manifest, tmp_path: Path
) -> None:
    src, ctx = _wav(manifest, 1)
    result = _upload(sb, env, src, ctx)
    assert isinstance(result, upload.UploadResult)
    other = SampleContext("other-contractor", ctx.sample_id, ctx.purpose)
    moved = sample_key(other.contractor, other.sample_id)
    s3 = sb.client("s3")
    s3.copy_object(
        Bucket=result.bucket, Key=moved, CopySource={"Bucket": result.bucket, "Key": result.key}
    )
    assert s3.head_object(Bucket=result.bucket, Key=moved)["Metadata"][META_CIPHERTEXT_SHA256]

    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DecryptionError) as info:
        download_sample(
            sb.session, env, bucket=result.bucket, key=moved, dst=out / "x.wav",
            expected_context=other,
        )
    assert str(info.value) == OPAQUE
    assert list(out.iterdir()) == []


def test_tampered_or_mislabelled_objects_are_refused_opaquely(
    sb: Sandbox, env: Envelope, manifest: Manifest, tmp_path: Path
) -> None:
    src, ctx = _wav(manifest, 2)
    result = _upload(sb, env, src, ctx)
    assert isinstance(result, upload.UploadResult)
    s3 = sb.client("s3")
    blob = s3.get_object(Bucket=result.bucket, Key=result.key)["Body"].read()
    flipped = blob[:-20] + bytes([blob[-20] ^ 1]) + blob[-19:]
    out = tmp_path / "out"
    out.mkdir()
    cases = {
        "stale digest": {META_FORMAT: "sp1", META_CIPHERTEXT_SHA256: result.ciphertext_sha256},
        "matching digest": {
            META_FORMAT: "sp1",
            META_CIPHERTEXT_SHA256: hashlib.sha256(flipped).hexdigest(),
        },
        "no metadata": {},
    }
    for name, metadata in cases.items():
        key = f"raw/{ctx.contractor}/tampered-{name.replace(' ', '-')}"
        s3.put_object(Bucket=result.bucket, Key=key, Body=flipped, Metadata=metadata)
        with pytest.raises(DecryptionError) as info:
            download_sample(
                sb.session, env, bucket=result.bucket, key=key, dst=out / "x.wav",
                expected_context=ctx,
            )
        assert str(info.value) == OPAQUE, name
        assert list(out.iterdir()) == [], name


def test_a_batch_expectation_does_not_decrypt_a_sample_upload(
    sb: Sandbox, env: Envelope, manifest: Manifest, tmp_path: Path
) -> None:
    src, ctx = _wav(manifest, 3)
    result = _upload(sb, env, src, ctx)
    assert isinstance(result, upload.UploadResult)
    with pytest.raises(DecryptionError):
        download_sample(
            sb.session, env, bucket=result.bucket, key=result.key, dst=tmp_path / "x.wav",
            expected_context=BatchContext(ctx.contractor, ctx.sample_id, ctx.purpose),
        )
    assert list(tmp_path.iterdir()) == []


# -- where plaintext and ciphertext go ---------------------------------------------------------


def test_plaintext_is_only_ever_written_to_dst_and_temp_dirs_are_removed(
    sb: Sandbox,
    env: Envelope,
    manifest: Manifest,
    tmp_path: Path,
    private_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import securepipe.encryption.envelope as envelope_module

    src, ctx = _wav(manifest, 4)
    plaintext = src.read_bytes()
    made_dirs: list[tuple[Path, int]] = []
    staged: list[Path] = []
    real_mkdtemp = tempfile.mkdtemp

    def spy_mkdtemp(*args: object, **kwargs: object) -> str:
        path = real_mkdtemp(*args, **kwargs)  # type: ignore[call-overload]
        made_dirs.append((Path(path), stat.S_IMODE(os.stat(path).st_mode)))
        return str(path)

    class SpyOutput(envelope_module.AtomicOutput):
        def __init__(self, dst: Path) -> None:
            staged.append(Path(dst).parent)
            super().__init__(dst)

    monkeypatch.setattr(upload.tempfile, "mkdtemp", spy_mkdtemp)
    monkeypatch.setattr(envelope_module, "AtomicOutput", SpyOutput)

    real_encrypt = env.encrypt_file
    ciphertexts: list[bytes] = []

    def spy_encrypt(source: Path, dst: Path, context: SampleContext) -> object:
        out = real_encrypt(source, dst, context)
        ciphertexts.append(Path(dst).read_bytes())
        assert sorted(p.name for p in Path(dst).parent.iterdir()) == ["sample.enc"]
        return out

    monkeypatch.setattr(env, "encrypt_file", spy_encrypt)

    result = _upload(sb, env, src, ctx)
    assert isinstance(result, upload.UploadResult)
    dst = tmp_path / "out" / "clip.wav"
    dst.parent.mkdir()
    download_sample(
        sb.session, env, bucket=result.bucket, key=result.key, dst=dst, expected_context=ctx
    )

    upload_dir, download_dir = (path for path, _ in made_dirs)
    assert [mode for _, mode in made_dirs] == [0o700, 0o700]
    assert {upload_dir.parent, download_dir.parent} == {private_tmp}
    # The envelope's own temporary files: ciphertext in the private dir, plaintext beside dst.
    assert staged == [upload_dir, dst.parent]
    assert len(ciphertexts) == 1 and not ciphertexts[0].startswith(b"RIFF")
    assert plaintext[44:4096] not in ciphertexts[0]
    assert list(private_tmp.iterdir()) == []  # both private dirs are gone
    assert sorted(p.name for p in dst.parent.iterdir()) == ["clip.wav"]
    assert dst.read_bytes() == plaintext


def test_temp_dir_is_removed_when_the_upload_or_download_fails(
    sb: Sandbox, env: Envelope, manifest: Manifest, tmp_path: Path, private_tmp: Path
) -> None:
    src, ctx = _wav(manifest, 5)
    missing = "securepipe-raw-000000000000-nowhere"
    with pytest.raises(ClientError):
        upload_sample(
            sb.session, env, src, bucket=missing, context=ctx, key_arn=sb.resources.kms_key_arn,
            consent=CONSENT_NOT_CHECKED,
        )
    assert list(private_tmp.iterdir()) == []
    with pytest.raises(ClientError):
        download_sample(
            sb.session, env, bucket=sb.resources.bucket("raw"), key="raw/c01/absent",
            dst=tmp_path / "x.wav", expected_context=ctx,
        )
    assert list(private_tmp.iterdir()) == []
    assert not (tmp_path / "x.wav").exists()


# -- validation --------------------------------------------------------------------------------


def test_sample_key_layout() -> None:
    assert sample_key("acme-voice", "spk0042_utt0007.wav") == "raw/acme-voice/spk0042_utt0007.wav"


@pytest.mark.parametrize(
    ("contractor", "sample_id"),
    [
        ("Acme", "s1"),
        ("../acme", "s1"),
        ("acme/x", "s1"),
        ("*", "s1"),
        ("acme", "a/b"),
        ("acme", ".."),
        ("acme", "s..1"),
        ("acme", "s 1"),
        ("acme", "*"),
        ("acme", ""),
        ("acme", 7),
    ],
)
def test_invalid_ids_are_refused_before_any_aws_call(
    sb: Sandbox,
    env: Envelope,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    contractor: object,
    sample_id: object,
) -> None:
    def no_aws(*args: object, **kwargs: object) -> None:
        raise AssertionError("an AWS client was created")

    session = sb.session
    monkeypatch.setattr(session, "client", no_aws)
    monkeypatch.setattr("securepipe.encryption.upload.shared_client", no_aws)  # none reused
    monkeypatch.setattr(session, "resource", no_aws)
    kms_before = env.kms_calls
    with pytest.raises(InvalidParameterError):
        sample_key(contractor, sample_id)  # type: ignore[arg-type]
    # A context that skipped SampleContext's checks (a plain object with the same fields).
    fake = type("Fake", (), {"contractor": contractor, "sample_id": sample_id, "purpose": "asr",
                             "format_version": "sp1"})()
    src = tmp_path / "clip.wav"
    src.write_bytes(b"RIFF....WAVE")
    with pytest.raises(InvalidParameterError):
        upload_sample(
            session, env, src, bucket=sb.resources.bucket("raw"), context=fake,
            key_arn=sb.resources.kms_key_arn, consent=CONSENT_NOT_CHECKED,
        )
    assert env.kms_calls == kms_before


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bucket": "Bad_Bucket"},
        {"bucket": ""},
        {"key_arn": "alias/securepipe-data"},
        {"key_arn": "arn:aws:kms:eu-west-1:210000000001:alias/securepipe-data"},
        {"context": {"securepipe:contractor": "c01"}},
        {"context": BatchContext("c01", "b1", "asr")},
        {"multipart_threshold": 1024},
        {"session": object()},
        {"envelope": object()},
    ],
)
def test_invalid_upload_arguments_are_refused_before_any_aws_call(
    sb: Sandbox,
    env: Envelope,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kwargs: dict[str, object],
) -> None:
    session = sb.session
    monkeypatch.setattr(boto3.Session, "client", lambda *a, **k: pytest.fail("AWS call"))
    monkeypatch.setattr("securepipe.encryption.upload.shared_client",  # none reused either
                        lambda *a, **k: pytest.fail("AWS call"))
    src = tmp_path / "clip.wav"
    src.write_bytes(b"RIFF....WAVE")
    args: dict[str, object] = {
        "session": session,
        "envelope": env,
        "src": src,
        "bucket": sb.resources.bucket("raw"),
        "context": SampleContext("c01", "s1", "asr"),
        "key_arn": sb.resources.kms_key_arn,
        "consent": CONSENT_NOT_CHECKED,
    }
    args.update(kwargs)
    with pytest.raises(InvalidParameterError):
        upload_sample(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"key": ""},
        {"key": "x" * 1025},
        {"bucket": "a"},
        {"expected_context": {"securepipe:contractor": "c01"}},
    ],
)
def test_invalid_download_arguments_are_refused_before_any_aws_call(
    sb: Sandbox,
    env: Envelope,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kwargs: dict[str, object],
) -> None:
    monkeypatch.setattr(boto3.Session, "client", lambda *a, **k: pytest.fail("AWS call"))
    monkeypatch.setattr("securepipe.encryption.upload.shared_client",  # none reused either
                        lambda *a, **k: pytest.fail("AWS call"))
    args: dict[str, object] = {
        "bucket": sb.resources.bucket("raw"),
        "key": "raw/c01/s1",
        "dst": tmp_path / "x.wav",
        "expected_context": SampleContext("c01", "s1", "asr"),
    }
    args.update(kwargs)
    with pytest.raises(InvalidParameterError):
        download_sample(sb.session, env, **args)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


# -- attribution and the consent gate (step 5) ---------------------------------------------


class _Gate:
    """A consent gate that records what it admitted and refuses one speaker (the registry's
    admit has this shape; encryption sits below retention, so the test brings its own)."""

    def __init__(self, refuse: str) -> None:
        self.refuse = refuse
        self.admitted: list[tuple[str, str, str]] = []

    def admit(self, speaker: str, sample_id: str, *, contractor: str, at: object) -> None:
        if speaker == self.refuse:
            raise ConsentError(speaker, "withdrawn")
        self.admitted.append((speaker, contractor, sample_id))

    def check_consent(self, speaker: str, at: object) -> None:
        if speaker == self.refuse:
            raise ConsentError(speaker, "erasing")


def test_an_upload_for_a_speaker_names_them_and_passes_the_gate_first(
    sb: Sandbox, env: Envelope, manifest: Manifest
) -> None:
    src, ctx = _wav(manifest, 5)
    speaker = manifest.utterances[5].speaker
    gate = _Gate(refuse="spk99")
    bucket, s3 = sb.resources.bucket("raw"), sb.session.client("s3")
    result = upload_sample(sb.session, env, src, bucket=bucket, context=ctx,
                           key_arn=sb.resources.kms_key_arn, speaker=speaker, consent=gate)
    # the gate is told exactly the key's contractor and sample (the index erasure deletes by)
    assert gate.admitted == [(speaker, ctx.contractor, ctx.sample_id)]
    assert result.key == f"raw/{ctx.contractor}/{ctx.sample_id}"
    meta = s3.head_object(Bucket=bucket, Key=result.key)["Metadata"]
    assert meta[upload.META_SPEAKER] == speaker and meta[upload.META_SAMPLE] == ctx.sample_id

    src, ctx = _wav(manifest, 6)
    calls: list[str] = []
    handler = lambda **kw: calls.append(kw["model"].name)  # noqa: E731
    sb.session.events.register("before-call.s3", handler)
    try:
        with pytest.raises(ConsentError):
            upload_sample(sb.session, env, src, bucket=bucket, context=ctx,
                          key_arn=sb.resources.kms_key_arn, speaker="spk99", consent=gate)
        # a gate needs its speaker; anything but a gate or the named choice is refused
        admit_only = type("AdmitOnly", (), {"admit": _Gate.admit})()
        for half in ({"consent": gate}, {"consent": None, "speaker": speaker},
                     {"consent": admit_only, "speaker": speaker}):
            with pytest.raises(InvalidParameterError):
                upload_sample(sb.session, env, src, bucket=bucket, context=ctx,
                              key_arn=sb.resources.kms_key_arn,
                              **half)  # type: ignore[arg-type]  # mixed-type kwargs dict
    finally:
        sb.session.events.unregister("before-call.s3", handler)
    assert calls == []                                               # nothing was sent


def test_consent_is_never_skipped_by_default(sb: Sandbox, env: Envelope,
                                              manifest: Manifest) -> None:
    """No default: an upload without consent= does not run, and the named choice is visible."""
    src, ctx = _wav(manifest, 5)
    with pytest.raises(TypeError, match="consent"):
        upload_sample(sb.session, env, src, bucket=sb.resources.bucket("raw"),  # type: ignore[call-arg]  # the point: consent= is required
                      context=ctx, key_arn=sb.resources.kms_key_arn)
    assert repr(CONSENT_NOT_CHECKED) == "CONSENT_NOT_CHECKED"


def test_a_speaker_refused_after_the_write_loses_exactly_that_version(
    sb: Sandbox, env: Envelope, manifest: Manifest
) -> None:
    """The post-write fence: consent admitted, the write lands, the re-check refuses (an
    erasure began in between): the version written is deleted, the others stay, and the
    caller gets a typed refusal, not a result."""
    src, ctx = _wav(manifest, 5)
    speaker = manifest.utterances[5].speaker
    bucket, s3 = sb.resources.bucket("raw"), sb.session.client("s3")
    gate = _Gate(refuse="nobody")
    first = upload_sample(sb.session, env, src, bucket=bucket, context=ctx,
                          key_arn=sb.resources.kms_key_arn, speaker=speaker, consent=gate)

    class Erased(_Gate):      # admits, then finds the speaker erasing once the write is done
        def check_consent(self, speaker: str, at: object) -> None:
            raise ConsentError(speaker, "erasing")

    def listing() -> tuple[set[str], int]:
        out = s3.list_object_versions(Bucket=bucket, Prefix=first.key)
        return ({v["VersionId"] for v in out.get("Versions", [])},
                len(out.get("DeleteMarkers", [])))

    before = listing()
    assert first.version_id in before[0]
    written: list[str] = []
    s3_events = sb.session.events
    keep = lambda parsed, **_: written.append(parsed.get("VersionId"))  # noqa: E731
    s3_events.register("after-call.s3.PutObject", keep)
    try:
        with pytest.raises(ConsentError) as refused:
            upload_sample(sb.session, env, src, bucket=bucket, context=ctx,
                          key_arn=sb.resources.kms_key_arn, speaker=speaker, consent=Erased("x"))
    finally:
        s3_events.unregister("after-call.s3.PutObject", keep)
    assert refused.value.reason == "revoked-after-write" and "deleted" in str(refused.value)
    assert len(written) == 1 and written[0] not in before[0]      # it was written ...
    assert listing() == before                                     # ... and only it is gone


@pytest.mark.parametrize("server", [False, True], ids=["in-process", "server"])
def test_a_20_mib_ciphertext_uploads_into_a_hardened_bucket(server: bool, tmp_path: Path) -> None:
    """The kit's multipart upload passes the bucket policy the kit's own hardening writes.

    UploadPart and CompleteMultipartUpload carry no SSE header; the policy denies only requests
    that name another encryption, and default encryption covers the parts (hardening.py).
    """
    from securepipe.encryption.hardening import apply_bucket_hardening

    src = tmp_path / "long.wav"
    src.write_bytes(os.urandom(20 * 1024 * 1024))
    ctx = SampleContext("c42", "twenty-mib", "speech-model-training")
    with Sandbox(server=server, tls=server) as box:
        bucket, key_arn = box.resources.bucket("raw"), box.resources.kms_key_arn
        apply_bucket_hardening(box.session, bucket, key_arn)
        envelope = Envelope(box.session, EnvelopeConfig(key_arn))
        result = upload_sample(box.session, envelope, src, bucket=bucket, context=ctx,
                               key_arn=key_arn, consent=CONSENT_NOT_CHECKED)
        assert result.multipart
        head = box.client("s3").head_object(Bucket=bucket, Key=result.key)
        assert head["ContentLength"] > 20 * 1024 * 1024
        assert head["SSEKMSKeyId"] == key_arn
        dst = tmp_path / "back.wav"
        download_sample(box.session, envelope, bucket=bucket, key=result.key, dst=dst,
                        expected_context=ctx)
        assert dst.read_bytes() == src.read_bytes()
        # the same policy still refuses an upload naming another algorithm
        with pytest.raises(ClientError) as err:
            box.client("s3").put_object(Bucket=bucket, Key="raw/c42/plain", Body=b"x",
                                        ServerSideEncryption="AES256")
        assert err.value.response["Error"]["Code"] == "AccessDenied"
