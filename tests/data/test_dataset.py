"""The data-loading API: manifest parsing, digest checks, audio reading and consent invariants."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from securepipe.data.dataset import (
    DATA_ENV_VAR,
    Manifest,
    load_audio,
    load_manifest,
    read_wav,
    verify,
)
from securepipe.errors import DatasetError, InvalidParameterError, SecurePipeError

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "data-synthetic"


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return load_manifest(COMMITTED)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A private copy of the committed set that a test may damage."""
    target = tmp_path / "data"
    shutil.copytree(COMMITTED, target)
    return target


def _raw(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_text(encoding="utf-8"))


def _write(root: Path, data: object) -> None:
    (root / "manifest.json").write_text(json.dumps(data), encoding="utf-8")


# --- loading -------------------------------------------------------------------------------------


def test_default_location_is_the_project_data_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    loaded = load_manifest()
    assert loaded.root == COMMITTED
    assert loaded.generator == "securepipe.voices"
    assert loaded.sample_rate == 16000


def test_env_var_overrides_the_location(copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_ENV_VAR, str(copy))
    assert load_manifest().root == copy


def test_manifest_contents(manifest: Manifest) -> None:
    assert manifest.schema_version == 1
    assert len(manifest.speakers) == 10 and len(manifest.utterances) == 40
    first = manifest.utterances[0]
    assert first.sample_id == "spk01_u1"
    assert first.path == "spk01/spk01_u1.wav"
    assert manifest.path_of(first) == COMMITTED / "spk01" / "spk01_u1.wav"
    assert manifest.utterance("spk03_u2").speaker == "spk03"
    assert manifest.speaker("spk02").voice["voice_class"] in ("low", "high")
    # Sentence k is read by every speaker; one speaker's utterances read different sentences.
    for spk in manifest.speakers:
        own = [u.sentence_index for u in manifest.utterances if u.speaker == spk.speaker]
        assert own == [0, 1, 2, 3]


def test_manifest_file_is_canonical_json() -> None:
    text = (COMMITTED / "manifest.json").read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n"


def test_verify_passes_on_the_committed_set(manifest: Manifest) -> None:
    verify(manifest)


def test_read_wav_and_load_audio(manifest: Manifest) -> None:
    y, sr = load_audio(manifest, "spk01_u1")
    assert sr == 16000 and y.dtype == np.float32 and y.ndim == 1
    assert float(y.min()) >= -1.0 and float(y.max()) < 1.0
    assert len(y) / sr == pytest.approx(manifest.utterance("spk01_u1").duration_s, abs=1e-3)
    y2, sr2 = read_wav(COMMITTED / "spk01" / "spk01_u1.wav")
    assert sr2 == sr and np.array_equal(y, y2)


def test_unknown_sample_id(manifest: Manifest) -> None:
    with pytest.raises(InvalidParameterError, match="spk99_u1"):
        load_audio(manifest, "spk99_u1")


# --- tampering -----------------------------------------------------------------------------------


def test_verify_names_a_flipped_byte(copy: Path) -> None:
    target = copy / "spk03" / "spk03_u2.wav"
    data = bytearray(target.read_bytes())
    data[1000] ^= 0x01
    target.write_bytes(bytes(data))
    tampered = load_manifest(copy)
    with pytest.raises(DatasetError, match=r"spk03/spk03_u2\.wav") as info:
        verify(tampered)
    assert isinstance(info.value, SecurePipeError)
    assert "SHA-256" in str(info.value)
    with pytest.raises(DatasetError, match=r"spk03/spk03_u2\.wav"):
        load_audio(tampered, "spk03_u2")
    load_audio(tampered, "spk03_u1")  # the others still load


def test_verify_names_a_missing_file(copy: Path) -> None:
    (copy / "spk07" / "spk07_u4.wav").unlink()
    with pytest.raises(DatasetError, match=r"spk07/spk07_u4\.wav.*missing"):
        verify(load_manifest(copy))


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no manifest"):
        load_manifest(tmp_path)


