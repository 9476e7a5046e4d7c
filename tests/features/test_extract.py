"""Feature specs, extraction and the self-describing storage format."""

from __future__ import annotations

import io
import json
import pickle
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from securepipe.data.dataset import Manifest, load_audio, load_manifest
from securepipe.errors import InvalidParameterError, SecurePipeError
from securepipe.features.extract import (
    FORMAT_MAGIC,
    MEL_SPEC,
    MFCC13_SPEC,
    MFCC40_SPEC,
    FeatureSpec,
    extract,
    from_bytes,
    to_bytes,
)

COMMITTED = Path(__file__).resolve().parents[2] / "data-synthetic"
SPECS = [MEL_SPEC, MFCC13_SPEC, MFCC40_SPEC]


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return load_manifest(COMMITTED)


@pytest.fixture(scope="module")
def clip(manifest: Manifest) -> tuple[np.ndarray, int]:
    return load_audio(manifest, manifest.utterances[0].sample_id)


@pytest.fixture(scope="module")
def blob(clip) -> bytes:
    y, sr = clip
    return to_bytes(extract(y, sr, MFCC13_SPEC), MFCC13_SPEC)


def _frames(n_samples: int, hop: int) -> int:
    return 1 + n_samples // hop  # centred frames


# --- specs ---------------------------------------------------------------------------------------


def test_ready_made_specs_state_their_parameters() -> None:
    assert MEL_SPEC.version == MFCC13_SPEC.version == "fs1"
    assert (MEL_SPEC.kind, MEL_SPEC.n_mels, MEL_SPEC.scale, MEL_SPEC.n_features) == (
        "mel",
        64,
        "db",
        64,
    )
    assert (MFCC13_SPEC.kind, MFCC13_SPEC.n_mels, MFCC13_SPEC.n_features) == ("mfcc", 40, 13)
    assert MFCC40_SPEC.n_features == 40
    for spec in SPECS:
        assert (spec.sample_rate, spec.n_fft, spec.hop_length, spec.win_length) == (
            16000,
            512,
            160,
            400,
        )
        assert (spec.fmin, spec.fmax, spec.power, spec.top_db, spec.dtype) == (
            20.0,
            8000.0,
            2.0,
            80.0,
            "float32",
        )
    assert [s.name for s in SPECS] == ["mel64-db", "mfcc13", "mfcc40"]


def test_spec_dict_round_trip_and_normalisation() -> None:
    assert FeatureSpec.from_dict(MFCC13_SPEC.to_dict()) == MFCC13_SPEC
    assert FeatureSpec(kind="mel", fmin=20, fmax=8000) == FeatureSpec(kind="mel")
    power = FeatureSpec(kind="mel", scale="power", top_db=None)
    assert power.name == "mel40-power"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "spectrogram"},
        {"kind": "mel", "n_mels": 50},
        {"kind": "mel", "n_mels": True},
        {"kind": "mel", "n_mfcc": 13},
        {"kind": "mfcc"},
        {"kind": "mfcc", "n_mfcc": 12},
        {"kind": "mfcc", "n_mfcc": 40, "n_mels": 40, "scale": "power", "top_db": None},
        {"kind": "mfcc", "n_mfcc": 13.0},
        {"kind": "mel", "scale": "log"},
        {"kind": "mel", "scale": "power"},  # top_db 80 makes no sense on linear power
        {"kind": "mel", "top_db": -10.0},
        {"kind": "mel", "fmax": 9000.0},
        {"kind": "mel", "fmin": 8000.0},
        {"kind": "mel", "fmin": float("nan")},
        {"kind": "mel", "power": 1.0},
        {"kind": "mel", "win_length": 1024},
        {"kind": "mel", "hop_length": 0},
        {"kind": "mel", "sample_rate": 4000},
        {"kind": "mel", "dtype": "float64"},
        {"kind": "mel", "version": "fs2"},
    ],
)
def test_bad_spec_is_refused(kwargs) -> None:
    with pytest.raises(InvalidParameterError):
        FeatureSpec(**kwargs)


def test_from_dict_refuses_unknown_and_missing_keys() -> None:
    data = MEL_SPEC.to_dict()
    with pytest.raises(InvalidParameterError):
        FeatureSpec.from_dict({**data, "lifter": 22})
    del data["fmax"]
    with pytest.raises(InvalidParameterError):
        FeatureSpec.from_dict(data)
    with pytest.raises(InvalidParameterError):
        FeatureSpec.from_dict(["mel"])


# --- extraction ----------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_extract_shape_and_dtype(clip, spec: FeatureSpec) -> None:
    y, sr = clip
    matrix = extract(y, sr, spec)
    assert matrix.dtype == np.float32
    assert matrix.shape == (spec.n_features, _frames(len(y), spec.hop_length))
    assert matrix.flags["C_CONTIGUOUS"]
    assert np.all(np.isfinite(matrix))
    assert np.array_equal(matrix, extract(y, sr, spec))  # deterministic


