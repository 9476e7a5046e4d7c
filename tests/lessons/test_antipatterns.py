"""The anti-pattern's real behaviour, which the lessons attack and measure (common_pattern)."""

from __future__ import annotations

import base64
import os
import shutil
import struct
import time
from pathlib import Path

import pytest

from securepipe.errors import DecryptionError, InvalidParameterError
from securepipe.lessons.antipatterns import (
    SHARED_KEY_ENV_VAR,
    fernet_decrypt_sample,
    fernet_encrypt_sample,
    generate_shared_key,
    shared_key_from_env,
)


@pytest.fixture
def shared_key(monkeypatch: pytest.MonkeyPatch) -> bytes:
    """One key for every contractor, handed out through an environment variable."""
    monkeypatch.setenv(SHARED_KEY_ENV_VAR, generate_shared_key().decode())
    return shared_key_from_env()


def test_round_trip(shared_key: bytes, tmp_path: Path) -> None:
    data = os.urandom(30_000)
    (tmp_path / "clip.wav").write_bytes(data)
    token = fernet_encrypt_sample(tmp_path / "clip.wav", shared_key)
    assert fernet_decrypt_sample(token, shared_key) == data


def test_token_moved_to_another_contractor_still_decrypts(
    shared_key: bytes, tmp_path: Path
) -> None:
    """The weakness: nothing binds the ciphertext to contractor A or to the sample."""
    data = os.urandom(5_000)
    folder_a, folder_b = tmp_path / "contractor-a", tmp_path / "contractor-b"
    folder_a.mkdir()
    folder_b.mkdir()
    (folder_a / "clip-001.wav").write_bytes(data)
    token = fernet_encrypt_sample(folder_a / "clip-001.wav", shared_key)
    (folder_a / "clip-001.enc").write_bytes(token)
    shutil.copy(folder_a / "clip-001.enc", folder_b / "clip-999.enc")  # moved and renamed
    assert fernet_decrypt_sample((folder_b / "clip-999.enc").read_bytes(), shared_key) == data


def test_token_is_bigger_and_leaks_its_creation_time(shared_key: bytes, tmp_path: Path) -> None:
    data = os.urandom(96_000)  # about a 3 s, 16 kHz, 16-bit mono clip
    (tmp_path / "clip.wav").write_bytes(data)
    token = fernet_encrypt_sample(tmp_path / "clip.wav", shared_key)
    assert len(token) / len(data) > 1.33
    raw = base64.urlsafe_b64decode(token)
    (created,) = struct.unpack(">Q", raw[1:9])  # readable without the key
    assert abs(created - time.time()) < 60


def test_tampering_and_wrong_key_raise_the_kit_error(shared_key: bytes, tmp_path: Path) -> None:
    (tmp_path / "clip.wav").write_bytes(b"voice")
    token = fernet_encrypt_sample(tmp_path / "clip.wav", shared_key)
    with pytest.raises(DecryptionError):
        fernet_decrypt_sample(token[:-2] + b"AA", shared_key)
    with pytest.raises(DecryptionError):
        fernet_decrypt_sample(token, generate_shared_key())


def test_key_problems_are_parameter_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(SHARED_KEY_ENV_VAR, raising=False)
    with pytest.raises(InvalidParameterError):
        shared_key_from_env()
    (tmp_path / "clip.wav").write_bytes(b"voice")
    with pytest.raises(InvalidParameterError):
        fernet_encrypt_sample(tmp_path / "clip.wav", b"not a key")


@pytest.mark.parametrize("server", [False, True], ids=["in-process", "server"])
def test_long_lived_reader_reads_every_contractor_and_never_expires(server: bool) -> None:
    import datetime as dt

    from securepipe.lessons.antipatterns import long_lived_reader
    from securepipe.sandbox.account import Sandbox

    with Sandbox(server=server) as sb:
        raw = sb.resources.bucket("raw")
        admin = sb.session.client("s3")
        for key in ("raw/c01/a", "raw/c02/b"):
            admin.put_object(Bucket=raw, Key=key, Body=b"voice")
        leaked = long_lived_reader(sb.session, user_name="qa-analyst", bucket=raw)
        # what the key may do: the user's policy, evaluated (moto enforces no IAM user policy)
        from securepipe.access.review import user_principal
        from securepipe.policy import Request, evaluate

        me = user_principal(sb.session, "qa-analyst")
        for action, resource in (("s3:GetObject", f"arn:aws:s3:::{raw}/raw/c02/b"),
                                 ("s3:ListBucket", f"arn:aws:s3:::{raw}")):
            assert evaluate(Request(action, resource, leaked.user_arn, {}),
                            identity=list(me.identity)).allowed
        assert not evaluate(Request("s3:PutObject", f"arn:aws:s3:::{raw}/raw/c02/b",
                                    leaked.user_arn, {}), identity=list(me.identity)).allowed
        assert leaked.session().client("sts").get_caller_identity()["Arn"] == leaked.user_arn
        s3 = leaked.session().client("s3")
        assert s3.meta.endpoint_url == admin.meta.endpoint_url   # same sandbox, same endpoint
        assert s3.list_objects_v2(Bucket=raw)["KeyCount"] == 2
        sb.move_clock(dt.timedelta(days=365))
        assert s3.get_object(Bucket=raw, Key="raw/c02/b")["Body"].read() == b"voice"
        with pytest.raises(InvalidParameterError):
            long_lived_reader(sb.session, user_name="x", bucket="Not A Bucket")
