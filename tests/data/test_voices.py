"""The synthesiser: byte-for-byte regeneration of the committed set, validation, distinct voices."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from securepipe.data.dataset import load_manifest, read_wav
from securepipe.data.voices import (
    SUPPORTED_SAMPLE_RATES,
    SpeakerProfile,
    generate_corpus,
    main,
    make_speakers,
    synthesize,
    wav_bytes,
)
from securepipe.errors import InvalidParameterError, SecurePipeError

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "data-synthetic"
PEAK = round(0.7079457843841379 * 32767)  # -3 dBFS


def _files(root: Path) -> list[str]:
    """The main set's files; ``heldout/`` is a separate family (tests/data/test_heldout.py)."""
    names = (p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    return sorted(n for n in names if not n.startswith("heldout/"))


@pytest.fixture(scope="module")
def committed():
    return load_manifest(COMMITTED)


@pytest.fixture(scope="module")
def regenerated(committed, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("regenerated")
    per_speaker = sum(u.speaker == committed.speakers[0].speaker for u in committed.utterances)
    generate_corpus(
        out,
        n_speakers=len(committed.speakers),
        n_utterances=per_speaker,
        seed=committed.seed,
        sample_rate=committed.sample_rate,
    )
    return out


@pytest.fixture(scope="module")
def speakers():
    return make_speakers(10, seed=20261126)


# --- the committed set is exactly what the generator writes --------------------------------------


def test_regeneration_lists_the_same_files(regenerated: Path) -> None:
    assert _files(regenerated) == _files(COMMITTED)


def test_regeneration_is_byte_identical(regenerated: Path) -> None:
    names = _files(COMMITTED)
    assert "manifest.json" in names and len(names) > 1
    different = [n for n in names if (COMMITTED / n).read_bytes() != (regenerated / n).read_bytes()]
    assert different == [], f"regenerated files differ from the committed ones: {different}"


def test_committed_set_has_the_documented_shape(committed) -> None:
    assert committed.generator == "securepipe.voices"
    assert len(committed.speakers) == 10
    assert len(committed.utterances) == 40
    size = sum((COMMITTED / u.path).stat().st_size for u in committed.utterances)
    assert 2_000_000 < size < 5_000_000


def test_wav_headers(committed) -> None:
    for utt in committed.utterances:
        with wave.open(str(COMMITTED / utt.path), "rb") as wf:
            assert wf.getframerate() == 16000
            assert wf.getnchannels() == 1
            assert wf.getsampwidth() == 2
            assert wf.getcomptype() == "NONE"
            duration = wf.getnframes() / wf.getframerate()
        assert 2.0 <= duration <= 3.0
        assert math.isclose(duration, utt.duration_s, abs_tol=1e-3)


def test_peak_is_minus_3_dbfs(committed) -> None:
    y, _ = read_wav(COMMITTED / committed.utterances[0].path)
    assert round(float(np.max(np.abs(y))) * 32768) == PEAK


# --- determinism ---------------------------------------------------------------------------------


def test_two_calls_give_identical_arrays(speakers) -> None:
    a = synthesize(speakers[2], 5, seed=7, duration_s=2.0)
    b = synthesize(speakers[2], 5, seed=7, duration_s=2.0)
    assert a.dtype == np.int16 and a.shape == (32000,)
    assert np.array_equal(a, b)
    assert wav_bytes(a, 16000) == wav_bytes(b, 16000)


def test_seed_and_sentence_change_the_audio(speakers) -> None:
    base = synthesize(speakers[0], 0, seed=7, duration_s=1.0)
    assert not np.array_equal(base, synthesize(speakers[0], 1, seed=7, duration_s=1.0))
    assert not np.array_equal(base, synthesize(speakers[0], 0, seed=8, duration_s=1.0))


def test_make_speakers_is_deterministic_and_distinct(speakers) -> None:
    assert make_speakers(10, seed=20261126) == speakers
    assert [s.speaker for s in speakers] == [f"spk{i:02d}" for i in range(1, 11)]
    assert [s.voice_class for s in speakers[:4]] == ["low", "high", "low", "high"]
    for cls in ("low", "high"):
        f0s = sorted(s.f0_hz for s in speakers if s.voice_class == cls)
        tracts = sorted(s.tract_factor for s in speakers if s.voice_class == cls)
        assert min(b - a for a, b in itertools.pairwise(f0s)) > 3.0
        assert min(b - a for a, b in itertools.pairwise(tracts)) > 0.01
    assert all(0.82 <= s.tract_factor <= 1.18 for s in speakers)
    assert max(s.f0_hz for s in speakers if s.voice_class == "low") < min(
        s.f0_hz for s in speakers if s.voice_class == "high"
    )


@pytest.mark.parametrize("sample_rate", [8000, 44100])
def test_other_sample_rates(speakers, sample_rate: int) -> None:
    y = synthesize(speakers[1], 0, seed=1, sample_rate=sample_rate, duration_s=0.5)
    assert y.shape == (round(0.5 * sample_rate),)
    assert int(np.max(np.abs(y.astype(np.int32)))) == PEAK


# --- different speakers really differ ------------------------------------------------------------


def _median_f0(y: np.ndarray, sr: int) -> float:
    import librosa

    x = y.astype(np.float32) / 32768.0
    f0 = librosa.yin(x, fmin=60, fmax=400, sr=sr, frame_length=1024, hop_length=256)
    rms = librosa.feature.rms(y=x, frame_length=1024, hop_length=256)[0][: len(f0)]
    return float(np.median(f0[rms > 0.1 * rms.max()]))


def test_estimated_f0_follows_the_profile(speakers) -> None:
    low = min(speakers, key=lambda s: s.f0_hz)
    high = max(speakers, key=lambda s: s.f0_hz)
    assert high.f0_hz > 1.8 * low.f0_hz
    est_low = _median_f0(synthesize(low, 0, seed=3), 16000)
    est_high = _median_f0(synthesize(high, 0, seed=3), 16000)
    assert est_low == pytest.approx(low.f0_hz, rel=0.1)
    assert est_high == pytest.approx(high.f0_hz, rel=0.1)
    assert est_high > 1.6 * est_low


def test_same_sentence_different_speakers_differ(speakers) -> None:
    a = synthesize(speakers[0], 0, seed=3, duration_s=1.0)
    b = synthesize(speakers[2], 0, seed=3, duration_s=1.0)
    assert not np.array_equal(a, b)


# --- validation ----------------------------------------------------------------------------------


def _bad_calls(tmp: Path):
    profile = make_speakers(1, seed=1)[0]
    return {
        "zero speakers": lambda: generate_corpus(tmp, n_speakers=0),
        "zero utterances": lambda: generate_corpus(tmp, n_utterances=0),
        "bool speakers": lambda: generate_corpus(tmp, n_speakers=True),
        "make zero speakers": lambda: make_speakers(0, seed=1),
        "negative duration": lambda: synthesize(profile, 0, seed=1, duration_s=-1.0),
        "zero duration": lambda: synthesize(profile, 0, seed=1, duration_s=0.0),
        "too long": lambda: synthesize(profile, 0, seed=1, duration_s=31.0),
        "nan duration": lambda: synthesize(profile, 0, seed=1, duration_s=float("nan")),
        "unsupported sample rate": lambda: synthesize(profile, 0, seed=1, sample_rate=11025),
        "float sample rate": lambda: synthesize(profile, 0, seed=1, sample_rate=16000.0),
        "corpus sample rate": lambda: generate_corpus(tmp, sample_rate=12345),
        "negative seed": lambda: synthesize(profile, 0, seed=-1),
        "float seed": lambda: make_speakers(2, seed=1.5),
        "str seed": lambda: generate_corpus(tmp, seed="7"),
        "bool seed": lambda: make_speakers(2, seed=True),
        "negative sentence": lambda: synthesize(profile, -1, seed=1),
        "not a profile": lambda: synthesize("spk01", 0, seed=1),
        "bad speaker id": lambda: SpeakerProfile(
            "../x", "low", 120.0, 20.0, 0.01, 0.03, 0.9, 0.1, 0.3, 1.0
        ),
        "f0 out of range": lambda: SpeakerProfile(
            "spk01", "low", 20.0, 20.0, 0.01, 0.03, 0.9, 0.1, 0.3, 1.0
        ),
        "wav of floats": lambda: wav_bytes(np.zeros(10), 16000),
    }


BAD = sorted(_bad_calls(Path("unused")))


@pytest.mark.parametrize("case", BAD)
def test_bad_parameters_raise(case: str, tmp_path: Path) -> None:
    call = _bad_calls(tmp_path / "out")[case]
    with pytest.raises(InvalidParameterError) as info:
        call()
    assert isinstance(info.value, SecurePipeError)
    assert isinstance(info.value, ValueError)
    assert str(info.value)
    assert not (tmp_path / "out").exists(), "parameters must be checked before any file is written"


def test_error_messages_say_what_is_wrong() -> None:
    profile = make_speakers(1, seed=1)[0]
    with pytest.raises(InvalidParameterError, match="n_speakers"):
        make_speakers(0, seed=1)
    with pytest.raises(InvalidParameterError, match="duration_s"):
        synthesize(profile, 0, seed=1, duration_s=-0.5)
    with pytest.raises(InvalidParameterError, match="unsupported sample rate"):
        synthesize(profile, 0, seed=1, sample_rate=11025)
    with pytest.raises(InvalidParameterError, match="seed"):
        synthesize(profile, 0, seed=-3)
    assert set(SUPPORTED_SAMPLE_RATES) == {8000, 16000, 22050, 24000, 32000, 44100, 48000}


# --- command line --------------------------------------------------------------------------------


def test_cli_writes_a_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path), "--speakers", "2", "--utterances", "1"]) == 0
    manifest = load_manifest(tmp_path)
    assert [u.sample_id for u in manifest.utterances] == ["spk01_u1", "spk02_u1"]
    assert "wrote 2 utterances" in capsys.readouterr().out


def test_cli_refuses_bad_parameters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path / "x"), "--speakers", "0"]) == 2
    assert "n_speakers" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_module_entry_point(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "securepipe.data.voices",
            "--out",
            str(tmp_path),
            "--speakers",
            "1",
            "--utterances",
            "1",
            "--sample-rate",
            "8000",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "spk01" / "spk01_u1.wav").is_file()