def test_read_wav_refuses_non_wav(tmp_path: Path) -> None:
    bogus = tmp_path / "x.wav"
    bogus.write_bytes(b"not a wav at all")
    with pytest.raises(DatasetError, match=r"x\.wav"):
        read_wav(bogus)
    with pytest.raises(DatasetError, match="missing"):
        read_wav(tmp_path / "absent.wav")


def _drop_key(data: dict) -> None:
    del data["utterances"][3]["sha256"]


def _bad_type(data: dict) -> None:
    data["utterances"][0]["sample_rate"] = "16000"


def _unknown_speaker(data: dict) -> None:
    data["utterances"][5]["speaker"] = "spk99"


def _escape(data: dict) -> None:
    data["utterances"][0]["path"] = "../outside.wav"


def _absolute(data: dict) -> None:
    data["utterances"][0]["path"] = "/etc/passwd"


def _bad_date(data: dict) -> None:
    data["speakers"][0]["consent"]["consent_date"] = "yesterday"


def _week_date(data: dict) -> None:
    data["speakers"][0]["consent"]["consent_date"] = "2026-W05-3"   # fromisoformat takes it


def _basic_date(data: dict) -> None:
    data["speakers"][0]["consent"]["retention_until"] = "20270101"  # fromisoformat takes it


def _duplicate(data: dict) -> None:
    data["utterances"][1]["sample_id"] = data["utterances"][0]["sample_id"]


def _schema(data: dict) -> None:
    data["schema_version"] = 99


def _not_a_list(data: dict) -> None:
    data["speakers"] = {"spk01": {}}


def _bool_as_int(data: dict) -> None:
    data["utterances"][0]["sentence_index"] = True


@pytest.mark.parametrize(
    "damage",
    [
        _drop_key,
        _bad_type,
        _unknown_speaker,
        _escape,
        _absolute,
        _bad_date,
        _week_date,
        _basic_date,
        _duplicate,
        _schema,
        _not_a_list,
        _bool_as_int,
    ],
)
def test_malformed_manifest(copy: Path, damage) -> None:
    data = _raw(copy)
    damage(data)
    _write(copy, data)
    with pytest.raises(DatasetError):
        load_manifest(copy)


@pytest.mark.parametrize("text", ["{not json", "", "[]", "null", '{"speakers": []}'])
def test_manifest_that_is_not_a_manifest(copy: Path, text: str) -> None:
    (copy / "manifest.json").write_text(text, encoding="utf-8")
    with pytest.raises(DatasetError):
        load_manifest(copy)


# --- consent and retention invariants ------------------------------------------------------------


def test_consent_invariants(manifest: Manifest) -> None:
    for spk in manifest.speakers:
        consent = spk.consent
        assert consent.purpose == "speech-model-training"
        assert dt.date(2025, 1, 1) <= consent.consent_date <= dt.date(2026, 6, 30)
        assert 0 < consent.term_days <= 1095  # BIPA: at most 3 years
        assert consent.retention_until == consent.consent_date + dt.timedelta(consent.term_days)
        assert consent.withdrawn is None


def test_contractors_round_robin(manifest: Manifest) -> None:
    assert [s.contractor for s in manifest.speakers] == ["c01", "c02", "c03", "c04"] * 2 + [
        "c01",
        "c02",
    ]
    by_speaker = {s.speaker: s.contractor for s in manifest.speakers}
    for utt in manifest.utterances:
        assert utt.speaker in by_speaker
        assert utt.contractor == by_speaker[utt.speaker]


def test_retention_flags(manifest: Manifest) -> None:
    held = [u.sample_id for u in manifest.utterances if u.legal_hold]
    archived = [u.sample_id for u in manifest.utterances if u.archive_required]
    assert len(held) == 1
    assert len(archived) == 2
    assert not set(held) & set(archived)