def test_mel_db_is_absolute_and_floored(clip) -> None:
    y, sr = clip
    db = extract(y, sr, MEL_SPEC)
    power = extract(y, sr, replace(MEL_SPEC, scale="power", top_db=None))
    assert power.min() >= 0
    expected = 10 * np.log10(np.maximum(power.astype(np.float64), 1e-10))
    expected = np.maximum(expected, expected.max() - 80.0)
    np.testing.assert_allclose(db, expected, atol=1e-3)
    assert db.max() - db.min() <= 80.0 + 1e-3


def test_mfcc40_is_a_rotation_of_the_40_band_log_mel(clip) -> None:
    y, sr = clip
    from scipy.fft import dct

    log_mel = extract(y, sr, FeatureSpec(kind="mel", n_mels=40))
    mfcc = extract(y, sr, MFCC40_SPEC)
    np.testing.assert_allclose(mfcc, dct(log_mel, type=2, norm="ortho", axis=0), atol=1e-3)
    np.testing.assert_allclose(extract(y, sr, MFCC13_SPEC), mfcc[:13], atol=1e-4)


def test_extract_refuses_sample_rate_mismatch(clip) -> None:
    y, _ = clip
    with pytest.raises(InvalidParameterError, match="resample"):
        extract(y, 22050, MEL_SPEC)


@pytest.mark.parametrize(
    "y, sr, spec",
    [
        (np.zeros((2, 4000), dtype=np.float32), 16000, MEL_SPEC),
        (np.zeros(100, dtype=np.float32), 16000, MEL_SPEC),
        (np.full(4000, np.nan, dtype=np.float32), 16000, MEL_SPEC),
        (np.zeros(4000, dtype=np.float32), 16000.0, MEL_SPEC),
        (np.zeros(4000, dtype=np.float32), True, MEL_SPEC),
        (np.zeros(4000, dtype=np.float32), 16000, {"kind": "mel"}),
    ],
)
def test_extract_refuses_bad_input(y, sr, spec) -> None:
    with pytest.raises(InvalidParameterError):
        extract(y, sr, spec)


def test_silence_extracts_to_the_floor() -> None:
    matrix = extract(np.zeros(4000, dtype=np.float32), 16000, MEL_SPEC)
    np.testing.assert_allclose(matrix, -100.0, atol=1e-4)  # 10 log10(1e-10), in float32


# --- storage -------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_round_trip_is_byte_exact(clip, spec: FeatureSpec) -> None:
    y, sr = clip
    matrix = extract(y, sr, spec)
    data = to_bytes(matrix, spec)
    assert data.startswith(FORMAT_MAGIC)
    back, back_spec = from_bytes(data)
    assert back_spec == spec
    assert back.dtype == np.float32 and back.shape == matrix.shape
    assert back.tobytes() == matrix.tobytes()  # bit for bit, NaN-free
    assert to_bytes(back, back_spec) == data
    assert to_bytes(matrix, spec) == data  # deterministic
    assert back.flags["WRITEABLE"]


def test_blob_is_self_describing(blob: bytes) -> None:
    (n,) = struct.unpack(">I", blob[8:12])
    header = json.loads(blob[12 : 12 + n])
    assert header["format"] == "securepipe.features.extract"
    assert header["dtype"] == "<f4"
    assert header["spec"]["version"] == "fs1"
    assert header["spec"]["n_mfcc"] == 13
    assert len(blob) == 12 + n + 4 * header["shape"][0] * header["shape"][1]


def test_truncated_blobs_are_refused(blob: bytes) -> None:
    (n,) = struct.unpack(">I", blob[8:12])
    for cut in sorted({0, 1, 7, 8, 11, 12, 13, 12 + n - 1, 12 + n, 12 + n + 1, len(blob) - 1}):
        with pytest.raises(InvalidParameterError):
            from_bytes(blob[:cut])


def test_trailing_bytes_are_refused(blob: bytes) -> None:
    with pytest.raises(InvalidParameterError):
        from_bytes(blob + b"\x00\x00\x00\x00")


def test_wrong_magic_is_refused(blob: bytes) -> None:
    with pytest.raises(InvalidParameterError, match="magic"):
        from_bytes(b"SPFEAT\x00\x02" + blob[8:])
    with pytest.raises(InvalidParameterError, match="magic"):
        from_bytes(b"\x93NUMPY" + blob[6:])


class _Boom:
    """Unpickling this would run code: from_bytes must never get that far."""

    def __reduce__(self):
        return (print, ("unpickled!",))


