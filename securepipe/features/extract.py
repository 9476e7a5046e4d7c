"""Derived features the pipeline keeps instead of raw audio: a versioned spec, extraction, storage.

Step 4 of the kit keeps frame-wise features (a log-mel spectrogram or MFCCs) and deletes the raw
recording. This module pins exactly what is stored, so that a stored matrix can be traced back to
the parameters that made it, and so that :mod:`securepipe.features.leakage` can measure how much of
the
voice those parameters keep (a lot: see that module).

A :class:`FeatureSpec` is frozen and versioned. Version ``"fs1"`` fixes the choices that are not
fields: a periodic Hann window, centred frames with zero padding, librosa's Slaney-style mel scale
and area-normalised mel filters, and (for MFCCs) an orthonormal DCT-II of the log-mel bands with
no liftering. Log handling is explicit:

* ``scale="db"`` stores ``10 * log10(max(power, 1e-10))`` with a reference power of 1.0 (absolute,
  not relative to the loudest frame), floored ``top_db`` below the matrix's maximum;
* ``scale="power"`` (mel only) stores the linear mel power itself (``top_db`` must be ``None``).

MFCCs are always computed from the dB mel bands. Every stored matrix is float32, shape
``(n_features, n_frames)`` with one frame per ``hop_length`` samples.

:func:`to_bytes` / :func:`from_bytes` store a matrix with its spec in a small self-describing
format (no pickle, no ``np.load``): an 8-byte magic, a 4-byte big-endian header length, a
canonical JSON header (format, dtype, shape, spec) and the little-endian float32 payload. The
encoding is canonical, so ``to_bytes(*from_bytes(blob)) == blob`` for every blob it accepts, and
anything else (truncated, padded, wrong magic, a pickle, a non-canonical header, NaNs) is refused
with :class:`~securepipe.errors.InvalidParameterError`.
"""

from __future__ import annotations

import json
import math
import numbers
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from typing import Any

import numpy as np

from securepipe.errors import InvalidParameterError
from securepipe.features import spectral
from securepipe.ids import check_int

__all__ = [
    "FORMAT_MAGIC",
    "MEL_SPEC",
    "MFCC13_SPEC",
    "MFCC40_SPEC",
    "N_MELS_CHOICES",
    "N_MFCC_CHOICES",
    "SPEC_VERSION",
    "FeatureSpec",
    "extract",
    "from_bytes",
    "to_bytes",
]

SPEC_VERSION = "fs1"
N_MELS_CHOICES: tuple[int, ...] = (40, 64, 80)
N_MFCC_CHOICES: tuple[int, ...] = (13, 20, 40)
AMIN = 1e-10  # power floor before the log (-100 dB re 1.0)
FORMAT_MAGIC = b"SPFEAT\x00\x01"  # securepipe feature matrix, container format 1
_FORMAT_NAME = "securepipe.features.extract"
_DTYPE = "<f4"
_MAX_HEADER = 4096
_LEN = struct.Struct(">I")


