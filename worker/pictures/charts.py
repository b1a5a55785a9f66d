"""Charts of a run's epochs: the learning curves, and how far each layer's weights moved.

Pure functions from epoch records (`service.contracts.EpochRecord`) to a PNG file, drawn with matplotlib's object
API like the kernel grids in `worker.pictures.kernels` (whose `save_png` writes them).
"""

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from service.contracts import EpochRecord
from worker.measures import LAYER_NAMES
from worker.pictures import kernels

# Beyond this many epochs the markers merge into a smear, so only the lines are drawn.
MAX_MARKED_EPOCHS = 60
# CIFAR-10 has 10 balanced classes, so guessing scores 10 % and a uniform guess has loss ln 10.
CHANCE_PERCENT = 10.0
CHANCE_LOSS = math.log(10)
# 1000×400 px curves; the weight-change chart leaves room for a two-row legend under its panels.
CURVES_SIZE_IN = (10.0, 4.0)
WEIGHT_CHANGE_SIZE_IN = (12.0, 5.2)


def plain(text: str) -> str:
    """User text (a job's name) as matplotlib should draw it: as itself, on one line.

    Matplotlib reads `$…$` as mathtext, so a name like `$\\foo$` would be drawn as a formula or fail to draw at all;
    an escaped dollar is drawn as a dollar. Line breaks and tabs become spaces: a title or a legend entry is one line.
    """
    return " ".join(text.split()).replace("$", r"\$")


