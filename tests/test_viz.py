from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from securepipe.dataset import load_manifest
from securepipe.viz import PIPELINE_STAGES, plot_pipeline_map, plot_voices


def test_pipeline_map_draws_every_stage() -> None:
    fig = plot_pipeline_map()
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {stage for stage, _, _ in PIPELINE_STAGES} <= texts


def test_plot_voices_has_waveform_and_spectrogram_per_sample() -> None:
    manifest = load_manifest()
    ids = [u.sample_id for u in manifest.utterances[:2]]
    fig = plot_voices(manifest, ids)
    assert len(fig.axes) >= 4
    assert fig.axes[0].get_title().startswith(ids[0])
