from __future__ import annotations

from pathlib import Path

import pytest

from securepipe.encryption.envelope import Envelope, EnvelopeConfig, SampleContext
from securepipe.errors import InvalidParameterError
from securepipe.lessons.antipatterns import generate_shared_key
from securepipe.lessons.measure import (
    MiB,
    compare_encryption,
    peak_python_memory,
    write_random_file,
)
from securepipe.sandbox.account import Sandbox


def test_peak_python_memory_sees_a_big_allocation() -> None:
    result, peak, seconds = peak_python_memory(lambda: len(bytearray(8 * MiB)))
    assert result == 8 * MiB
    assert peak >= 8 * MiB and seconds >= 0


def test_write_random_file(tmp_path: Path) -> None:
    path = write_random_file(tmp_path / "r", 3 * MiB + 7)
    assert path.stat().st_size == 3 * MiB + 7
    with pytest.raises(InvalidParameterError):
        write_random_file(tmp_path / "bad", -1)


def test_compare_encryption_shows_fernet_memory_grows(sandbox: Sandbox, tmp_path: Path) -> None:
    envelope = Envelope(sandbox.session, EnvelopeConfig(key_arns=sandbox.resources.kms_key_arn))
    ctx = SampleContext("c01", "s1", "speech-model-training")
    rows = compare_encryption(envelope, ctx, generate_shared_key(), [MiB, 4 * MiB], tmp_path)
    by = {(r["method"], r["size MiB"]): r for r in rows}
    fernet_small, fernet_big = by[("Fernet pattern", 1.0)], by[("Fernet pattern", 4.0)]
    kit_big = by[("kit (Encryption SDK)", 4.0)]
    assert fernet_big["peak MiB"] > 3 * fernet_small["peak MiB"]   # grows with the file
    assert fernet_big["peak MiB"] > 4.0                            # at least the whole file
    assert kit_big["peak MiB"] < 2.0                               # streams in frames
    assert fernet_big["ciphertext/plaintext"] == pytest.approx(4 / 3, rel=0.01)
    assert list(tmp_path.iterdir()) == []                          # cleans up after itself
