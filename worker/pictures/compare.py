"""The comparison chart: one metric over the epochs, a line per job, each labelled by what sets it apart.

A pure function from the series of a `service.contracts.CompareDraw` to a PNG, drawn with matplotlib's object API
like `worker.pictures.charts`.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from service.contracts import CompareMetric, CompareSeries
from worker.pictures import kernels
from worker.pictures.charts import CHANCE_LOSS, CHANCE_PERCENT, MAX_MARKED_EPOCHS, plain

# What each metric is called on the chart, its axis, and how its values are shown (accuracy as a percentage).
METRICS = {
    "test_accuracy": ("Test accuracy", "accuracy (%)", 100.0),
    "test_loss": ("Test loss", "loss (NLL, nats)", 1.0),
    "train_loss": ("Training loss (epoch mean)", "loss (NLL, nats)", 1.0),
}
# Twenty lines stay apart: ten colours, solid for the first ten jobs and dashed for the next ten, and a marker
# shape per job as well (the shapes repeat only after twenty).
COLOURS = 10
STYLES = ("-", "--")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
# 1,100×560 px: the legend beside the plot keeps the plot ~700 px wide; 20 entries at 9 pt fill ~430 px of height.
SIZE_IN = (11.0, 5.6)
LEGEND_PT = 9
SUBTITLE_PT = 10
# Past this, a legend label is cut with "…", so that one long label cannot squeeze the plot.
MAX_LABEL_CHARS = 44


def draw_compare(
    series: Sequence[CompareSeries], metric: CompareMetric, path: Path, shared: str = "", title: str = ""
) -> None:
    """Draw `metric` per epoch for each of `series`, a line each, into the PNG `path`."""
    name, unit_label, scale = METRICS[metric]
    fig = Figure(figsize=SIZE_IN, dpi=kernels.DPI, layout="constrained")
    ax = fig.add_subplot()
    longest = max((len(s.epochs) for s in series), default=0)
    highest = 0.0
    for index, line in enumerate(series):
        x = np.asarray(line.epochs, dtype=np.float64)
        values = np.asarray(line.values, dtype=np.float64) * scale
        # A diverged run reports inf; a gap says so better than an axis stretched to infinity.
        values = np.where(np.isfinite(values), values, np.nan)
        if np.isfinite(values).any():
            highest = max(highest, float(np.nanmax(values)))
        text = _short(plain(line.label))
        if not len(x):
            text += " — no epoch yet"
        elif line.status != "succeeded":
            text += f" — {line.status}"
        marker: dict[str, Any] = (
            {"marker": MARKERS[index % len(MARKERS)], "markersize": 5} if longest <= MAX_MARKED_EPOCHS else {}
        )
        ax.plot(
            x,
            values,
            color=f"C{index % COLOURS}",
            linestyle=STYLES[index // COLOURS % len(STYLES)],
            linewidth=1.6,
            label=text,
            **marker,
        )
    if metric == "test_accuracy":
        ax.axhline(CHANCE_PERCENT, linestyle=":", color="0.45", label=f"chance ({CHANCE_PERCENT:.0f} %)")
        ax.set_ylim(0, 100)
    else:
        ax.axhline(CHANCE_LOSS, linestyle=":", color="0.45", label="chance (ln 10)")
        # From 0, so that a flat run reads flat (as on each job's own curves).
        ax.set_ylim(0, 1.08 * max(highest, CHANCE_LOSS))
    ax.set(xlabel="epoch", ylabel=unit_label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    # Half an epoch of margin keeps a lone first point off the frame.
    ax.set_xlim(0.5, max(longest, 1) + 0.5)
    ax.grid(alpha=0.3)
    if not longest:
        ax.text(0.5, 0.5, "no epoch finished yet", transform=ax.transAxes, ha="center", color="0.4")
    # Beside the plot, not on it: twenty entries would cover the lines.
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=LEGEND_PT)
    jobs = f"{len(series)} job{'' if len(series) == 1 else 's'}"
    # Both titles centred over the plot (not the figure, which includes the legend); the second line says what every
    # job shares, so that the legend needs to say only what differs.
    ax.set_title(f"{plain(title)} — {name}, {jobs}" if title else f"{name}, {jobs}", fontsize=13, pad=SUBTITLE_PT + 10)
    if shared:
        ax.annotate(
            f"all: {plain(shared)}",
            xy=(0.5, 1.0),
            xycoords="axes fraction",
            xytext=(0, 5),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=SUBTITLE_PT,
            color="0.3",
        )
    kernels.save_png(fig, path)


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL_CHARS else label[: MAX_LABEL_CHARS - 1] + "…"
