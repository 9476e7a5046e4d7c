"""Encryption throughput and peak memory: the kit's envelope against three other ways.

Measured in one run, file to file, for 1 MiB, 16 MiB, 256 MiB and 1 GiB of random bytes:

* ``kit``: :class:`securepipe.encryption.envelope.Envelope` with its defaults (committing suite
without
  signature, 64 KiB frames, streaming, atomic fsynced output);
* ``fernet``: the common pattern (:mod:`securepipe.lessons.antipatterns`), the whole file in memory;
* ``sdk-default``: the AWS Encryption SDK as it comes (``EncryptionSDKClient().stream`` with a
  ``StrictAwsKmsMasterKeyProvider``: signed committing suite, 4 KiB frames);
* ``aes-gcm``: raw AES-256-GCM over 64 KiB chunks (pyca/cryptography ``AESGCM``), the ceiling.
  It has no key management and is not a file format: a yardstick, never something to use.

Each (method, size) runs in a fresh child process that reports its own peak RSS
(``getrusage(RUSAGE_SELF).ru_maxrss``). Linux carries the peak RSS of the address space a
process had before ``execve`` into ``ru_maxrss``, so a child started straight from the parent
(which holds moto and the sandbox) would report the parent's size: children are therefore
started by a small launcher process (a bare interpreter), and each child also reports the
kernel's ``VmHWM`` (peak RSS of its own image) as a cross-check. Children never import moto: the
parent runs
``Sandbox(server=True)`` and points each child at it through the sandbox's AWS config profile,
so a child holds what a real uploader would. Every method writes its outputs to files and
fsyncs them, as the kit's envelope does, so the file I/O is the same for all.

``SECUREPIPE_BENCH_MAX_MB`` caps the sizes (in MiB) for quick runs; default: no cap.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from securepipe.report import format_table

MIB = 1024 * 1024
SIZES_MIB = (1, 16, 256, 1024)
METHODS = ("kit", "fernet", "sdk-default", "aes-gcm")
MAX_ENV_VAR = "SECUREPIPE_BENCH_MAX_MB"
RSS_TARGET_MIB = 128  # the kit's peak RSS for a 1 GiB file
SPEEDUP_TARGET = 3.0  # the kit's enc+dec throughput against the common pattern's
_CHUNK = 64 * 1024
_WRITE_CHUNK = 4 * MIB
_ROOT = Path(__file__).resolve().parents[1]
_CONTEXT = {"contractor": "bench", "sample_id": "sample-0001", "purpose": "benchmark"}

_Step = Callable[[Path, Path], dict[str, Any]]


# -- parent ------------------------------------------------------------------------------------


def main() -> None:
    from securepipe.sandbox.account import Sandbox  # the parent only: children must not import moto

    sizes = _sizes()
    rows: list[dict[str, Any]] = []
    results: dict[tuple[str, int], dict[str, Any]] = {}
    notes: dict[str, str] = {}
    with (
        _Launcher() as launcher,
        Sandbox(server=True) as sb,
        tempfile.TemporaryDirectory(prefix="sp-bench-") as tmp,
    ):
        env = _child_env(sb.config_file, Sandbox.PROFILE)
        work = Path(tmp)
        for size_mib in sizes:
            src = work / f"plain-{size_mib}MiB.bin"
            digest = _write_random(src, size_mib * MIB)
            reps = max(1, min(16, 64 // size_mib))
            for method in METHODS:
                spec = {
                    "method": method,
                    "src": str(src),
                    "workdir": str(work),
                    "key_arn": sb.resources.kms_key_arn,
                    "reps": reps,
                    "sha256": digest,
                }
                out = launcher.run(spec, env)
                results[(method, size_mib)] = out
                if out.get("suite"):
                    notes[method] = out["suite"]
                mb = size_mib * MIB / 1e6
                rows.append({
                    "method": method,
                    "size": _size_label(size_mib),
                    "enc MB/s": mb / out["enc_s"],
                    "dec MB/s": mb / out["dec_s"],
                    "enc+dec MB/s": mb / (out["enc_s"] + out["dec_s"]),
                    "peak RSS MiB": out["peak_rss_kib"] / 1024,
                    "start RSS MiB": out["start_rss_kib"] / 1024,
                    "VmHWM MiB": out["vm_hwm_kib"] / 1024,
                    "runs": reps,
                })
            src.unlink()

    print(format_table(rows))
    print()
    print(format_table(_ratio_rows(results, sizes)))
    print()
    for line in _target_lines(results, sizes):
        print(line)
    print()
    print(
        f"env: wall-clock timings on this machine ({os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}, {platform.machine()});"
        " one fresh child process per (method, size); median of 'runs' runs; MB = 10^6 bytes"
        " of plaintext; outputs written to local disk and fsynced; KMS calls (kit and"
        " sdk-default: one GenerateDataKey per encryption, one Decrypt per decryption) go to a"
        " local moto server over HTTP, so real KMS adds its network round trip per file;"
        " peak RSS is the child's ru_maxrss, interpreter and imports included (start RSS:"
        " after imports and set-up, before any data; VmHWM: the kernel's peak RSS of the"
        " child's own image, a cross-check)."
    )
    for method, suite in notes.items():
        print(f"suite: {method}: {suite}")


def _sizes() -> list[int]:
    raw = os.environ.get(MAX_ENV_VAR, "").strip()
    if not raw:
        return list(SIZES_MIB)
    try:
        cap = int(raw)
    except ValueError:
        raise SystemExit(f"{MAX_ENV_VAR} must be an integer number of MiB, got {raw!r}") from None
    sizes = [s for s in SIZES_MIB if s <= cap]
    if not sizes:
        raise SystemExit(f"{MAX_ENV_VAR}={cap} leaves no size to measure (smallest is 1)")
    return sizes


def _size_label(size_mib: int) -> str:
    return f"{size_mib // 1024} GiB" if size_mib >= 1024 else f"{size_mib} MiB"


def _child_env(config_file: Path | None, profile: str) -> dict[str, str]:
    """The child's environment: the sandbox's AWS profile and nothing else AWS-related."""
    if config_file is None:
        raise SystemExit("the sandbox is not in server mode")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "AWS_CONFIG_FILE": str(config_file),
        "AWS_PROFILE": profile,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    })
    return env


def _write_random(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(_WRITE_CHUNK, left))
            f.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


_LAUNCHER = """
import json, subprocess, sys
for line in sys.stdin:
    req = json.loads(line)
    p = subprocess.run(req["argv"], cwd=req["cwd"], env=req["env"], capture_output=True,
                       text=True, timeout=req["timeout"], check=False)
    print(json.dumps({"rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr[-4000:]}),
          flush=True)
"""


class _Launcher:
    """A bare interpreter that starts the worker children, so they inherit none of our RSS."""

    def __enter__(self) -> _Launcher:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def run(self, spec: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
        code = "import sys; from benchmarks.bench_encryption import _worker; _worker(sys.argv[1])"
        request = {
            "argv": [sys.executable, "-c", code, json.dumps(spec)],
            "cwd": str(_ROOT),
            "env": env,
            "timeout": 3600,
        }
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        reply = json.loads(self._proc.stdout.readline())
        if reply["rc"] != 0:
            raise SystemExit(f"{spec['method']} child failed:\n{reply['stderr']}")
        result: dict[str, Any] = json.loads(reply["stdout"].strip().splitlines()[-1])
        if result["moto_loaded"]:
            raise SystemExit(f"{spec['method']} child imported moto")
        if not result["round_trip_ok"]:
            raise SystemExit(f"{spec['method']} child did not round-trip the file")
        return result


def _ratio_rows(
    results: dict[tuple[str, int], dict[str, Any]], sizes: list[int]
) -> list[dict[str, Any]]:
    rows = []
    for size in sizes:
        kit = results[("kit", size)]
        fernet = results[("fernet", size)]
        sdk, ceiling = results[("sdk-default", size)], results[("aes-gcm", size)]
        vs_fernet = _both(fernet) / _both(kit)
        rows.append({
            "size": _size_label(size),
            "kit/Fernet enc": fernet["enc_s"] / kit["enc_s"],
            "kit/Fernet dec": fernet["dec_s"] / kit["dec_s"],
            "kit/Fernet enc+dec": vs_fernet,
            f">= {SPEEDUP_TARGET:g}x Fernet": "PASS" if vs_fernet >= SPEEDUP_TARGET else "FAIL",
            "kit/SDK-default enc": sdk["enc_s"] / kit["enc_s"],
            "kit/SDK-default dec": sdk["dec_s"] / kit["dec_s"],
            "kit/AES-GCM enc+dec": _both(ceiling) / _both(kit),
        })
    return rows


def _target_lines(results: dict[tuple[str, int], dict[str, Any]], sizes: list[int]) -> list[str]:
    largest = max(sizes)
    kit = results[("kit", largest)]
    lines = []
    if largest == 1024:
        rss = kit["peak_rss_kib"] / 1024
        verdict = "PASS" if rss < RSS_TARGET_MIB else "FAIL"
        lines.append(
            f"target: kit peak RSS for 1 GiB = {rss:.1f} MiB (target < {RSS_TARGET_MIB} MiB): "
            f"{verdict}"
        )
    else:
        lines.append(f"target: kit peak RSS for 1 GiB: not measured ({MAX_ENV_VAR} caps sizes)")
    ratio = _both(results[("fernet", largest)]) / _both(kit)
    verdict = "PASS" if ratio >= SPEEDUP_TARGET else "FAIL"
    lines.append(
        f"target: kit enc+dec throughput vs Fernet at {_size_label(largest)} = {ratio:.2f}x "
        f"(target >= {SPEEDUP_TARGET:g}x): {verdict}"
    )
    worst = min(sizes, key=lambda s: _both(results[("fernet", s)]) / _both(results[("kit", s)]))
    worst_ratio = _both(results[("fernet", worst)]) / _both(results[("kit", worst)])
    lines.append(
        f"        lowest kit/Fernet enc+dec ratio over all sizes: {worst_ratio:.2f}x at "
        f"{_size_label(worst)} ({'PASS' if worst_ratio >= SPEEDUP_TARGET else 'FAIL'})"
    )
    return lines


def _both(result: dict[str, Any]) -> float:
    return float(result["enc_s"] + result["dec_s"])


# -- child -------------------------------------------------------------------------------------


def _worker(spec_json: str) -> None:
    """Run one (method, size) in this fresh process and print one JSON line."""
    import resource

    spec = json.loads(spec_json)
    src = Path(spec["src"])
    workdir = Path(spec["workdir"])
    enc_path = workdir / f"{spec['method']}.enc"
    out_path = workdir / f"{spec['method']}.out"
    setups: dict[str, Callable[[str], tuple[_Step, _Step]]] = {
        "kit": _kit,
        "fernet": _fernet,
        "sdk-default": _sdk_default,
        "aes-gcm": _aes_gcm,
    }
    encrypt, decrypt = setups[spec["method"]](spec["key_arn"])
    start_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    enc_times, dec_times = [], []
    suite = ""
    try:
        for _ in range(int(spec["reps"])):
            t0 = time.perf_counter()
            info = encrypt(src, enc_path)
            t1 = time.perf_counter()
            decrypt(enc_path, out_path)
            t2 = time.perf_counter()
            enc_times.append(t1 - t0)
            dec_times.append(t2 - t1)
            suite = info.get("suite", "")
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        vm_hwm = _vm_hwm_kib()
        round_trip_ok = _sha256(out_path) == spec["sha256"]
    finally:
        enc_path.unlink(missing_ok=True)
        out_path.unlink(missing_ok=True)
    print(json.dumps({
        "enc_s": statistics.median(enc_times),
        "dec_s": statistics.median(dec_times),
        "peak_rss_kib": peak_rss,  # Linux: KiB
        "start_rss_kib": start_rss,
        "vm_hwm_kib": vm_hwm,
        "moto_loaded": "moto" in sys.modules,
        "round_trip_ok": round_trip_ok,
        "suite": suite,
    }))


def _vm_hwm_kib() -> int:
    """Peak RSS of this process image, from /proc (the cross-check for ``ru_maxrss``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _kit(key_arn: str) -> tuple[_Step, _Step]:
    import boto3

    from securepipe.encryption.envelope import Envelope, EnvelopeConfig, SampleContext

    envelope = Envelope(boto3.Session(), EnvelopeConfig(key_arn))  # profile from AWS_PROFILE
    context = SampleContext(**_CONTEXT)

    def encrypt(src: Path, dst: Path) -> dict[str, Any]:
        result = envelope.encrypt_file(src, dst, context)
        return {"suite": f"{result.algorithm}, {result.frame_length} B frames"}

    def decrypt(src: Path, dst: Path) -> dict[str, Any]:
        envelope.decrypt_file(src, dst, context)
        return {}

    return encrypt, decrypt


def _fernet(key_arn: str) -> tuple[_Step, _Step]:
    from securepipe.lessons.antipatterns import (
        fernet_decrypt_sample,
        fernet_encrypt_sample,
        generate_shared_key,
    )

    key = generate_shared_key()

    def encrypt(src: Path, dst: Path) -> dict[str, Any]:
        _write_durably(dst, fernet_encrypt_sample(src, key))
        return {"suite": "Fernet (AES-128-CBC + HMAC-SHA256, base64), whole file in memory"}

    def decrypt(src: Path, dst: Path) -> dict[str, Any]:
        _write_durably(dst, fernet_decrypt_sample(src.read_bytes(), key))
        return {}

    return encrypt, decrypt


def _sdk_default(key_arn: str) -> tuple[_Step, _Step]:
    import aws_encryption_sdk
    from aws_encryption_sdk import StrictAwsKmsMasterKeyProvider

    client = aws_encryption_sdk.EncryptionSDKClient()  # every setting at its default
    provider = StrictAwsKmsMasterKeyProvider(key_ids=[key_arn])  # default botocore session
    context = {f"securepipe:{k}": v for k, v in _CONTEXT.items()}

    def encrypt(src: Path, dst: Path) -> dict[str, Any]:
        with (
            open(src, "rb") as fsrc,
            open(dst, "wb") as fdst,
            client.stream(
                mode="e", source=fsrc, key_provider=provider, encryption_context=context
            ) as encryptor,
        ):
            for chunk in encryptor:
                fdst.write(chunk)
            header = encryptor.header
            fdst.flush()
            os.fsync(fdst.fileno())
        return {"suite": f"{header.algorithm.name}, {header.frame_length} B frames"}

    def decrypt(src: Path, dst: Path) -> dict[str, Any]:
        with (
            open(src, "rb") as fsrc,
            open(dst, "wb") as fdst,
            client.stream(mode="d", source=fsrc, key_provider=provider) as decryptor,
        ):
            for chunk in decryptor:
                fdst.write(chunk)
            fdst.flush()
            os.fsync(fdst.fileno())
        return {}

    return encrypt, decrypt


def _aes_gcm(key_arn: str) -> tuple[_Step, _Step]:
    """The ceiling: AES-256-GCM per 64 KiB chunk, counter nonce, index and last-flag as AAD."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    keys: dict[Path, bytes] = {}
    tag = 16

    def aad(index: int, last: bool) -> bytes:
        return struct.pack(">Q?", index, last)

    def encrypt(src: Path, dst: Path) -> dict[str, Any]:
        key = keys[dst] = AESGCM.generate_key(bit_length=256)  # fresh key: counter nonces
        aead = AESGCM(key)
        with open(src, "rb") as fsrc, open(dst, "wb") as fdst:
            index, chunk = 0, fsrc.read(_CHUNK)
            while True:
                following = fsrc.read(_CHUNK)
                last = not following
                nonce = index.to_bytes(12, "big")
                fdst.write(aead.encrypt(nonce, chunk, aad(index, last)))
                if last:
                    break
                index, chunk = index + 1, following
            fdst.flush()
            os.fsync(fdst.fileno())
        return {"suite": "AES-256-GCM, 64 KiB chunks, no key management (ceiling only)"}

    def decrypt(src: Path, dst: Path) -> dict[str, Any]:
        aead = AESGCM(keys[src])
        with open(src, "rb") as fsrc, open(dst, "wb") as fdst:
            index, record = 0, fsrc.read(_CHUNK + tag)
            while True:
                following = fsrc.read(_CHUNK + tag)
                last = not following
                fdst.write(aead.decrypt(index.to_bytes(12, "big"), record, aad(index, last)))
                if last:
                    break
                index, record = index + 1, following
            fdst.flush()
            os.fsync(fdst.fileno())
        return {}

    return encrypt, decrypt