def draw_curves(
    epochs: Sequence[EpochRecord],
    path: Path,
    title: str = "AlexNet on CIFAR-10",
    steps: Sequence[tuple[float, float]] | None = None,
    epochs_total: int | None = None,
) -> None:
    """Draw loss (per epoch, and per step if given) and test accuracy side by side into the PNG at `path`.

    `steps` holds (position in epochs, loss) pairs: a step's position is global_step / steps_per_epoch.
    """
    fig = Figure(figsize=CURVES_SIZE_IN, dpi=kernels.DPI, layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    x = np.array([e.epoch for e in epochs], dtype=np.float64)
    train_loss, test_loss, accuracy = (
        _finite_or_nan([getattr(e, key) for e in epochs]) for key in ("train_loss", "test_loss", "test_accuracy")
    )
    step_x = np.array([s[0] for s in steps or ()], dtype=np.float64)
    step_loss = _finite_or_nan([s[1] for s in steps or ()])
    style: dict[str, Any] = {"marker": "o", "markersize": 4} if len(x) <= MAX_MARKED_EPOCHS else {}

    loss_ax.plot(x, train_loss, color="C0", label="train loss (epoch mean)", **style)
    loss_ax.plot(x, test_loss, color="C1", label="test loss", **style)
    if steps is not None:
        # Under the epoch points and lighter: hundreds of noisy steps must not drown the two curves.
        loss_ax.plot(step_x, step_loss, color="C0", alpha=0.35, linewidth=0.8, zorder=1, label="train loss per step")
    loss_ax.axhline(CHANCE_LOSS, linestyle="--", color="0.45", label="chance (ln 10)")
    # From 0, so that a flat run reads flat: a 2.2985–2.3020 axis makes a 0.1 % change look like a plunge.
    highest = np.nanmax([CHANCE_LOSS, *train_loss, *test_loss, *step_loss])
    loss_ax.set(title="Loss", xlabel="epoch", ylabel="loss (NLL, nats)", ylim=(0, 1.08 * highest))
    last = f" (last {100 * accuracy[-1]:.1f} %)" if len(x) and np.isfinite(accuracy[-1]) else ""
    # Unclipped, points at exactly 0 or 100 % are not cut in half by the frame; but a line with no point to draw
    # reports a box at the figure's corner, and the layout would squeeze both panels to make room for it.
    unclipped = bool(np.isfinite(accuracy).any())
    acc_ax.plot(x, 100 * accuracy, color="C2", label=f"test accuracy{last}", clip_on=not unclipped, **style)
    acc_ax.axhline(CHANCE_PERCENT, linestyle="--", color="0.45", label=f"chance ({CHANCE_PERCENT:.0f} %)")
    acc_ax.set(title="Test accuracy", xlabel="epoch", ylabel="accuracy (%)", ylim=(0, 100))

    # Half an epoch of margin keeps a lone first point off the frame; steps start right after 0.
    low = min(x.min() - 0.5 if len(x) else 0.5, 0.0 if len(step_x) else math.inf)
    high = max(x.max() + 0.5 if len(x) else 1.5, step_x.max() if len(step_x) else -math.inf)
    for ax in (loss_ax, acc_ax):
        # min_n_ticks=1: with one epoch shown, the default would fall back to ticks at 0.8, 0.9, ...
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.set_xlim(low, high)
        ax.grid(alpha=0.3)
        if not len(x):
            ax.text(0.5, 0.5, "no epoch finished yet", transform=ax.transAxes, ha="center", color="0.4")
    # Wherever the lines leave room: where that is depends on how fast the loss falls (0.4 s for 100k steps).
    for ax in (loss_ax, acc_ax):
        ax.legend(loc="best", fontsize=9)
    if not len(x) and not len(step_x):
        loss_ax.set_yticks([])  # an empty loss axis has no scale worth reading
    done = int(x.max()) if len(x) else 0
    if epochs_total is not None and done < epochs_total:
        progress = f"epoch {done} of {epochs_total}"
    else:
        progress = f"{len(x)} epoch{'' if len(x) == 1 else 's'}"
    fig.suptitle(f"{plain(title)} — {progress}", fontsize=13)
    kernels.save_png(fig, path)


def draw_weight_change(epochs: Sequence[EpochRecord], path: Path, title: str = "") -> None:
    """Draw each layer's relative weight change, from initialisation and from the previous epoch, into `path`
    (the layers of the first epoch's `weight_change`)."""
    fig = Figure(figsize=WEIGHT_CHANGE_SIZE_IN, dpi=kernels.DPI, layout="constrained")
    axes = fig.subplots(1, 2, sharex=True)
    x = np.array([e.epoch for e in epochs], dtype=np.float64)
    layers = list(epochs[0].weight_change) if epochs else []
    panels = (
        ("from_initial", "from initialisation: $\\|W_t - W_0\\| \\,/\\, \\|W_0\\|$"),
        ("from_previous", "from the previous epoch: $\\|W_t - W_{t-1}\\| \\,/\\, \\|W_{t-1}\\|$"),
    )
    style: dict[str, Any] = {"marker": "o", "markersize": 3} if len(x) <= MAX_MARKED_EPOCHS else {}
    for ax, (key, panel_title) in zip(axes, panels, strict=True):
        for index, layer in enumerate(layers):
            values = _finite_or_nan([_change(e, layer, key) for e in epochs])
            # A log axis cannot show 0 (a frozen layer); a gap says "no change" better than a line to -inf.
            values[values <= 0] = np.nan
            name = LAYER_NAMES.get(layer)
            # Convolutions solid, fully connected dashed: eight colours alone are hard to tell apart.
            dashes = "--" if layer.startswith("classifier") else "-"
            label = f"{name} ({layer})" if name else layer
            ax.plot(x, values, linestyle=dashes, color=f"C{index % 10}", label=label, **style)
        ax.set(title=panel_title, xlabel="epoch", ylabel="relative change (log scale)")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.set_xlim(*(x.min() - 0.5, x.max() + 0.5) if len(x) else (0.5, 1.5))
        ax.grid(alpha=0.3)
        ax.grid(alpha=0.1, which="minor")
        if not len(x):
            ax.text(0.5, 0.5, "no epoch finished yet", transform=ax.transAxes, ha="center", color="0.4")
            # An empty log axis still shows 1 to 10, a scale of nothing.
            ax.set_yticks([])
            ax.set_yticks([], minor=True)
    if layers:
        # Below both panels, in rows of four: beside them it would squeeze the panels and crowd the title.
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=4, fontsize=9)
    what = "relative weight change per layer"
    fig.suptitle(f"{plain(title)} — {what}" if title else what.capitalize(), fontsize=13)
    kernels.save_png(fig, path)


def _change(epoch: EpochRecord, layer: str, kind: str) -> float:
    change = epoch.weight_change.get(layer)
    return math.nan if change is None else float(getattr(change, kind))  # an epoch that did not measure it: a gap


def _finite_or_nan(values: Sequence[float]) -> np.ndarray:
    array = np.array(values, dtype=np.float64)
    # A diverged run reports inf; a gap in the line says so better than an axis stretched to infinity.
    return np.where(np.isfinite(array), array, np.nan)
