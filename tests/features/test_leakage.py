"""The leakage lab: stored features still identify speakers, and McAdams only partly hides them.

The measured claims are asserted as bounds, so a change that makes the features leak less (or
the anonymiser hide more) shows up as a failing test and a number to re-check in the notebook.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from securepipe.data.dataset import Manifest, load_audio, load_manifest
from securepipe.errors import InvalidParameterError
from securepipe.features.extract import MEL_SPEC, MFCC13_SPEC, MFCC40_SPEC, extract
from securepipe.features.leakage import (
    DEFAULT_GL_ITER,
    F0Comparison,
    anonymisation_table,
    compare_f0,
    draw_coefficient,
    enrolled_accuracy,
    f0_correlation,
    f0_track,
    invert,
    leakage_table,
    log_spectral_distance,
    mcadams,
    plot_anonymisation,
    plot_leakage,
    reconstruction_pair,
    sentence_accuracy,
)

COMMITTED = Path(__file__).resolve().parents[2] / "data-synthetic"
SR = 16000


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return load_manifest(COMMITTED)


@pytest.fixture(scope="module")
def small(manifest: Manifest) -> Manifest:
    """Three speakers, all their utterances: enough for determinism checks, 30 % of the cost."""
    keep = {s.speaker for s in manifest.speakers[:3]}
    return replace(
        manifest,
        speakers=tuple(s for s in manifest.speakers if s.speaker in keep),
        utterances=tuple(u for u in manifest.utterances if u.speaker in keep),
    )


@pytest.fixture(scope="module")
def clip(manifest: Manifest) -> np.ndarray:
    y, sr = load_audio(manifest, manifest.utterances[0].sample_id)
    assert sr == SR
    return y


@pytest.fixture(scope="module")
def leak(manifest: Manifest) -> dict[tuple[str, str], dict]:
    """The full leakage table, computed once, keyed by (features, attacker_sees)."""
    rows = leakage_table(manifest)
    return {(r["features"], r["attacker_sees"]): r for r in rows}


@pytest.fixture(scope="module")
def anon(manifest: Manifest) -> list[dict]:
    return anonymisation_table(manifest)


# --- inversion ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [MEL_SPEC, MFCC13_SPEC], ids=lambda s: s.name)
def test_inversion_is_deterministic_for_a_seed(clip, spec) -> None:
    matrix = extract(clip, SR, spec)
    a = invert(matrix, spec, n_iter=4, seed=7, length=len(clip))
    b = invert(matrix, spec, n_iter=4, seed=7, length=len(clip))
    c = invert(matrix, spec, n_iter=4, seed=8, length=len(clip))
    assert a.dtype == np.float32 and a.shape == clip.shape
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.all(np.isfinite(a)) and np.max(np.abs(a)) > 0


def test_magnitude_matches_librosa_mel_to_stft(clip) -> None:
    import librosa

    from securepipe.features.leakage.inversion import mel_power, mel_to_magnitude

    for spec in (MEL_SPEC, MFCC13_SPEC):
        mel = mel_power(extract(clip, SR, spec), spec)
        ours = mel_to_magnitude(mel, spec)
        theirs = librosa.feature.inverse.mel_to_stft(
            mel, sr=SR, n_fft=spec.n_fft, power=2.0, fmin=spec.fmin, fmax=spec.fmax
        )
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6 * float(theirs.max()))


def test_reconstruction_pair_for_the_notebook(manifest: Manifest) -> None:
    sample_id = manifest.utterances[5].sample_id
    y, rec, sr = reconstruction_pair(manifest, sample_id, n_iter=4)
    assert sr == SR and rec.shape == y.shape and rec.dtype == np.float32
    assert np.array_equal(rec, reconstruction_pair(manifest, sample_id, n_iter=4)[1])


@pytest.mark.parametrize(
    "matrix, spec, kwargs",
    [
        (np.zeros((13, 50), dtype=np.float32), MEL_SPEC, {}),
        (np.zeros((64, 1), dtype=np.float32), MEL_SPEC, {}),
        (np.full((13, 50), np.nan, dtype=np.float32), MFCC13_SPEC, {}),
        (np.zeros((13, 50), dtype=np.float32), MFCC13_SPEC, {"n_iter": 0}),
        (np.zeros((13, 50), dtype=np.float32), MFCC13_SPEC, {"seed": -1}),
        (np.zeros((13, 50), dtype=np.float32), MFCC13_SPEC, {"length": 0}),
        (np.zeros((13, 50), dtype=np.float32), "mfcc13", {}),
    ],
)
def test_invert_refuses_bad_input(matrix, spec, kwargs) -> None:
    with pytest.raises(InvalidParameterError):
        invert(matrix, spec, **kwargs)


# --- pitch ---------------------------------------------------------------------------------------


def test_f0_track_finds_a_tone_and_rejects_noise() -> None:
    t = np.arange(SR) / SR
    tone = 0.5 * np.sin(2 * np.pi * 150.0 * t) + 0.2 * np.sin(2 * np.pi * 300.0 * t)
    f0, voiced = f0_track(tone, SR)
    assert voiced.mean() > 0.9
    assert abs(float(np.median(f0[voiced])) - 150.0) < 2.0
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, SR)
    assert f0_track(noise, SR)[1].mean() < 0.1


def test_f0_correlation_of_a_signal_with_itself_is_one(clip) -> None:
    assert f0_correlation(clip, clip, SR) == pytest.approx(1.0)
    cmp = compare_f0([(clip, clip)], SR)
    assert isinstance(cmp, F0Comparison)
    assert cmp.mae_hz == 0.0 and cmp.voiced_overlap == 1.0 and cmp.n_frames > 50


def test_f0_correlation_without_shared_voicing_is_zero(clip) -> None:
    noise = np.random.default_rng(1).uniform(-0.5, 0.5, clip.size)
    cmp = compare_f0([(clip, noise)], SR)
    assert cmp.voiced_overlap < 0.1
    assert f0_correlation(clip, np.zeros_like(clip), SR) == 0.0
    with pytest.raises(InvalidParameterError):
        compare_f0([], SR)


# --- the measured leakage ------------------------------------------------------------------------


def test_leakage_table_shape(leak) -> None:
    assert list(leak) == [
        ("raw audio", "raw audio"),
        ("mel64-db", "stored matrix"),
        ("mel64-db", "inverted audio"),
        ("mfcc13", "stored matrix"),
        ("mfcc13", "inverted audio"),
        ("mfcc40", "stored matrix"),
        ("mfcc40", "inverted audio"),
    ]
    for (_, sees), row in leak.items():
        assert row["chance"] == pytest.approx(0.1)
        assert row["n_items"] == 40
        assert row["x_chance"] == pytest.approx(row["reid_accuracy"] / row["chance"], abs=0.01)
        if sees == "inverted audio":
            assert f"{DEFAULT_GL_ITER} iterations" in row["note"]
            assert row["f0_corr"] is not None
        else:
            assert row["f0_corr"] is None


def test_raw_audio_and_stored_matrices_identify_speakers(leak) -> None:
    for key in [
        ("raw audio", "raw audio"),
        ("mel64-db", "stored matrix"),
        ("mfcc13", "stored matrix"),
        ("mfcc40", "stored matrix"),
    ]:
        assert leak[key]["reid_accuracy"] >= 3 * leak[key]["chance"], key
    assert leak[("raw audio", "raw audio")]["reid_accuracy"] >= 0.9
    assert leak[("mfcc13", "stored matrix")]["reid_accuracy"] >= 0.7


def test_inverted_features_identify_speakers(leak) -> None:
    assert leak[("mel64-db", "inverted audio")]["reid_accuracy"] >= 0.9
    assert leak[("mfcc40", "inverted audio")]["reid_accuracy"] >= 0.9
    # 13 MFCCs lose the pitch (below), yet the rebuilt audio still names the speaker.
    assert leak[("mfcc13", "inverted audio")]["reid_accuracy"] >= 3 * 0.1


def test_pitch_survives_mel_inversion(leak) -> None:
    row = leak[("mel64-db", "inverted audio")]
    assert row["f0_corr"] > 0.85
    assert row["voiced_overlap"] > 0.8
    assert row["f0_mae_hz"] < 10.0
    assert row["f0_speaker_err_hz"] < 10.0  # the speaker's pitch, read off stolen features


def test_pitch_is_lost_by_13_mfccs(leak) -> None:
    row = leak[("mfcc13", "inverted audio")]
    assert row["f0_corr"] < 0.7
    assert row["voiced_overlap"] < 0.5
    assert row["f0_speaker_err_hz"] > 40.0
    # 40 MFCCs from 40 bands sit in between: resolved harmonics only for the higher voices.
    mid = leak[("mfcc40", "inverted audio")]
    assert (
        row["voiced_overlap"]
        < mid["voiced_overlap"]
        < leak[("mel64-db", "inverted audio")]["voiced_overlap"]
    )


# --- anonymisation -------------------------------------------------------------------------------


def test_mcadams_with_alpha_one_is_transparent(clip) -> None:
    out = mcadams(clip, SR, 1.0)
    assert out.dtype == np.float32 and out.shape == clip.shape
    inner = slice(320, -320)  # first and last window are only half covered
    np.testing.assert_allclose(out[inner], clip[inner], atol=2e-3)


def test_mcadams_changes_the_voice_deterministically(clip) -> None:
    a = mcadams(clip, SR, 0.8)
    assert np.array_equal(a, mcadams(clip, SR, 0.8))
    assert np.max(np.abs(a)) == pytest.approx(np.max(np.abs(clip)), rel=1e-5)
    assert log_spectral_distance(clip, a, SR) > 5.0
    r1 = mcadams(clip, SR, (0.7, 0.9), seed=3)
    assert np.array_equal(r1, mcadams(clip, SR, (0.7, 0.9), seed=3))
    assert np.array_equal(r1, mcadams(clip, SR, draw_coefficient(0.7, 0.9, 3)))
    assert not np.array_equal(r1, mcadams(clip, SR, (0.7, 0.9), seed=4))


def test_draw_coefficient_stays_in_range() -> None:
    draws = [draw_coefficient(0.7, 0.9, [5, s]) for s in range(50)]
    assert all(0.7 <= d < 0.9 for d in draws)
    assert len(set(draws)) == 50
    assert draw_coefficient(0.7, 0.9, 1) == draw_coefficient(0.7, 0.9, 1)


def test_mcadams_on_silence_returns_silence() -> None:
    out = mcadams(np.zeros(4000), SR, 0.8)
    assert out.dtype == np.float32 and not np.any(out)


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((0.3,), {}),
        ((float("nan"),), {}),
        ((True,), {}),
        (((0.9, 0.7),), {}),
        (((0.7,),), {}),
        ((0.8,), {"lp_order": 400}),
        ((0.8,), {"hop_ms": 0.0}),
        ((0.8,), {"win_ms": float("nan")}),
        ((0.8,), {"win_ms": "20"}),
        ((0.8,), {"seed": -1}),
        ((0.8,), {"seed": []}),
        (((0.7, 0.9),), {"seed": "abc"}),
    ],
)
def test_mcadams_refuses_bad_parameters(clip, args, kwargs) -> None:
    with pytest.raises(InvalidParameterError):
        mcadams(clip, SR, *args, **kwargs)
    with pytest.raises(InvalidParameterError):
        mcadams(np.stack([clip, clip]), SR, 0.8)


def test_enrolled_accuracy_toy() -> None:
    enrol = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    labels = ["a", "a", "b", "b"]
    assert enrolled_accuracy(enrol, labels, enrol, labels) == 1.0
    # Labels swapped: every nearest neighbour now carries the wrong name.
    assert enrolled_accuracy(enrol, labels, enrol, ["b", "b", "a", "a"]) == 0.0
    swapped = enrol[:, ::-1]
    assert enrolled_accuracy(enrol, labels, swapped, labels) == 0.0
    with pytest.raises(InvalidParameterError):
        enrolled_accuracy(enrol, labels, enrol[:3], labels[:3])
    with pytest.raises(InvalidParameterError):
        enrolled_accuracy(enrol, labels, enrol[:, :1], labels)


def test_sentence_identification_on_raw_audio(small: Manifest) -> None:
    audio = [load_audio(small, u.sample_id)[0] for u in small.utterances]
    speakers = [u.speaker for u in small.utterances]
    sentences = [u.sentence_index for u in small.utterances]
    assert sentence_accuracy(audio, audio, speakers, sentences, SR) == 1.0
    with pytest.raises(InvalidParameterError):
        sentence_accuracy(audio[:4], audio[:4], speakers[:4], sentences[:4], SR)  # one speaker


def test_log_spectral_distance_basics(clip) -> None:
    assert log_spectral_distance(clip, clip, SR) == 0.0
    # Half the amplitude is 6.02 dB in every bin, less where both sit on the 1e-10 power floor.
    assert 5.5 < log_spectral_distance(clip, 0.5 * clip, SR) <= 6.03
    with pytest.raises(InvalidParameterError):
        log_spectral_distance(clip, clip[:-1], SR)


def test_anonymisation_table_shape(anon) -> None:
    assert [r["anonymisation"] for r in anon] == [
        "none",
        "McAdams fixed alpha=0.8",
        "McAdams random alpha~U[0.7, 0.9) per utterance, seed 0",
    ]
    none = anon[0]
    assert none["reid_raw_enrolled"] == none["reid_anon_enrolled"] >= 0.9
    assert none["lsd_db"] == 0.0 and none["sentence_accuracy"] == 1.0
    assert none["sentence_chance"] == 0.25 and none["chance"] == pytest.approx(0.1)


def test_mcadams_lowers_raw_enrolled_reidentification_and_keeps_the_words(anon) -> None:
    none, fixed, rand = anon
    for row in (fixed, rand):
        assert row["reid_raw_enrolled"] <= 0.5 * none["reid_raw_enrolled"]
        assert row["sentence_accuracy"] >= 0.9  # the utility proxy survives
        assert 5.0 < row["lsd_db"] < 20.0


def test_random_coefficient_vs_fixed(anon) -> None:
    """Measured, not assumed: randomness does not help against the raw-enrolled attacker here.

    Fixed alpha=0.8 and alpha ~ U[0.7, 0.9) (same mean) leave the raw-enrolled attacker at
    about 3x chance either way (0.30 vs 0.35 at seed 0; 0.28-0.40 over seeds 0-7). Randomness
    makes anonymised recordings harder to link to each other: 0.88 fixed against 0.575 at seed 0,
    but 0.58-0.93 (mean 0.72) over seeds 0-7, so only the direction is asserted.
    """
    _, fixed, rand = anon
    assert abs(rand["reid_raw_enrolled"] - fixed["reid_raw_enrolled"]) <= 0.1
    assert fixed["reid_anon_enrolled"] >= 0.8  # a fixed coefficient keeps voices linkable
    assert rand["reid_anon_enrolled"] < fixed["reid_anon_enrolled"]


# --- determinism, validation, figures -------------------------------------------------------------


def test_tables_are_deterministic(small: Manifest) -> None:
    two = replace(small, utterances=small.utterances[:8])  # two speakers: two runs stay cheap
    first = leakage_table(two, specs=(MEL_SPEC, MFCC13_SPEC, MFCC40_SPEC), n_iter=4)
    assert first == leakage_table(two, specs=(MEL_SPEC, MFCC13_SPEC, MFCC40_SPEC), n_iter=4)
    assert first[0]["chance"] == pytest.approx(0.5) and first[0]["n_items"] == 8
    anon_first = anonymisation_table(two, seed=11)
    assert anon_first == anonymisation_table(two, seed=11)


@pytest.mark.parametrize(
    "kwargs",
    [{"n_iter": 0}, {"seed": -1}, {"specs": ()}, {"specs": ("mel",)}, {"n_iter": 2.5}],
)
def test_leakage_table_refuses_bad_parameters(small: Manifest, kwargs) -> None:
    with pytest.raises(InvalidParameterError):
        leakage_table(small, **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [{"fixed": 0.2}, {"random_range": (0.9, 0.7)}, {"random_range": 0.8}, {"seed": "x"}],
)
def test_anonymisation_table_refuses_bad_parameters(small: Manifest, kwargs) -> None:
    with pytest.raises(InvalidParameterError):
        anonymisation_table(small, **kwargs)


def test_tables_refuse_a_single_speaker(small: Manifest) -> None:
    one = replace(small, utterances=small.utterances[:4])
    with pytest.raises(InvalidParameterError):
        leakage_table(one)
    with pytest.raises(InvalidParameterError):
        anonymisation_table(one)
    with pytest.raises(InvalidParameterError):
        leakage_table("data-synthetic")  # type: ignore[arg-type]


def test_plots(leak, anon) -> None:
    import matplotlib.pyplot as plt

    fig = plot_leakage(list(leak.values()))
    assert len(fig.axes) == 2
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert any("inverted audio" in label for label in labels)
    fig2 = plot_anonymisation(anon)
    assert len(fig2.axes) == 1
    assert len(fig2.axes[0].patches) == 3 * len(anon)
    plt.close(fig)
    plt.close(fig2)
    with pytest.raises(InvalidParameterError):
        plot_leakage([])
    with pytest.raises(InvalidParameterError):
        plot_anonymisation([{"anonymisation": "none"}])
