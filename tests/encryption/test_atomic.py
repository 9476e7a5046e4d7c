"""No plaintext left behind: a decryption killed with SIGKILL part-way leaves no plaintext file
once the next call has run (on Linux none at any moment: the output has no name until it is
complete), and a part still being written by a live writer is never swept."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT

from securepipe.encryption import atomic
from securepipe.encryption.atomic import AtomicOutput, sweep_stale_parts
from securepipe.encryption.envelope import Envelope, EnvelopeConfig, SampleContext
from securepipe.errors import InvalidParameterError
from securepipe.sandbox.account import Sandbox

MARKER = b"VOICEPRINT-PLAINTEXT-"
CTX = SampleContext("c01", "spk01_u1", "speech-model-training")

_CHILD = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    import securepipe.encryption.atomic as atomic
    import securepipe.encryption.envelope as envelope_module
    from securepipe.encryption.envelope import Envelope, EnvelopeConfig, SampleContext
    from securepipe.sandbox.account import Sandbox

    src_dir, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    atomic.USE_O_TMPFILE = sys.argv[3] == "1"

    class Stalling(atomic.AtomicOutput):
        # Writes the first 256 KiB of plaintext to the part, then stalls until killed.
        def __init__(self, dst):
            super().__init__(dst)
            real, done = self.file, [0]

            class Writer:
                def write(self, data):
                    n = real.write(data)
                    done[0] += n
                    if done[0] >= 256 * 1024:
                        real.flush()
                        os.fsync(real.fileno())
                        print("PARTIAL", flush=True)
                        time.sleep(600)
                    return n

                def __getattr__(self, name):
                    return getattr(real, name)

            self.file = Writer()

    ctx = SampleContext("c01", "spk01_u1", "speech-model-training")
    with Sandbox() as sb:
        env = Envelope(sb.session, EnvelopeConfig(key_arns=sb.resources.kms_key_arn))
        env.encrypt_file(src_dir / "plain.bin", src_dir / "msg.enc", ctx)
        envelope_module.AtomicOutput = Stalling
        env.decrypt_file(src_dir / "msg.enc", out_dir / "decrypted.bin", ctx)
    print("FINISHED", flush=True)
""")


def _plaintext_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file() and MARKER in p.read_bytes())


@pytest.mark.parametrize("unnamed", [True, False], ids=["o_tmpfile", "named-part"])
def test_sigkill_during_decryption_leaves_no_plaintext(tmp_path: Path, sandbox: Sandbox,
                                                       unnamed: bool) -> None:
    if unnamed and not atomic.USE_O_TMPFILE:
        pytest.skip("O_TMPFILE is Linux only")
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    (src / "plain.bin").write_bytes((MARKER + os.urandom(43)) * 32_768)  # 2 MiB
    env_vars = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(src), str(out),
                              "1" if unnamed else "0"], cwd=ROOT, env=env_vars,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready, _, _ = select.select([child.stdout], [], [], 180)
        assert ready, "the child never reached the middle of the decryption"
        line = child.stdout.readline()  # type: ignore[union-attr]
        assert line.strip() == b"PARTIAL", line + child.stderr.read()  # type: ignore[union-attr]
        parts = sorted(p.name for p in out.glob(".securepipe-*.part"))
        if unnamed:
            assert list(out.iterdir()) == []  # the plaintext so far has no name at all
        else:
            assert len(parts) == 1 and _plaintext_files(out) == parts  # really mid-way
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    if not unnamed:
        assert _plaintext_files(out) == parts  # SIGKILL runs no cleanup: the part is still there

    # The next call that writes into the folder sweeps what the dead writer left.
    env = Envelope(sandbox.session, EnvelopeConfig(key_arns=sandbox.resources.kms_key_arn))
    (src / "other.bin").write_bytes(b"another sample")
    env.encrypt_file(src / "other.bin", src / "other.enc", CTX)
    env.decrypt_file(src / "other.enc", out / "other.bin", CTX)
    assert _plaintext_files(out) == []
    assert sorted(p.name for p in out.iterdir()) == ["other.bin"]


def test_a_live_writers_part_is_never_swept(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(atomic, "USE_O_TMPFILE", False)
    with AtomicOutput(tmp_path / "dst.bin") as out:
        out.file.write(b"secret")
        assert out.path is not None and out.path.exists()
        assert (out.path.stat().st_mode & 0o777) == 0o600
        assert sweep_stale_parts(tmp_path) == []  # locked by this (live) writer
        assert out.path.exists()
        out.commit()
    assert (tmp_path / "dst.bin").read_bytes() == b"secret"
    assert list(tmp_path.glob(".securepipe-*")) == []


def test_unnamed_output_has_no_name_until_commit(tmp_path: Path) -> None:
    if not atomic.USE_O_TMPFILE:
        pytest.skip("O_TMPFILE is Linux only")
    with AtomicOutput(tmp_path / "dst.bin") as out:
        out.file.write(b"secret")
        assert list(tmp_path.iterdir()) == []
        out.commit()
    assert [p.name for p in tmp_path.iterdir()] == ["dst.bin"]
    assert ((tmp_path / "dst.bin").stat().st_mode & 0o777) == 0o600
    with pytest.raises(RuntimeError), AtomicOutput(tmp_path / "never.bin") as out:
        out.file.write(b"secret")
        raise RuntimeError("fails part-way")
    assert [p.name for p in tmp_path.iterdir()] == ["dst.bin"]


def test_paths_of_the_wrong_type_are_refused(sandbox: Sandbox, tmp_path: Path) -> None:
    env = Envelope(sandbox.session, EnvelopeConfig(key_arns=sandbox.resources.kms_key_arn))
    for src, dst in ((123, tmp_path / "x"), (tmp_path / "x", None), ("", tmp_path / "x")):
        with pytest.raises(InvalidParameterError):
            env.decrypt_file(src, dst, CTX)  # type: ignore[arg-type]
        with pytest.raises(InvalidParameterError):
            env.encrypt_file(src, dst, CTX)  # type: ignore[arg-type]
