"""The leakage lab's functions on small inputs: inversion, pitch, both attackers and their
metrics, the anonymisers, the tables' shape, seeds and cache, and every refusal.

The measured claims on the full voice sets (both families) are asserted in notebook 04, which
the suite executes (tests/lessons/test_notebooks.py).
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
    F0Comparison,
    anonymisation_table,
    audio_frames,
    cache_key,
    cached_rows,
    compare_f0,
    cross_validated,
    draw_coefficient,
    draw_voice_shift,
    enrolled_accuracy,
    equal_error_rate,
    f0_correlation,
    f0_track,
    gmm_ubm_scores,
    invert,
    leakage_table,
    llr_score,
    log_spectral_distance,
    map_adapt,
    matrix_frames,
    mcadams,
    nearest_neighbour_scores,
    pitch_formant_shift,
    plot_anonymisation,
    plot_leakage,
    reconstruction_pair,
    sentence_accuracy,
    top1_accuracy,
    train_ubm,
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
def leak(small: Manifest) -> list[dict]:
    """The leakage table on three speakers, one spec, two Griffin-Lim iterations: the shape and
    the wiring. The claims on the full sets of both families are asserted in notebook 04."""
    return leakage_table(small, specs=(MFCC13_SPEC,), n_iter=2, seed=3)


@pytest.fixture(scope="module")
def anon(small: Manifest) -> list[dict]:
    return anonymisation_table(small, seed=5, attacker_seed=6)


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


def test_a_cached_reconstruction_is_the_same_audio_without_griffin_lim(
        manifest: Manifest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sample_id = manifest.utterances[5].sample_id
    fresh = reconstruction_pair(manifest, sample_id, n_iter=4)[1]
    first = reconstruction_pair(manifest, sample_id, n_iter=4, cache=tmp_path)[1]
    [stored] = list(tmp_path.glob("reconstruction-*.f32"))

    def no_inversion(*args: object, **kwargs: object) -> None:
        raise AssertionError("Griffin-Lim ran although the reconstruction is cached")

    monkeypatch.setattr("securepipe.features.leakage.inversion.invert", no_inversion)
    y, again, _ = reconstruction_pair(manifest, sample_id, n_iter=4, cache=tmp_path)
    assert np.array_equal(first, fresh) and np.array_equal(again, fresh)
    assert again.dtype == np.float32 and again.shape == y.shape
    # Other parameters are another name: never served the wrong reconstruction.
    with pytest.raises(AssertionError, match="Griffin-Lim ran"):
        reconstruction_pair(manifest, sample_id, n_iter=5, cache=tmp_path)
    # A damaged file is recomputed, not trusted.
    stored.write_bytes(stored.read_bytes()[:-4])
    with pytest.raises(AssertionError, match="Griffin-Lim ran"):
        reconstruction_pair(manifest, sample_id, n_iter=4, cache=tmp_path)


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


# --- the tables (small inputs) -------------------------------------------------------------------

ATTACK_KEYS = ("nn_top1", "nn_eer", "gmm_top1", "gmm_eer", "chance", "n_tests", "n_trials")


def _check_attack_columns(row: dict, n_speakers: int, n_items: int) -> None:
    assert row["chance"] == pytest.approx(1 / n_speakers, abs=1e-4)
    assert row["n_tests"] == n_items and row["n_trials"] == n_items * n_speakers
    for key in ("nn_top1", "gmm_top1", "nn_eer", "gmm_eer"):
        assert 0.0 <= row[key] <= 1.0


def test_leakage_table_shape(leak) -> None:
    assert [(r["features"], r["attacker_sees"], r["condition"]) for r in leak] == [
        ("raw audio", "raw audio", "raw enrolled"),
        ("mfcc13", "stored matrix", "spec in blob header"),
        ("mfcc13", "inverted audio", "ignorant"),
        ("mfcc13", "inverted audio", "lazy-informed"),
    ]
    for row in leak:
        assert row["family"] == "kit" and row["seed"] == 3 and row["n_items"] == 12
        _check_attack_columns(row, 3, 12)
    assert leak[0]["gmm_top1"] == 1.0 and leak[0]["gmm_eer"] < 0.1  # raw audio, three voices
    assert leak[2]["f0_corr"] is not None and "2 iterations, seed 3" in leak[2]["note"]
    assert leak[1]["f0_corr"] is None


def test_anonymisation_table_shape(anon) -> None:
    assert [(r["anonymisation"].split(" ")[0], r["condition"]) for r in anon] == [
        ("none", "raw enrolled"),
        ("McAdams", "ignorant"),
        ("McAdams", "lazy-informed"),
        ("McAdams", "ignorant"),
        ("McAdams", "lazy-informed"),
        ("pitch", "ignorant"),
        ("pitch", "lazy-informed"),
    ]
    for row in anon:
        assert row["seed"] == 5
        assert row["attacker_seed"] == (6 if row["condition"] == "lazy-informed" else None)
        _check_attack_columns(row, 3, 12)
    none = anon[0]
    assert none["lsd_db"] == 0.0 and none["sentence_accuracy"] == 1.0
    assert all(r["lsd_db"] > 3.0 for r in anon[1:])
    # A fixed coefficient has no randomness: the lazy attacker's copy is the defender's.
    assert anon[1]["sentence_accuracy"] == anon[2]["sentence_accuracy"]


def test_tables_use_the_cache(small: Manifest, tmp_path: Path) -> None:
    two = replace(small, utterances=small.utterances[:8])
    first = leakage_table(two, specs=(MFCC13_SPEC,), n_iter=2, cache=tmp_path)
    files = list(tmp_path.glob("leakage-*.json"))
    assert len(files) == 1
    assert leakage_table(two, specs=(MFCC13_SPEC,), n_iter=2, cache=tmp_path) == first
    assert first == leakage_table(two, specs=(MFCC13_SPEC,), n_iter=2)  # same rows uncached


def test_cached_rows_recomputes_when_the_key_or_the_file_changes(small: Manifest,
                                                                tmp_path: Path) -> None:
    calls: list[int] = []

    def compute() -> list[dict]:
        calls.append(1)
        return [{"x": len(calls)}]

    assert cached_rows(tmp_path, "t", small, {"a": 1}, compute) == [{"x": 1}]
    assert cached_rows(tmp_path, "t", small, {"a": 1}, compute) == [{"x": 1}]
    assert len(calls) == 1
    assert cached_rows(tmp_path, "t", small, {"a": 2}, compute) == [{"x": 2}]
    other = replace(small, utterances=small.utterances[1:])
    assert cache_key("t", other, {"a": 1}) != cache_key("t", small, {"a": 1})
    (tmp_path / f"t-{cache_key('t', small, {'a': 1})}.json").write_text("{not json")
    assert cached_rows(tmp_path, "t", small, {"a": 1}, compute) == [{"x": 3}]
    assert cached_rows(None, "t", small, {"a": 1}, compute) == [{"x": 4}]
    with pytest.raises(InvalidParameterError):
        cached_rows(tmp_path, "../t", small, {}, compute)


# --- the GMM-UBM attacker and the trial metrics -------------------------------------------------


def _toy_speakers(seed: int = 0, n_utts: int = 3, frames: int = 80) -> tuple[list, list]:
    """Three 'speakers': frames from Gaussians with different means, several utterances each."""
    rng = np.random.default_rng(seed)
    centres = {"a": (0.0, 0.0, 0.0), "b": (3.0, 0.0, 1.0), "c": (0.0, 3.0, -1.0)}
    items, labels = [], []
    for spk, c in centres.items():
        for _ in range(n_utts):
            items.append(rng.normal(size=(frames, 3)) + np.asarray(c))
            labels.append(spk)
    return items, labels


def test_gmm_ubm_identifies_toy_speakers_and_is_deterministic() -> None:
    enrol, labels = _toy_speakers(0)
    tests, test_labels = _toy_speakers(1, n_utts=1)
    scores, speakers = gmm_ubm_scores(enrol, labels, tests, n_components=4, seed=2)
    assert speakers == ["a", "b", "c"] and scores.shape == (3, 3)
    assert top1_accuracy(scores, speakers, test_labels) == 1.0
    assert equal_error_rate(scores, speakers, test_labels) == 0.0
    again, _ = gmm_ubm_scores(enrol, labels, tests, n_components=4, seed=2)
    assert np.array_equal(scores, again)


def test_map_adaptation_moves_means_by_occupancy() -> None:
    enrol, labels = _toy_speakers(0)
    ubm = train_ubm(enrol, n_components=4, seed=0)
    b_frames = [m for m, lab in zip(enrol, labels, strict=True) if lab == "b"]
    near = map_adapt(ubm, b_frames, relevance=1e-3)
    far = map_adapt(ubm, b_frames, relevance=1e5)
    np.testing.assert_allclose(far, ubm.means, atol=0.05)  # huge relevance: the UBM's means
    assert not np.allclose(near, ubm.means, atol=0.05)
    assert llr_score(ubm, near, b_frames[0]) > 0.0 > llr_score(ubm, near, enrol[0])


def test_equal_error_rate_values() -> None:
    speakers = ["a", "b"]
    perfect = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert equal_error_rate(perfect, speakers, ["a", "b"]) == 0.0
    assert equal_error_rate(perfect, speakers, ["b", "a"]) == 1.0
    assert equal_error_rate(np.ones((2, 2)), speakers, ["a", "b"]) == 0.5
    assert top1_accuracy(perfect, speakers, ["b", "a"]) == 0.0
    # Targets 0.9 and 0.2, non-targets 0.5 and 0.1: one of two misordered at the crossing.
    mixed = np.array([[0.9, 0.5], [0.1, 0.2]])
    assert equal_error_rate(mixed, speakers, ["a", "b"]) == pytest.approx(0.5)


def test_nearest_neighbour_scores_match_the_kit_attacker() -> None:
    enrol = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    labels = ["a", "a", "b", "b"]
    scores, speakers = nearest_neighbour_scores(enrol, labels, enrol[[1, 3]])
    assert top1_accuracy(scores, speakers, ["a", "b"]) == 1.0
    assert enrolled_accuracy(enrol, labels, enrol, labels, exclude_same_index=False) == 1.0


def test_cross_validated_folds_never_enrol_the_test_sentence() -> None:
    items, labels = _toy_speakers(0, n_utts=3)
    folds = [0, 1, 2] * 3
    result = cross_validated("gmm-ubm", items, items, labels, folds, seed=1)
    assert result.top1 == 1.0 and result.n_tests == 9 and result.n_trials == 27
    assert result.chance == pytest.approx(1 / 3)
    vectors = [m.mean(axis=0) for m in items]
    assert cross_validated("nn", vectors, vectors, labels, folds).top1 == 1.0


@pytest.mark.parametrize("case", ["shape", "one-utterance", "nan", "one-speaker", "labels"])
def test_attackers_refuse_bad_input(case: str) -> None:
    enrol, labels = _toy_speakers(0)
    tests = [enrol[0]]
    vectors = np.vstack([np.concatenate([m.mean(axis=0), m.std(axis=0)]) for m in enrol])
    test_vectors = vectors[:1]
    if case == "shape":
        tests = [enrol[0][:, :2]]
        test_vectors = vectors[:1, :4]
    elif case == "one-utterance":
        enrol, labels = enrol[::3], labels[::3]
        vectors = vectors[::3]
    elif case == "nan":
        bad = enrol[1].copy()
        bad[3, 1] = np.nan
        enrol = [enrol[0], bad, *enrol[2:]]
        vectors = vectors.copy()
        vectors[1, 0] = np.nan
    elif case == "one-speaker":
        enrol, labels, vectors = enrol[:3], labels[:3], vectors[:3]
    else:
        labels = labels[:-1]
    with pytest.raises(InvalidParameterError):
        gmm_ubm_scores(enrol, labels, tests, n_components=2)
    with pytest.raises(InvalidParameterError):
        nearest_neighbour_scores(vectors, labels, test_vectors)


def test_other_refusals() -> None:
    enrol, labels = _toy_speakers(0)
    with pytest.raises(InvalidParameterError):
        train_ubm(enrol[:1], n_components=64)  # 80 frames cannot fit 64 components
    with pytest.raises(InvalidParameterError):
        cross_validated("svm", enrol, enrol, labels, [0] * 9)
    with pytest.raises(InvalidParameterError):
        cross_validated("nn", enrol, enrol, labels, [0] * 8)
    with pytest.raises(InvalidParameterError):
        top1_accuracy(np.ones((2, 3)), ["a", "b"], ["a", "b"])
    with pytest.raises(InvalidParameterError):
        equal_error_rate(np.ones((2, 2)), ["a", "b"], ["z", "z"])  # no target trial at all
    with pytest.raises(InvalidParameterError):
        matrix_frames(np.full((13, 50), np.nan), MFCC13_SPEC)
    with pytest.raises(InvalidParameterError):
        matrix_frames(np.zeros((40, 50)), MFCC13_SPEC)
    with pytest.raises(InvalidParameterError):
        audio_frames(np.zeros(4000), SR)


def test_frames_from_audio_and_from_stored_matrices(clip) -> None:
    frames = audio_frames(clip, SR)
    assert frames.shape[1] == 19 and frames.shape[0] > 100
    for spec, dim in ((MEL_SPEC, 19), (MFCC13_SPEC, 12), (MFCC40_SPEC, 39)):
        f = matrix_frames(extract(clip, SR, spec), spec)
        assert f.shape[1] == dim and 100 < f.shape[0] <= frames.shape[0] + 5
        assert np.all(np.isfinite(f))


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


# --- determinism, validation, figures -------------------------------------------------------------


def test_tables_are_deterministic(small: Manifest) -> None:
    two = replace(small, utterances=small.utterances[:8])  # two speakers: two runs stay cheap
    first = leakage_table(two, specs=(MFCC13_SPEC,), n_iter=2)
    assert first == leakage_table(two, specs=(MFCC13_SPEC,), n_iter=2)
    assert first[0]["chance"] == pytest.approx(0.5) and first[0]["n_items"] == 8


@pytest.mark.parametrize(
    "kwargs",
    [{"n_iter": 0}, {"seed": -1}, {"specs": ()}, {"specs": ("mel",)}, {"n_iter": 2.5}],
)
def test_leakage_table_refuses_bad_parameters(small: Manifest, kwargs) -> None:
    with pytest.raises(InvalidParameterError):
        leakage_table(small, **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [{"fixed": 0.2}, {"random_range": (0.9, 0.7)}, {"random_range": 0.8}, {"seed": "x"},
     {"seed": 3, "attacker_seed": 3}],
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

    held = [{**r, "family": "held-out"} for r in leak]
    fig = plot_leakage([*leak, *held])
    assert len(fig.axes) == 2  # one panel per family
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert any("inverted audio" in label for label in labels)
    assert len(fig.axes[0].patches) == 2 * len(leak)
    fig2 = plot_anonymisation(anon)
    assert len(fig2.axes) == 1
    assert len(fig2.axes[0].patches) == 3 * len(anon)
    plt.close(fig)
    plt.close(fig2)
    with pytest.raises(InvalidParameterError):
        plot_leakage([])
    with pytest.raises(InvalidParameterError):
        plot_anonymisation([{"anonymisation": "none"}])


# --- pitch and formant shifting -----------------------------------------------------------------


def test_pitch_formant_shift_moves_the_pitch_deterministically(clip) -> None:
    up = pitch_formant_shift(clip, SR, 4.0, 1.0)
    assert up.dtype == np.float32 and up.shape == clip.shape
    assert np.array_equal(up, pitch_formant_shift(clip, SR, 4.0, 1.0))
    assert np.max(np.abs(up)) == pytest.approx(np.max(np.abs(clip)), rel=1e-5)
    f_raw, v_raw = f0_track(clip, SR)
    f_up, v_up = f0_track(up, SR)
    ratio = np.median(f_up[v_up]) / np.median(f_raw[v_raw])
    assert 2 ** (2.5 / 12) < ratio < 2 ** (5.5 / 12)  # about +4 semitones
    formants = pitch_formant_shift(clip, SR, 0.0, 1.15)
    assert log_spectral_distance(clip, formants, SR) > 3.0
    assert not np.any(pitch_formant_shift(np.zeros(4000), SR, 3.0, 1.1))


@pytest.mark.parametrize(
    "args", [(30.0, 1.0), (float("nan"), 1.0), (2.0, 0.2), (2.0, True), ("2", 1.0)]
)
def test_pitch_formant_shift_refuses_bad_parameters(clip, args) -> None:
    with pytest.raises(InvalidParameterError):
        pitch_formant_shift(clip, SR, *args)


def test_draw_voice_shift_is_per_speaker_and_in_range() -> None:
    draws = [draw_voice_shift(0, f"spk{i:02d}") for i in range(40)]
    assert all(2.0 <= abs(st) < 5.0 and 0.08 <= abs(f - 1.0) < 0.18 for st, f in draws)
    assert {st > 0 for st, _ in draws} == {True, False}
    assert draw_voice_shift(0, "spk01") == draws[1]
    assert draw_voice_shift(1, "spk01") != draws[1]
    with pytest.raises(InvalidParameterError):
        draw_voice_shift(0, "")
    with pytest.raises(InvalidParameterError):
        draw_voice_shift(0, "a", semitone_range=(5.0, 2.0))
