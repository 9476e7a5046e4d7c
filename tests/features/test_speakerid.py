"""The baseline attacker identifies the synthetic speakers, and only through their voices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from securepipe.data.dataset import Manifest, load_audio, load_manifest
from securepipe.data.voices import generate_corpus
from securepipe.errors import InvalidParameterError, SecurePipeError
from securepipe.features.speakerid import (
    DROP_C0,
    HOP_LENGTH,
    N_FFT,
    N_MELS,
    N_MFCC,
    IdentificationResult,
    embed_audio,
    embed_matrix,
    identify_speakers,
    leave_one_out_accuracy,
)

COMMITTED = Path(__file__).resolve().parents[2] / "data-synthetic"


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return load_manifest(COMMITTED)


@pytest.fixture(scope="module")
def audio(manifest: Manifest) -> list[tuple[str, np.ndarray, int]]:
    out = []
    for utt in manifest.utterances:
        y, sr = load_audio(manifest, utt.sample_id)
        out.append((utt.speaker, y, sr))
    return out


@pytest.fixture(scope="module")
def embedded(audio) -> tuple[np.ndarray, list[str]]:
    return np.vstack([embed_audio(y, sr) for _, y, sr in audio]), [spk for spk, _, _ in audio]


def test_raw_audio_identifies_speakers(manifest: Manifest) -> None:
    result = identify_speakers(manifest)
    assert isinstance(result, IdentificationResult)
    assert result.n_speakers == 10 and result.n_trials == 40
    assert result.chance == pytest.approx(0.1)
    assert result.accuracy >= 0.8
    assert result.accuracy >= 5 * result.chance


def test_embedding_shape(embedded) -> None:
    x, _ = embedded
    assert x.shape == (40, 2 * (N_MFCC - int(DROP_C0)))
    assert np.all(np.isfinite(x))


def test_shuffled_labels_fall_to_chance(embedded) -> None:
    x, labels = embedded
    assert leave_one_out_accuracy(x, labels) >= 0.8
    rng = np.random.default_rng(0)
    scores = [leave_one_out_accuracy(x, list(rng.permutation(labels))) for _ in range(10)]
    assert max(scores) < 0.4
    assert float(np.mean(scores)) < 0.2


def test_sentence_is_not_what_is_matched(manifest: Manifest, embedded) -> None:
    """Sentence k is shared by every speaker: the nearest neighbour must not follow the text."""
    x, _ = embedded
    sentences = [u.sentence_index for u in manifest.utterances]
    assert leave_one_out_accuracy(x, sentences) < 0.4


def test_stored_feature_matrices_identify_speakers(audio) -> None:
    import librosa

    vectors, labels = [], []
    for spk, y, sr in audio:
        mel = librosa.feature.melspectrogram(
            y=y, sr=sr, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=N_MELS
        )
        mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel, ref=np.max), n_mfcc=N_MFCC)
        vectors.append(embed_matrix(mfcc))
        labels.append(spk)
    assert leave_one_out_accuracy(np.vstack(vectors), labels) >= 0.8


def test_embed_matrix_is_row_mean_and_std() -> None:
    m = np.arange(12, dtype=np.float64).reshape(3, 4)
    v = embed_matrix(m)
    assert np.allclose(v, [1.5, 5.5, 9.5] + [np.std([0, 1, 2, 3])] * 3)


def test_perfectly_separated_toy_set() -> None:
    x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    assert leave_one_out_accuracy(x, ["a", "a", "b", "b"]) == 1.0
    assert leave_one_out_accuracy(x, ["a", "b", "a", "b"]) == 0.0


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: leave_one_out_accuracy(np.zeros((4, 3)), ["a", "b", "a"]),
        lambda: leave_one_out_accuracy(np.zeros((4, 3)), ["a"] * 4),
        lambda: leave_one_out_accuracy(np.zeros(4), ["a", "b", "a", "b"]),
        lambda: leave_one_out_accuracy(np.full((2, 2), np.nan), ["a", "b"]),
        lambda: embed_matrix(np.zeros(5)),
        lambda: embed_matrix(np.zeros((3, 0))),
        lambda: embed_audio(np.zeros((2, 1000), dtype=np.float32), 16000),
        lambda: embed_audio(np.zeros(100, dtype=np.float32), 16000),
        lambda: embed_audio(np.ones(4000, dtype=np.float32), 0),
        lambda: embed_audio(np.zeros(4000, dtype=np.float32), 16000),
    ],
    ids=[
        "length-mismatch",
        "one-speaker",
        "1-d-embeddings",
        "nan",
        "1-d-matrix",
        "no-frames",
        "stereo",
        "too-short",
        "bad-rate",
        "silence",
    ],
)
def test_bad_input_raises(call) -> None:
    with pytest.raises(InvalidParameterError) as info:
        call()
    assert isinstance(info.value, SecurePipeError)


def test_single_speaker_manifest_is_refused(tmp_path: Path) -> None:
    tiny = generate_corpus(tmp_path, n_speakers=1, n_utterances=2, sample_rate=8000)
    with pytest.raises(InvalidParameterError, match="2 speakers"):
        identify_speakers(tiny)
