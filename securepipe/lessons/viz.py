"""Figures the notebooks show: the pipeline map, the synthetic voices and the access matrix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from securepipe.data.dataset import Manifest, load_audio

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from securepipe.access.review import AccessMatrix
    from securepipe.audit.detector import Alert, Baseline, EventColumns

#: The pipeline's stages, where the data sits at each, and the kit's step that protects it.
PIPELINE_STAGES: tuple[tuple[str, str, str], ...] = (
    ("contractor device", "raw WAV on a laptop", "1: encrypt before upload"),
    ("upload", "ciphertext in transit", "1: TLS only; 2: scoped, short-lived credentials"),
    ("raw bucket", "encrypted recordings", "1: customer-managed key; 3: audit + detector"),
    ("ingest", "plaintext in memory only", "4: verify, extract features, delete raw"),
    ("features bucket", "encrypted feature matrices", "4: features still leak; 5: retention"),
    ("training", "scoped reads of features", "2: least privilege; 3: bulk-read alerts"),
    ("archive", "originals under legal hold", "4: separate key and role; 5: hard cap, erasure"),
)

#: Okabe & Ito's colour-blind-safe palette (https://jfly.uni-koeln.de/color/), the pair the
#: lessons use for allowed/denied and normal/alert.
OKABE_ITO_BLUE = "#0072B2"
OKABE_ITO_VERMILLION = "#D55E00"


def plot_pipeline_map() -> Figure:
    """Draw the pipeline as a row of boxes, each labelled with the step that protects it."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(14, 3.2))
    n = len(PIPELINE_STAGES)
    for i, (stage, data, step) in enumerate(PIPELINE_STAGES):
        x = i * 2.0
        ax.add_patch(plt.Rectangle((x, 0.9), 1.6, 1.0, facecolor="#e8f0fe", edgecolor="#1a73e8"))
        ax.text(x + 0.8, 1.55, stage, ha="center", va="center", fontsize=9, weight="bold")
        ax.text(x + 0.8, 1.2, data, ha="center", va="center", fontsize=7, wrap=True)
        ax.text(x + 0.8, 0.55, step.replace("; ", "\n"), ha="center", va="top", fontsize=7,
                color="#b3261e")
        if i < n - 1:
            ax.annotate("", xy=(x + 2.0, 1.4), xytext=(x + 1.6, 1.4),
                        arrowprops={"arrowstyle": "->"})
    ax.set_xlim(-0.2, n * 2.0)
    ax.set_ylim(-0.2, 2.1)
    ax.axis("off")
    ax.set_title("Where voice data sits, and which step of the kit protects it")
    fig.tight_layout()
    return fig


def plot_voices(manifest: Manifest, sample_ids: Sequence[str]) -> Figure:
    """Waveform (top) and log-mel spectrogram (bottom) for each sample id, side by side.

    The spectrogram is the kit's stored feature (:data:`~securepipe.features.MEL_SPEC`: 64
    mel bands, 10 ms frames), shown in dB below the clip's loudest cell."""
    import matplotlib.pyplot as plt

    from securepipe.features import spectral
    from securepipe.features.extract import MEL_SPEC

    fig, axes = plt.subplots(2, len(sample_ids), figsize=(4.2 * len(sample_ids), 5.5),
                             squeeze=False)
    for col, sample_id in enumerate(sample_ids):
        y, sr = load_audio(manifest, sample_id)
        utt = manifest.utterance(sample_id)
        voice = manifest.speaker(utt.speaker).voice
        t = np.arange(len(y)) / sr
        axes[0, col].plot(t, y, linewidth=0.4)
        axes[0, col].set_title(f"{sample_id} (f0 ~ {voice.get('f0_hz', '?')} Hz)")
        axes[0, col].set_xlabel("seconds")
        spec = MEL_SPEC
        mel = spectral.melspectrogram(
            np.asarray(y, dtype=np.float32), sr=sr, n_fft=spec.n_fft,
            hop_length=spec.hop_length, win_length=spec.win_length, n_mels=spec.n_mels,
            fmin=spec.fmin, fmax=min(spec.fmax, sr / 2))
        axes[1, col].imshow(spectral.power_to_db(mel, ref=None), origin="lower", aspect="auto",
                            cmap="magma", extent=(0.0, len(y) / sr, 0, spec.n_mels))
        axes[1, col].set_xlabel("seconds")
        axes[1, col].set_ylabel("mel band (low to high pitch)")
    fig.tight_layout()
    return fig


def plot_encryption_costs(rows: Sequence[dict[str, object]]) -> Figure:
    """Peak Python heap and throughput against file size, one line per method."""
    import matplotlib.pyplot as plt

    fig, (mem_ax, speed_ax) = plt.subplots(1, 2, figsize=(11, 3.8))
    for method in dict.fromkeys(str(r["method"]) for r in rows):
        mine = [r for r in rows if r["method"] == method]
        sizes = [float(r["size MiB"]) for r in mine]  # type: ignore[arg-type]  # rows are dicts of object
        mem_ax.plot(sizes, [r["peak MiB"] for r in mine], marker="o", label=method)
        speed_ax.plot(sizes, [r["MB/s"] for r in mine], marker="o", label=method)
    mem_ax.set(xscale="log", yscale="log", xlabel="file size (MiB)",
               ylabel="peak Python heap (MiB)", title="Memory grows with the file?")
    speed_ax.set(xscale="log", xlabel="file size (MiB)", ylabel="MB/s (encrypt + decrypt)",
                 title="Throughput")
    mem_ax.legend()
    fig.tight_layout()
    return fig


