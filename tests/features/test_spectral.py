"""The NumPy spectral front end against librosa itself (a differential test: the reference is
code the kit did not write), on random signals and on both voice families."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securepipe.data import load_manifest
from securepipe.data.dataset import load_audio
from securepipe.data.heldout import heldout_dir
from securepipe.features import spectral
from securepipe.features.extract import (
    AMIN,
    MEL_SPEC,
    MFCC13_SPEC,
    MFCC40_SPEC,
    FeatureSpec,
    extract,
)
from securepipe.features.speakerid import (
    DROP_C0,
    FMIN,
    HOP_LENGTH,
    N_FFT,
    N_MELS,
    N_MFCC,
    VAD_TOP_DB,
    embed_audio,
)

SPECS = [MEL_SPEC, MFCC13_SPEC, MFCC40_SPEC, FeatureSpec(kind="mel", n_mels=80),
         FeatureSpec(kind="mel", n_mels=40, scale="power", top_db=None),
         FeatureSpec(kind="mfcc", n_mels=80, n_mfcc=20)]


def librosa_extract(y: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """What ``extract`` computed when it called librosa (fs1's definition)."""
    mel = librosa.feature.melspectrogram(
        y=np.asarray(y, dtype=np.float32), sr=spec.sample_rate, n_fft=spec.n_fft,
        hop_length=spec.hop_length, win_length=spec.win_length, window="hann", center=True,
        pad_mode="constant", power=spec.power, n_mels=spec.n_mels, fmin=spec.fmin,
        fmax=spec.fmax, htk=False, norm="slaney")
    if spec.scale == "power":
        return mel
    out = librosa.power_to_db(mel, ref=1.0, amin=AMIN, top_db=spec.top_db)
    if spec.kind == "mfcc":
        out = librosa.feature.mfcc(S=out, n_mfcc=spec.n_mfcc, dct_type=2, norm="ortho", lifter=0)
    return out


def assert_same(mine: np.ndarray, ref: np.ndarray, spec: FeatureSpec) -> None:
    assert mine.shape == ref.shape and mine.dtype == np.float32
    if spec.scale == "power":  # linear power: relative error within float32 rounding
        np.testing.assert_allclose(mine, ref, rtol=1e-5, atol=1e-12)
    else:  # dB and MFCCs (tens to hundreds): a thousandth of a dB is far below any effect
        np.testing.assert_allclose(mine, ref, rtol=0, atol=1e-3)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@settings(max_examples=15, deadline=None)
@given(n=st.integers(512, 9_000), seed=st.integers(0, 2**32 - 1),
       scale=st.sampled_from([1e-4, 0.05, 1.0, 30.0]))
def test_extract_matches_librosa_on_random_signals(spec: FeatureSpec, n: int, seed: int,
                                                   scale: float) -> None:
    y = (np.random.default_rng(seed).standard_normal(n) * scale).astype(np.float32)
    assert_same(extract(y, spec.sample_rate, spec), librosa_extract(y, spec), spec)


@pytest.mark.parametrize("family", ["kit", "heldout"])
def test_extract_matches_librosa_on_both_voice_families(family: str) -> None:
    manifest = load_manifest(heldout_dir() if family == "heldout" else None)
    for utt in manifest.utterances[:: max(1, len(manifest.utterances) // 6)]:
        y, sr = load_audio(manifest, utt.sample_id)
        for spec in SPECS:
            assert_same(extract(y, sr, spec), librosa_extract(y, spec), spec)


def test_silence_and_tones_match_librosa() -> None:
    t = np.arange(16_000) / 16_000
    for y in (np.zeros(4_000), np.sin(2 * np.pi * 440 * t), np.sign(np.sin(2 * np.pi * 97 * t))):
        for spec in SPECS:
            assert_same(extract(y, 16_000, spec), librosa_extract(y, spec), spec)


@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax", [
    (16_000, 512, 64, 20.0, 8_000.0), (16_000, 512, 40, 0.0, 8_000.0),
    (22_050, 2_048, 128, 0.0, 11_025.0), (8_000, 256, 24, 100.0, 3_800.0)])
def test_filterbank_equals_librosa(sr: int, n_fft: int, n_mels: int, fmin: float,
                                   fmax: float) -> None:
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    np.testing.assert_allclose(spectral.mel_filterbank(sr, n_fft, n_mels, fmin, fmax), ref,
                               rtol=1e-6, atol=1e-9)


def test_embedding_matches_its_librosa_definition() -> None:
    manifest = load_manifest()
    for utt in manifest.utterances[:3]:
        y, sr = load_audio(manifest, utt.sample_id)
        mel = librosa.feature.melspectrogram(y=y.astype(np.float32), sr=sr, n_fft=N_FFT,
                                             hop_length=HOP_LENGTH, n_mels=N_MELS, fmin=FMIN)
        log_mel = librosa.power_to_db(mel, ref=np.max, top_db=80.0)
        energy = librosa.power_to_db(mel.sum(axis=0), ref=np.max, top_db=None)
        speech = energy > -VAD_TOP_DB
        mfcc = librosa.feature.mfcc(S=log_mel[:, speech], n_mfcc=N_MFCC)[int(DROP_C0):]
        ref = np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)])
        np.testing.assert_allclose(embed_audio(y, sr), ref, rtol=1e-4, atol=1e-3)