def _real(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(f"{name} must be a number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise InvalidParameterError(f"{name} must be finite, got {value!r}")
    return out


@dataclass(frozen=True)
class FeatureSpec:
    """What a stored feature matrix is: every parameter of its extraction, plus a version.

    ``kind`` is ``"mel"`` or ``"mfcc"``; ``n_mfcc`` is required for MFCCs and must be ``None``
    for mel. Frequencies in Hz, lengths in samples (at 16 kHz: 32 ms FFT, 25 ms window, 10 ms hop).
    """

    kind: str
    n_mels: int = 40
    n_mfcc: int | None = None
    scale: str = "db"
    sample_rate: int = 16000
    n_fft: int = 512
    hop_length: int = 160
    win_length: int = 400
    fmin: float = 20.0
    fmax: float = 8000.0
    power: float = 2.0
    top_db: float | None = 80.0
    dtype: str = "float32"
    version: str = SPEC_VERSION

    def __post_init__(self) -> None:
        if self.version != SPEC_VERSION:
            raise InvalidParameterError(
                f"unknown feature spec version {self.version!r} (this kit reads {SPEC_VERSION!r})"
            )
        if self.kind not in ("mel", "mfcc"):
            raise InvalidParameterError(f"kind must be 'mel' or 'mfcc', got {self.kind!r}")
        sr = check_int(self.sample_rate, "sample_rate", 8000, 48000)
        n_fft = check_int(self.n_fft, "n_fft", 64, 8192)
        win = check_int(self.win_length, "win_length", 16, n_fft)
        check_int(self.hop_length, "hop_length", 1, win)
        n_mels = check_int(self.n_mels, "n_mels", 1, 1 << 16)
        if n_mels not in N_MELS_CHOICES:
            raise InvalidParameterError(f"n_mels must be one of {N_MELS_CHOICES}, got {n_mels}")
        if self.kind == "mfcc":
            if self.n_mfcc is None:
                raise InvalidParameterError("an MFCC spec needs n_mfcc")
            n_mfcc = check_int(self.n_mfcc, "n_mfcc", 1, n_mels)
            if n_mfcc not in N_MFCC_CHOICES:
                raise InvalidParameterError(f"n_mfcc must be one of {N_MFCC_CHOICES}, got {n_mfcc}")
            if self.scale != "db":
                raise InvalidParameterError("MFCCs are always computed from dB mel bands")
        elif self.n_mfcc is not None:
            raise InvalidParameterError("n_mfcc must be None for a mel spec")
        if self.scale not in ("db", "power"):
            raise InvalidParameterError(f"scale must be 'db' or 'power', got {self.scale!r}")
        fmin, fmax = _real(self.fmin, "fmin"), _real(self.fmax, "fmax")
        if not 0.0 <= fmin < fmax <= sr / 2:
            raise InvalidParameterError(
                f"need 0 <= fmin < fmax <= sample_rate / 2, got fmin={fmin}, fmax={fmax}"
            )
        if _real(self.power, "power") != 2.0:
            raise InvalidParameterError("power must be 2.0 (a power spectrogram)")
        if self.top_db is not None:
            if self.scale == "power":
                raise InvalidParameterError("top_db applies to dB features only: use None")
            if _real(self.top_db, "top_db") <= 0:
                raise InvalidParameterError(f"top_db must be positive or None, got {self.top_db}")
        if self.dtype != "float32":
            raise InvalidParameterError(f"dtype must be 'float32', got {self.dtype!r}")
        # Normalise numbers so that equal specs serialise identically (20 and 20.0 alike).
        object.__setattr__(self, "fmin", fmin)
        object.__setattr__(self, "fmax", fmax)
        object.__setattr__(self, "power", 2.0)
        if self.top_db is not None:
            object.__setattr__(self, "top_db", float(self.top_db))

    @property
    def n_features(self) -> int:
        """Rows of a matrix made with this spec."""
        # n_mels is set whenever kind is mel (the type checker cannot see it).
        return int(self.n_mfcc) if self.kind == "mfcc" else self.n_mels  # type: ignore[arg-type]

    @property
    def name(self) -> str:
        """Short label such as ``mel64-db`` or ``mfcc13``."""
        if self.kind == "mfcc":
            return f"mfcc{self.n_mfcc}"
        return f"mel{self.n_mels}-{self.scale}"

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> FeatureSpec:
        """Inverse of :meth:`to_dict`; unknown or missing keys are refused."""
        if not isinstance(data, dict):
            raise InvalidParameterError("a feature spec must be a JSON object")
        names = {f.name for f in fields(cls)}
        if set(data) != names:
            extra, missing = sorted(set(data) - names), sorted(names - set(data))
            raise InvalidParameterError(
                f"feature spec keys do not match: unknown {extra}, missing {missing}"
            )
        return cls(**data)


#: Log-mel spectrogram, 64 bands in dB: the usual input of a neural acoustic model.
MEL_SPEC = FeatureSpec(kind="mel", n_mels=64)
#: The classic 13 MFCCs (c0 included) from 40 mel bands.
MFCC13_SPEC = FeatureSpec(kind="mfcc", n_mels=40, n_mfcc=13)
#: 40 MFCCs from 40 mel bands: an orthonormal rotation of the 40-band log-mel matrix.
MFCC40_SPEC = FeatureSpec(kind="mfcc", n_mels=40, n_mfcc=40)


def _check_spec(spec: Any) -> FeatureSpec:
    if not isinstance(spec, FeatureSpec):
        raise InvalidParameterError(f"spec must be a FeatureSpec, got {type(spec).__name__}")
    return spec


def extract(y: np.ndarray, sr: int, spec: FeatureSpec) -> np.ndarray:
    """The ``(n_features, n_frames)`` float32 matrix of mono signal ``y`` under ``spec``.

    ``sr`` must equal ``spec.sample_rate``: resampling is the ingest step's deliberate job, never
    a silent side effect here.
    """
    spec = _check_spec(spec)
    if isinstance(sr, bool) or not isinstance(sr, numbers.Integral) or sr <= 0:
        raise InvalidParameterError(f"sr must be a positive int, got {sr!r}")
    if int(sr) != spec.sample_rate:
        raise InvalidParameterError(
            f"sample rate {sr} Hz does not match the spec's {spec.sample_rate} Hz: resample first"
        )
    x = np.asarray(y, dtype=np.float32)
    if x.ndim != 1 or x.size < spec.n_fft:
        raise InvalidParameterError(f"y must be a 1-D signal of at least {spec.n_fft} samples")
    if not np.all(np.isfinite(x)):
        raise InvalidParameterError("y contains NaN or infinite values")
    # NumPy, not librosa: the same numbers (tests/features/test_spectral.py holds them to
    # librosa), without librosa's first-use import of numba and scipy.signal in every process.
    mel = spectral.melspectrogram(
        x,
        sr=spec.sample_rate,
        n_fft=spec.n_fft,
        hop_length=spec.hop_length,
        win_length=spec.win_length,
        n_mels=spec.n_mels,
        fmin=spec.fmin,
        fmax=spec.fmax,
        power=spec.power,
    )
    if spec.scale == "power":
        out = mel
    else:
        out = spectral.power_to_db(mel, ref=1.0, amin=AMIN, top_db=spec.top_db)
        if spec.kind == "mfcc":
            out = spectral.mfcc_from_db(out, int(spec.n_mfcc or 0))
    return np.ascontiguousarray(out, dtype=np.float32)


# One clip's matrices are small (128 x 513 by 513 x frames): a second BLAS thread buys nothing,
# and the kit already runs samples side by side (a worker's threads, a batch's executor). With
# OpenBLAS's default of one thread per core, those threads spin against each other and against
# the sample threads: on 2 busy cores, extraction measured 9-15 ms of CPU per 3-second clip
# instead of 1.6-2 ms. Setting the limit costs a few hundred microseconds (OpenBLAS re-plans its
# threads), so it is set once around a whole run, not per clip.
@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the body with one BLAS thread (threadpoolctl, as scikit-learn uses it:
    https://github.com/joblib/threadpoolctl), restoring the previous limit after.
    :func:`~securepipe.features.ingest.ingest_batch` and the worker wrap their runs in it.

    OpenBLAS applies a limit set from the main thread only (set from another thread, it is
    ignored and the run keeps the default): callers run it where they start their pool."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


# --- storage -------------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _header(shape: tuple[int, int], spec: FeatureSpec) -> bytes:
    """The canonical header; cached (specs are frozen, and a worker serialises thousands of
    matrices of a few shapes under one spec: ``asdict`` per matrix cost more than the payload)."""
    doc = {
        "dtype": _DTYPE,
        "format": _FORMAT_NAME,
        "shape": [int(shape[0]), int(shape[1])],
        "spec": spec.to_dict(),
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def to_bytes(matrix: np.ndarray, spec: FeatureSpec) -> bytes:
    """Serialise a float32 feature matrix and its spec; the same input gives the same bytes."""
    spec = _check_spec(spec)
    if not isinstance(matrix, np.ndarray) or matrix.dtype != np.float32:
        raise InvalidParameterError("matrix must be a float32 numpy array (as extract() returns)")
    if matrix.ndim != 2 or matrix.shape[1] < 1:
        raise InvalidParameterError(
            f"matrix must be a non-empty (n_features, n_frames) array, got {matrix.shape}"
        )
    if matrix.shape[0] != spec.n_features:
        raise InvalidParameterError(
            f"matrix has {matrix.shape[0]} rows but {spec.name} has {spec.n_features} features"
        )
    if not np.all(np.isfinite(matrix)):
        raise InvalidParameterError("matrix contains NaN or infinite values")
    header = _header(matrix.shape, spec)
    payload = np.ascontiguousarray(matrix, dtype=_DTYPE).tobytes(order="C")
    return FORMAT_MAGIC + _LEN.pack(len(header)) + header + payload


def from_bytes(data: bytes) -> tuple[np.ndarray, FeatureSpec]:
    """Parse :func:`to_bytes` output back into ``(matrix, spec)``; refuse anything else.

    Never unpickles and never calls ``np.load``: the payload is read as raw little-endian
    float32 after the header has been checked to be exactly the canonical one.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidParameterError(f"data must be bytes, got {type(data).__name__}")
    blob = bytes(data)
    fixed = len(FORMAT_MAGIC) + _LEN.size
    if len(blob) < fixed or not blob.startswith(FORMAT_MAGIC):
        raise InvalidParameterError("not a securepipe feature blob (bad magic or too short)")
    (header_len,) = _LEN.unpack_from(blob, len(FORMAT_MAGIC))
    if header_len > _MAX_HEADER or len(blob) < fixed + header_len:
        raise InvalidParameterError("feature blob header is truncated or too long")
    raw_header = blob[fixed : fixed + header_len]
    try:
        doc = json.loads(raw_header.decode("ascii"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidParameterError("feature blob header is not ASCII JSON") from exc
    if not isinstance(doc, dict) or set(doc) != {"dtype", "format", "shape", "spec"}:
        raise InvalidParameterError("feature blob header has the wrong keys")
    if doc["format"] != _FORMAT_NAME or doc["dtype"] != _DTYPE:
        raise InvalidParameterError("feature blob is not a float32 securepipe feature matrix")
    shape = doc["shape"]
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in shape)
    ):
        raise InvalidParameterError(f"feature blob has an invalid shape {shape!r}")
    spec = FeatureSpec.from_dict(doc["spec"])
    if _header((shape[0], shape[1]), spec) != raw_header:
        raise InvalidParameterError("feature blob header is not in canonical form")
    if shape[0] != spec.n_features:
        raise InvalidParameterError(
            f"feature blob has {shape[0]} rows but {spec.name} has {spec.n_features} features"
        )
    payload = blob[fixed + header_len :]
    if len(payload) != shape[0] * shape[1] * 4:
        raise InvalidParameterError(
            f"feature blob payload is {len(payload)} bytes, expected {shape[0] * shape[1] * 4}"
        )
    matrix = np.frombuffer(payload, dtype=_DTYPE).reshape(shape).astype(np.float32)
    if not np.all(np.isfinite(matrix)):
        raise InvalidParameterError("feature blob contains NaN or infinite values")
    return matrix, spec