def test_pickle_payloads_are_refused(clip, capsys) -> None:
    y, sr = clip
    matrix = extract(y, sr, MFCC13_SPEC)
    candidates = [
        pickle.dumps(matrix),
        pickle.dumps((matrix, MFCC13_SPEC)),
        pickle.dumps(_Boom()),
    ]
    buf = io.BytesIO()
    np.save(buf, np.array([_Boom()], dtype=object), allow_pickle=True)
    candidates.append(buf.getvalue())
    for data in candidates:
        with pytest.raises(InvalidParameterError):
            from_bytes(data)
    # A pickle behind a valid magic and header is refused too: its length cannot match.
    header = json.dumps(
        {
            "dtype": "<f4",
            "format": "securepipe.features.extract",
            "shape": [13, 2],
            "spec": MFCC13_SPEC.to_dict(),
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    with pytest.raises(InvalidParameterError):
        from_bytes(FORMAT_MAGIC + struct.pack(">I", len(header)) + header + pickle.dumps(_Boom()))
    assert "unpickled" not in capsys.readouterr().out


def _with_header(blob: bytes, mutate) -> bytes:
    (n,) = struct.unpack(">I", blob[8:12])
    doc = json.loads(blob[12 : 12 + n])
    mutate(doc)
    header = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return FORMAT_MAGIC + struct.pack(">I", len(header)) + header + blob[12 + n :]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(dtype="|O"),
        lambda d: d.update(dtype="<f8"),
        lambda d: d.update(format="numpy"),
        lambda d: d.update(shape=[13]),
        lambda d: d.update(shape=[13, -1]),
        lambda d: d.update(shape=[13, True]),
        lambda d: d.update(shape=[40, d["shape"][1]]),  # rows disagree with the spec
        lambda d: d.update(shape=[13, d["shape"][1] + 1]),  # payload too short
        lambda d: d.update(extra=1),
        lambda d: d.pop("spec"),
        lambda d: d["spec"].update(version="fs0"),
        lambda d: d["spec"].update(kind="mel"),
        lambda d: d["spec"].update(n_fft=512.0),
        lambda d: d["spec"].update(fmin=20),  # valid value, non-canonical spelling
        lambda d: d["spec"].update(__class__="os.system"),
    ],
)
def test_malformed_headers_are_refused(blob: bytes, mutate) -> None:
    with pytest.raises(InvalidParameterError):
        from_bytes(_with_header(blob, mutate))


def test_non_canonical_json_is_refused(blob: bytes) -> None:
    (n,) = struct.unpack(">I", blob[8:12])
    pretty = json.dumps(json.loads(blob[12 : 12 + n]), sort_keys=True, indent=1).encode()
    data = FORMAT_MAGIC + struct.pack(">I", len(pretty)) + pretty + blob[12 + n :]
    with pytest.raises(InvalidParameterError, match="canonical"):
        from_bytes(data)
    garbage = FORMAT_MAGIC + struct.pack(">I", 4) + b"\xff\xfe{}" + blob[12 + n :]
    with pytest.raises(InvalidParameterError):
        from_bytes(garbage)
    huge = FORMAT_MAGIC + struct.pack(">I", 1 << 30) + blob[12:]
    with pytest.raises(InvalidParameterError):
        from_bytes(huge)


def test_nan_payload_is_refused(blob: bytes) -> None:
    bad = bytearray(blob)
    bad[-4:] = np.array([np.nan], dtype="<f4").tobytes()
    with pytest.raises(InvalidParameterError, match="NaN"):
        from_bytes(bytes(bad))


def test_to_bytes_refuses_bad_matrices(clip) -> None:
    y, sr = clip
    matrix = extract(y, sr, MFCC13_SPEC)
    bad = [
        (matrix.astype(np.float64), MFCC13_SPEC),
        (matrix, MEL_SPEC),
        (matrix[0], MFCC13_SPEC),
        (matrix[:, :0], MFCC13_SPEC),
        (np.where(matrix > 0, np.inf, matrix).astype(np.float32), MFCC13_SPEC),
        (matrix.tolist(), MFCC13_SPEC),
        (matrix, "mfcc13"),
    ]
    for m, spec in bad:
        with pytest.raises(InvalidParameterError):
            to_bytes(m, spec)


def test_errors_are_the_kits_own(blob: bytes) -> None:
    with pytest.raises(SecurePipeError):
        from_bytes(blob[:-1])
    with pytest.raises(InvalidParameterError):
        from_bytes("not bytes")  # type: ignore[arg-type]
    assert from_bytes(bytearray(blob))[1] == MFCC13_SPEC


def _blas_threads() -> set[int]:
    from threadpoolctl import threadpool_info

    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


def test_one_blas_thread_holds_for_the_pool_and_restores_after() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    from securepipe.features.extract import one_blas_thread

    with threadpool_limits(limits=2, user_api="blas"):   # whatever the environment set
        assert _blas_threads() == {2}, "numpy's BLAS is visible to threadpoolctl"
        with one_blas_thread(), ThreadPoolExecutor(2) as pool:
            assert set().union(*pool.map(lambda _: _blas_threads(), range(4))) == {1}
        assert _blas_threads() == {2}
