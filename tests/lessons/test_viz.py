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


def test_access_matrix_is_colour_blind_safe_with_a_second_cue() -> None:
    """Allowed/denied differ by an Okabe-Ito blue/vermillion pair AND a tick/cross per cell."""
    from matplotlib.colors import to_hex

    from securepipe.access import (
        Principal,
        access_matrix,
        contractor_session_policy,
        serialise_session_policy,
        session_principal,
    )
    from securepipe.lessons.viz import OKABE_ITO_BLUE, OKABE_ITO_VERMILLION, plot_access_matrix
    from securepipe.policy import Policy

    bucket = "securepipe-raw-123456789012-eu-west-1"
    key = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    role = Principal("securepipe-contractor", (Policy.from_document("role", {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": ["*"]}]}),))
    me = session_principal(role, "c01", serialise_session_policy(
        contractor_session_policy("c01", bucket=bucket, key_arn=key)))
    matrix = access_matrix([me], bucket=bucket, prefixes=["raw/c01/", "raw/c02/"])
    fig = plot_access_matrix(matrix)
    ax = fig.axes[0]
    marks = [t.get_text() for t in ax.texts]
    cells = len(matrix.principals) * len(matrix.prefixes) * len(matrix.actions)
    assert len(marks) == cells and {"\u2713", "\u2717"} == set(marks)
    cmap = ax.images[0].get_cmap()
    used = {to_hex(cmap(0.0)), to_hex(cmap(1.0))}
    assert used == {OKABE_ITO_BLUE.lower(), OKABE_ITO_VERMILLION.lower()}
