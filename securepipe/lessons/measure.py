"""Small measurements the lessons show: Python heap peak, wall time, size overhead.

For the notebooks, which must run in seconds. The benchmarks (``benchmarks/``) measure the same
things at full size and report peak RSS from fresh processes.
"""

from __future__ import annotations

import os
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from securepipe.errors import InvalidParameterError

T = TypeVar("T")
MiB = 1024 * 1024


def peak_python_memory(fn: Callable[[], T]) -> tuple[T, int, float]:
    """Run ``fn`` and return its result, the peak Python heap it allocated, and wall seconds."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    start = time.perf_counter()
    try:
        result = fn()
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak, seconds


def write_random_file(path: Path, size: int, *, chunk: int = MiB) -> Path:
    """Write ``size`` random bytes to ``path`` in chunks (incompressible, like audio)."""
    if size < 0:
        raise InvalidParameterError(f"size must be >= 0, got {size}")
    with open(path, "wb") as out:
        left = size
        while left:
            n = min(chunk, left)
            out.write(os.urandom(n))
            left -= n
    return path


def compare_encryption(
    envelope: Any, context: Any, fernet_key: bytes, sizes: Sequence[int], workdir: Path
) -> list[dict[str, Any]]:
    """Encrypt then decrypt files of each size with the Fernet pattern and with the kit's path.

    Returns one row per (method, size): Python heap peak (MiB), seconds, MB/s of plaintext, and
    ciphertext size over plaintext size.
    """
    from securepipe.lessons.antipatterns import fernet_decrypt_sample, fernet_encrypt_sample

    rows: list[dict[str, Any]] = []
    workdir.mkdir(parents=True, exist_ok=True)
    for size in sizes:
        src = write_random_file(workdir / f"plain-{size}", size)

        def fernet_round_trip(src: Path = src) -> int:
            token = fernet_encrypt_sample(src, fernet_key)
            (workdir / "token").write_bytes(token)
            (workdir / "fernet-out").write_bytes(fernet_decrypt_sample(token, fernet_key))
            return len(token)

        def kit_round_trip(src: Path = src) -> int:
            enc = envelope.encrypt_file(src, workdir / "message", context)
            envelope.decrypt_file(workdir / "message", workdir / "kit-out", context)
            return int(enc.ciphertext_bytes)

        for method, fn in (("Fernet pattern", fernet_round_trip), ("kit (Encryption SDK)",
                                                                  kit_round_trip)):
            out_size, peak, seconds = peak_python_memory(fn)
            rows.append({
                "method": method, "size MiB": size / MiB, "peak MiB": peak / MiB,
                "seconds": seconds, "MB/s": (2 * size / 1e6) / seconds if seconds else 0.0,
                "ciphertext/plaintext": out_size / size if size else float("nan"),
            })
        for name in ("token", "fernet-out", "message", "kit-out"):
            (workdir / name).unlink(missing_ok=True)
        src.unlink()
    return rows
