"""Load, check and read the synthetic voice set written by :mod:`securepipe.data.voices`.

The set is a folder holding ``manifest.json`` and one 16-bit mono WAV per utterance. The manifest
records, for every speaker, the consent that covers the recordings (purpose, date, term and the
date after which they must be deleted) and, for every utterance, its SHA-256 digest. Nothing here
trusts a file it has not hashed: :func:`verify` checks the whole set and :func:`load_audio` checks
the one file it reads.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import re
import wave
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

import numpy as np

from securepipe.errors import DatasetError, InvalidParameterError

__all__ = [
    "DATA_ENV_VAR",
    "MANIFEST_NAME",
    "SCHEMA_VERSION",
    "Consent",
    "Manifest",
    "Speaker",
    "Utterance",
    "default_data_dir",
    "load_audio",
    "load_manifest",
    "manifest_from_dict",
    "read_wav",
    "sha256_file",
    "verify",
]

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
DATA_ENV_VAR = "SECUREPIPE_DATA"
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Consent:
    """The consent a speaker gave: what for, when, for how long, and whether it was withdrawn."""

    purpose: str
    consent_date: dt.date
    term_days: int
    retention_until: dt.date
    withdrawn: dt.date | None = None


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: who recorded them, how they sound, and their consent."""

    speaker: str
    contractor: str
    voice: Mapping[str, Any]
    consent: Consent


@dataclass(frozen=True)
class Utterance:
    """One recording; ``path`` is relative to the data folder, in POSIX form."""

    sample_id: str
    speaker: str
    contractor: str
    path: str
    sentence_index: int
    duration_s: float
    sample_rate: int
    sha256: str
    legal_hold: bool
    archive_required: bool


@dataclass(frozen=True)
class Manifest:
    """The parsed manifest plus the folder it was read from (``root``)."""

    root: Path
    schema_version: int
    seed: int
    sample_rate: int
    generator: str
    speakers: tuple[Speaker, ...]
    utterances: tuple[Utterance, ...]

    def path_of(self, utterance: Utterance | str) -> Path:
        """Absolute path of an utterance (given as an :class:`Utterance` or a sample id)."""
        utt = self.utterance(utterance) if isinstance(utterance, str) else utterance
        return self.root.joinpath(*PurePosixPath(utt.path).parts)

    def utterance(self, sample_id: str) -> Utterance:
        """The utterance with this sample id; :class:`InvalidParameterError` if there is none."""
        for utt in self.utterances:
            if utt.sample_id == sample_id:
                return utt
        raise InvalidParameterError(f"no utterance {sample_id!r} in the manifest at {self.root}")

    def speaker(self, speaker_id: str) -> Speaker:
        """The speaker with this id; :class:`InvalidParameterError` if there is none."""
        for spk in self.speakers:
            if spk.speaker == speaker_id:
                return spk
        raise InvalidParameterError(f"no speaker {speaker_id!r} in the manifest at {self.root}")


def default_data_dir() -> Path:
    """``$SECUREPIPE_DATA`` if set, else the ``data-synthetic`` folder at the project root."""
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "data-synthetic"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --- parsing -------------------------------------------------------------------------------------


def _get(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict):
        raise DatasetError(f"manifest: {where} is not an object")
    if key not in obj:
        raise DatasetError(f"manifest: {where} has no {key!r}")
    value = obj[key]
    # bool is an int subclass: never accept it where a number is expected, or vice versa.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise DatasetError(f"manifest: {where}.{key} has the wrong type (bool)")
    if not isinstance(value, kind):
        raise DatasetError(f"manifest: {where}.{key} has the wrong type ({type(value).__name__})")
    return value


def _date(value: str, where: str) -> dt.date:
    # exactly YYYY-MM-DD: date.fromisoformat also takes ISO week dates and the basic form
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise DatasetError(f"manifest: {where} is not an ISO date (YYYY-MM-DD): {value!r}")
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise DatasetError(f"manifest: {where} is not an ISO date: {value!r}") from exc


def _safe_relpath(value: str, where: str) -> str:
    """Refuse absolute paths and ``..`` so a manifest cannot point outside its folder."""
    parts = PurePosixPath(value).parts
    if (
        not parts
        or value.startswith("/")
        or "\\" in value
        or ":" in value
        or any(p in ("..", ".") for p in parts)
    ):
        raise DatasetError(f"manifest: {where} is not a plain relative path: {value!r}")
    return value


def _parse_consent(obj: Any, where: str) -> Consent:
    withdrawn = obj.get("withdrawn") if isinstance(obj, dict) else None
    if withdrawn is not None and not isinstance(withdrawn, str):
        raise DatasetError(f"manifest: {where}.withdrawn must be null or an ISO date")
    return Consent(
        purpose=_get(obj, "purpose", str, where),
        consent_date=_date(_get(obj, "consent_date", str, where), f"{where}.consent_date"),
        term_days=_get(obj, "term_days", int, where),
        retention_until=_date(_get(obj, "retention_until", str, where), f"{where}.retention_until"),
        withdrawn=None if withdrawn is None else _date(withdrawn, f"{where}.withdrawn"),
    )


