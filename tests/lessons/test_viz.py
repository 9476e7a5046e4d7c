from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from securepipe.data.dataset import load_manifest
from securepipe.lessons.viz import PIPELINE_STAGES, plot_pipeline_map, plot_voices


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


def test_plot_request_rates_draws_thresholds_and_alerts() -> None:
    import numpy as np
    import pytest

    from securepipe.audit.detector import Baseline, Detector
    from securepipe.audit.traffic import TrafficConfig, baseline_traffic, scenario_traffic
    from securepipe.errors import InvalidParameterError
    from securepipe.lessons.viz import plot_request_rates

    cfg = TrafficConfig()
    baseline = Baseline.fit(baseline_traffic(cfg).columns)
    burst = scenario_traffic("burst", cfg)
    alerts = Detector(baseline).detect(burst.columns).alerts
    trainer = cfg.principals()[0]
    assert burst.principal is not None and burst.start_ms is not None
    fig = plot_request_rates(burst.columns, baseline, alerts, principals=[burst.principal, trainer],
                             start_ms=burst.start_ms - 3_600_000, end_ms=burst.start_ms + 3_600_000)
    attacker, quiet = fig.axes
    rule = baseline.config.rules[0]  # burst: requests over 1 minute
    for ax, who in ((attacker, burst.principal), (quiet, trainer)):
        dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
        assert [ln.get_ydata()[0] for ln in dashed] == [baseline.threshold(who, rule)]
    dots = attacker.get_lines()[0].get_ydata()
    assert np.max(dots) > baseline.threshold(burst.principal, rule)  # the burst crosses it
    assert len(attacker.collections[0].get_offsets()) == len(alerts)  # one marker per alert
    assert not quiet.collections  # the trainer raised nothing
    with pytest.raises(InvalidParameterError):
        plot_request_rates(burst.columns, baseline, alerts, principals=[trainer], window_s=7)
