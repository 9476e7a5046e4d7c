"""The held-out voice family: byte-for-byte regeneration, its own shape, and refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from securepipe.data.dataset import load_manifest, verify
from securepipe.data.heldout import (
    HELDOUT_GENERATOR,
    HeldoutSpeaker,
    generate_heldout,
    heldout_dir,
    make_heldout_speakers,
    synthesize_heldout,
)
from securepipe.errors import InvalidParameterError

COMMITTED = Path(__file__).resolve().parents[2] / "data-synthetic" / "heldout"


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("heldout")
    committed = load_manifest(COMMITTED)
    generate_heldout(out, n_speakers=len(committed.speakers), seed=committed.seed)
    return out


def test_committed_heldout_is_what_the_generator_writes(regenerated: Path) -> None:
    assert _files(regenerated) == _files(COMMITTED)
    names = _files(COMMITTED)
    different = [n for n in names if (COMMITTED / n).read_bytes() != (regenerated / n).read_bytes()]
    assert different == []


def test_committed_heldout_shape() -> None:
    manifest = load_manifest(COMMITTED)
    verify(manifest)
    assert manifest.root.resolve() == heldout_dir().resolve()
    assert manifest.generator == HELDOUT_GENERATOR
    assert len(manifest.speakers) == 10 and len(manifest.utterances) == 40
    assert {u.sentence_index for u in manifest.utterances} == {0, 1, 2, 3}
    main = load_manifest(COMMITTED.parent)
    assert not {s.speaker for s in main.speakers} & {s.speaker for s in manifest.speakers}
    size = sum((COMMITTED / u.path).stat().st_size for u in manifest.utterances)
    assert size < 3_000_000


def test_speakers_are_distinct_and_deterministic() -> None:
    speakers = make_heldout_speakers(10)
    assert speakers == make_heldout_speakers(10)
    assert len({s.f0_hz for s in speakers}) == 10
    assert max(s.f0_hz for s in speakers[0::2]) < min(s.f0_hz for s in speakers[1::2])
    assert make_heldout_speakers(10, seed=1) != speakers


def test_synthesis_is_deterministic_and_voiced() -> None:
    spk = make_heldout_speakers(2)[1]
    a = synthesize_heldout(spk, 3, duration_s=1.0)
    assert a.dtype == np.int16 and a.shape == (16000,)
    assert np.array_equal(a, synthesize_heldout(spk, 3, duration_s=1.0))
    assert not np.array_equal(a, synthesize_heldout(spk, 4, duration_s=1.0))
    assert int(np.max(np.abs(a.astype(np.int32)))) == round(0.7079457843841379 * 32767)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("not a speaker", 0), {}),
        ((None, -1), {}),
        ((None, 0), {"duration_s": float("nan")}),
        ((None, 0), {"duration_s": 60.0}),
        ((None, 0), {"seed": -1}),
    ],
)
def test_synthesis_refuses_bad_input(args, kwargs) -> None:
    spk = make_heldout_speakers(2)[0]
    args = tuple(spk if a is None else a for a in args)
    with pytest.raises(InvalidParameterError):
        synthesize_heldout(*args, **kwargs)


def test_generate_refuses_bad_counts(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError):
        generate_heldout(tmp_path, n_speakers=1)
    assert isinstance(make_heldout_speakers(2)[0], HeldoutSpeaker)