def _parse_speaker(obj: Any, i: int) -> Speaker:
    where = f"speakers[{i}]"
    return Speaker(
        speaker=_get(obj, "speaker", str, where),
        contractor=_get(obj, "contractor", str, where),
        voice=MappingProxyType(dict(_get(obj, "voice", dict, where))),
        consent=_parse_consent(_get(obj, "consent", dict, where), f"{where}.consent"),
    )


def _parse_utterance(obj: Any, i: int) -> Utterance:
    where = f"utterances[{i}]"
    return Utterance(
        sample_id=_get(obj, "sample_id", str, where),
        speaker=_get(obj, "speaker", str, where),
        contractor=_get(obj, "contractor", str, where),
        path=_safe_relpath(_get(obj, "path", str, where), f"{where}.path"),
        sentence_index=_get(obj, "sentence_index", int, where),
        duration_s=float(_get(obj, "duration_s", (int, float), where)),
        sample_rate=_get(obj, "sample_rate", int, where),
        sha256=_get(obj, "sha256", str, where).lower(),
        legal_hold=_get(obj, "legal_hold", bool, where),
        archive_required=_get(obj, "archive_required", bool, where),
    )


def manifest_from_dict(data: Any, root: str | os.PathLike[str]) -> Manifest:
    """Build a :class:`Manifest` from parsed JSON; :class:`DatasetError` if it is malformed."""
    where = "top level"
    speakers = tuple(
        _parse_speaker(s, i) for i, s in enumerate(_get(data, "speakers", list, where))
    )
    utterances = tuple(
        _parse_utterance(u, i) for i, u in enumerate(_get(data, "utterances", list, where))
    )
    manifest = Manifest(
        root=Path(root),
        schema_version=_get(data, "schema_version", int, where),
        seed=_get(data, "seed", int, where),
        sample_rate=_get(data, "sample_rate", int, where),
        generator=_get(data, "generator", str, where),
        speakers=speakers,
        utterances=utterances,
    )
    if manifest.schema_version != SCHEMA_VERSION:
        raise DatasetError(
            f"manifest: schema_version {manifest.schema_version} is not {SCHEMA_VERSION}"
        )
    speaker_ids = [s.speaker for s in speakers]
    if len(set(speaker_ids)) != len(speaker_ids):
        raise DatasetError("manifest: duplicate speaker ids")
    sample_ids = [u.sample_id for u in utterances]
    if len(set(sample_ids)) != len(sample_ids):
        raise DatasetError("manifest: duplicate sample ids")
    known = set(speaker_ids)
    for utt in utterances:
        if utt.speaker not in known:
            raise DatasetError(f"manifest: {utt.sample_id} names unknown speaker {utt.speaker!r}")
    return manifest


def load_manifest(data_dir: str | os.PathLike[str] | None = None) -> Manifest:
    """Read ``manifest.json`` from ``data_dir`` (default: :func:`default_data_dir`)."""
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    path = root / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DatasetError(f"no manifest at {path}; run `python -m securepipe voices`") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read manifest {path}: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"manifest {path} is not valid JSON: {exc}") from exc
    return manifest_from_dict(data, root)


# --- integrity and audio -------------------------------------------------------------------------


def verify(manifest: Manifest) -> None:
    """Check every file's SHA-256; :class:`DatasetError` names the first missing or changed file."""
    for utt in manifest.utterances:
        path = manifest.path_of(utt)
        try:
            digest = sha256_file(path)
        except FileNotFoundError as exc:
            raise DatasetError(f"{utt.path}: file is missing (expected at {path})") from exc
        except OSError as exc:
            raise DatasetError(f"{utt.path}: cannot read: {exc}") from exc
        if digest != utt.sha256:
            raise DatasetError(
                f"{utt.path}: SHA-256 mismatch "
                f"(manifest {utt.sha256[:12]}..., file {digest[:12]}...)"
            )


def _decode_wav(source: Any, name: str) -> tuple[np.ndarray, int]:
    try:
        with wave.open(source, "rb") as wf:
            channels, width, rate = wf.getnchannels(), wf.getsampwidth(), wf.getframerate()
            frames = wf.readframes(wf.getnframes())
    except (wave.Error, EOFError) as exc:
        raise DatasetError(f"{name}: not a readable WAV file: {exc}") from exc
    if channels != 1 or width != 2:
        raise DatasetError(f"{name}: expected 16-bit mono, got {8 * width}-bit x {channels}")
    pcm = np.frombuffer(frames, dtype="<i2")
    return (pcm.astype(np.float32) / np.float32(32768.0)), rate


def read_wav(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Read a 16-bit mono WAV as float32 samples in [-1, 1) and its sample rate."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: file is missing") from exc
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from exc
    return _decode_wav(io.BytesIO(data), str(path))


def load_audio(manifest: Manifest, sample_id: str) -> tuple[np.ndarray, int]:
    """Read one utterance after checking its digest; returns ``(samples, sample_rate)``."""
    utt = manifest.utterance(sample_id)
    path = manifest.path_of(utt)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise DatasetError(f"{utt.path}: file is missing (expected at {path})") from exc
    except OSError as exc:
        raise DatasetError(f"{utt.path}: cannot read: {exc}") from exc
    if hashlib.sha256(data).hexdigest() != utt.sha256:
        raise DatasetError(f"{utt.path}: SHA-256 mismatch, refusing to load")
    return _decode_wav(io.BytesIO(data), utt.path)