def plot_access_matrix(matrix: AccessMatrix) -> Figure:
    """Heatmap of an access review: a row per principal, a column per prefix x action.

    Allowed cells are blue and marked with a tick, denied cells (implicitly or explicitly)
    orange and marked with a cross, as decided by
    :func:`securepipe.access.credentials.access_matrix`: the Okabe-Ito colour-blind-safe pair,
    with the mark as a second cue that survives greyscale printing.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    allowed, denied = OKABE_ITO_BLUE, OKABE_ITO_VERMILLION
    columns = [(prefix, action) for prefix in matrix.prefixes for action in matrix.actions]
    grid = np.array(
        [[1.0 if matrix.decision(p, pre, a).allowed else 0.0 for pre, a in columns]
         for p in matrix.principals]
    ).reshape(len(matrix.principals), len(columns))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.42 * len(columns) + 3.0),
                                    max(2.5, 0.45 * len(matrix.principals) + 2.0)))
    ax.imshow(grid, cmap=ListedColormap([denied, allowed]), vmin=0, vmax=1, aspect="auto")
    for row, col in np.ndindex(grid.shape):
        ax.text(col, row, "\u2713" if grid[row, col] else "\u2717", ha="center", va="center",
                color="white", fontsize=8, fontweight="bold")
    ax.set_xticks(range(len(columns)), [f"{a} {pre}" for pre, a in columns], rotation=90,
                  fontsize=7)
    ax.set_yticks(range(len(matrix.principals)), list(matrix.principals), fontsize=8)
    # Thin white lines between prefixes, so each prefix's group of actions reads as a block.
    for i in range(1, len(matrix.prefixes)):
        ax.axvline(i * len(matrix.actions) - 0.5, color="white", linewidth=2)
    ax.legend(handles=[Patch(color=allowed, label="\u2713 allowed"),
                       Patch(color=denied, label="\u2717 denied")],
              loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    ax.set_title(f"Who may do what on which prefix of {matrix.bucket}", fontsize=9)
    fig.tight_layout()
    return fig


def plot_request_rates(
    columns: EventColumns,
    baseline: Baseline,
    alerts: Sequence[Alert] = (),
    *,
    principals: Sequence[str],
    window_s: int = 60,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> Figure:
    """GetObject requests per principal over a sliding window, against its learned threshold.

    One panel per principal: the number of requests in the window ``(t - window_s, t]`` at each
    of its events (the detector's ``requests`` metric for that window, computed the same way),
    the principal's threshold from ``baseline`` as a dashed line, and a red marker for each of
    its ``alerts`` (any rule), listed beside the panel. ``start_ms``/``end_ms`` limit the
    time shown (windows are still computed from all of ``columns``). Declarations, which raise a
    threshold for a time range, are not drawn.
    """
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    from securepipe.errors import InvalidParameterError

    rule = next((r for r in baseline.config.rules
                 if r.metric == "requests" and r.window_s == window_s), None)
    if rule is None:
        windows = sorted({r.window_s for r in baseline.config.rules if r.metric == "requests"})
        raise InvalidParameterError(f"no requests rule with a {window_s} s window; the "
                                    f"baseline has {windows}")
    if not principals:
        raise InvalidParameterError("name at least one principal to plot")
    lo = -np.inf if start_ms is None else start_ms
    hi = np.inf if end_ms is None else end_ms
    fig, axes = plt.subplots(len(principals), 1, figsize=(12, 2.7 * len(principals)),
                             sharex=True, squeeze=False)
    for ax, principal in zip(axes[:, 0], principals, strict=True):
        code = columns.principals.index(principal) if principal in columns.principals else -1
        t = np.sort(columns.time_ms[columns.principal == code])
        count = np.arange(t.shape[0]) - np.searchsorted(t, t - rule.window_ms, side="right") + 1
        shown = (t >= lo) & (t <= hi)
        # dots, not a line: between two reads the count falls, and a line would hide that
        ax.plot(t[shown].astype("datetime64[ms]"), count[shown], linestyle="none", marker=".",
                markersize=2.5, color=OKABE_ITO_BLUE,
                label=f"requests in the last {rule.label.rsplit('/', 1)[-1]}")
        threshold = baseline.threshold(principal, rule)
        ax.axhline(threshold, linestyle="--", color="#5f6368",
                   label=f"threshold {threshold:,.0f}")
        mine = [a for a in alerts if a.principal == principal
                and lo <= a.alert_time.timestamp() * 1000 <= hi]
        if mine:
            at = np.array([round(a.alert_time.timestamp() * 1000) for a in mine], np.int64)
            # the curve's value at each alert: the last event at or before the alert time
            i = np.clip(np.searchsorted(t, at, side="right") - 1, 0, max(t.shape[0] - 1, 0))
            y = count[i] if t.shape[0] else np.ones(at.shape[0])
            ax.scatter(at.astype("datetime64[ms]"), y, marker="v", s=60, color=OKABE_ITO_VERMILLION,
                       zorder=3, label=f"alerts ({len(mine)})")
            names = dict.fromkeys(f"{a.rule} {a.metric}/{a.window}" for a in mine)
            ax.text(1.01, 0.45, "alerts:\n" + "\n".join(names), transform=ax.transAxes,
                    va="top", fontsize=7, color=OKABE_ITO_VERMILLION)
        ax.set_yscale("log")
        ax.set_ylabel("requests")
        ax.set_title(principal.split(":", 5)[-1], fontsize=9)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7)
    bottom = axes[-1, 0]
    bottom.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))
    bottom.set_xlabel("time (UTC)")
    fig.suptitle(f"GetObject requests per principal, sliding {rule.label.rsplit('/', 1)[-1]} "
                 "window, against each one's learned threshold", fontsize=10)
    fig.tight_layout()
    return fig
