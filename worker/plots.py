"""Pictures of a job: learning curves and first-layer kernels, drawn from plain numbers into PNG files.

Only matplotlib's object API (`Figure`) is used, never `pyplot`: the worker is a long-lived process and pyplot
keeps every figure in a global registry until someone remembers to close it.
"""

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

STAGES = ("initial", "trained", "diff")
CONV1_SHAPE = (64, 3, 11, 11)
CONV2_SHAPE = (64, 5, 5)
# 64 kernels make an 8×8 square.
GRID = 8
# Mosaic pixels between tiles and around the edge; scaled up for display it is a 7–14 px line.
GAP = 1
# White parts the RGB tiles: it is neither the grey of "no change" nor common inside a kernel.
RGB_SEPARATOR = 1.0
# Light grey parts the conv2 tiles: it occurs in neither viridis nor RdBu_r (whose zero is near-white).
CMAP_SEPARATOR = "0.7"
# Beyond this many epochs the markers merge into a smear, so only the lines are drawn.
MAX_MARKED_EPOCHS = 60
# CIFAR-10 has 10 balanced classes, so guessing scores 10 %.
CHANCE_PERCENT = 10.0
# With the sizes below: 1000×400 px curves and ~800 px grids, 8 (conv1) to 14 (conv2) px per kernel pixel.
DPI = 100
CURVES_SIZE_IN = (10.0, 4.0)
CONV1_SIZE_IN = (8.0, 8.5)
# Wider than tall: the colourbar takes ~1.3 in beside a square grid, and extra height would be blank.
CONV2_SIZE_IN = (8.6, 7.8)


def draw_curves(epochs: Sequence[Mapping[str, float]], path: Path, title: str = "AlexNet on CIFAR-10") -> None:
    """Draw loss (train and test) and test accuracy per epoch side by side into the PNG at `path`."""
    fig = Figure(figsize=CURVES_SIZE_IN, dpi=DPI, layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    x = np.array([e["epoch"] for e in epochs], dtype=np.float64)
    train_loss, test_loss, accuracy = (
        _finite_or_nan(epochs, key) for key in ("train_loss", "test_loss", "test_accuracy")
    )
    style: dict[str, Any] = {"marker": "o", "markersize": 4} if len(x) <= MAX_MARKED_EPOCHS else {}

    loss_ax.plot(x, train_loss, label="train loss", **style)
    loss_ax.plot(x, test_loss, label="test loss", **style)
    loss_ax.set(title="Loss", xlabel="epoch", ylabel="loss (NLL)")
    last = f" (last {100 * accuracy[-1]:.1f} %)" if len(x) and np.isfinite(accuracy[-1]) else ""
    # clip_on=False: points at exactly 0 or 100 % would otherwise be cut in half by the frame
    acc_ax.plot(x, 100 * accuracy, color="C2", label=f"test accuracy{last}", clip_on=False, **style)
    acc_ax.axhline(CHANCE_PERCENT, linestyle="--", color="0.45", label=f"chance ({CHANCE_PERCENT:.0f} %)")
    acc_ax.set(title="Test accuracy", xlabel="epoch", ylabel="accuracy (%)", ylim=(0, 100))

    for ax in (loss_ax, acc_ax):
        # min_n_ticks=1: with one epoch shown, the default would fall back to ticks at 0.8, 0.9, ...
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.grid(alpha=0.3)
        ax.legend()
        if len(x):
            # Half an epoch of margin keeps a lone first point off the frame.
            ax.set_xlim(x.min() - 0.5, x.max() + 0.5)
        else:
            ax.set_xlim(0.5, 1.5)
            ax.text(0.5, 0.5, "no epoch finished yet", transform=ax.transAxes, ha="center", color="0.4")
    if not len(x):
        loss_ax.set_yticks([])  # an empty loss axis has no scale worth reading
    fig.suptitle(f"{title} — {len(x)} epoch{'' if len(x) == 1 else 's'}", fontsize=13)
    _save(fig, path)


def draw_conv1(weights: np.ndarray, stage: str, epoch: int, path: Path, layer_label: str = "conv1") -> None:
    """Draw the 64 RGB conv1 kernels (or their change, for stage "diff") as an 8×8 grid into `path`."""
    _check_stage(stage)
    diff = stage == "diff"
    image = conv1_mosaic(weights, diff=diff)
    if diff:
        peak = float(np.abs(np.asarray(weights, dtype=np.float64)).max())
        caption = f"one scale for all kernels: grey = no change, brighter = weight grew; max |Δ| = {peak:.3g}"
    else:
        caption = "each kernel scaled to its own range"
    title = f"{layer_label} — 64 kernels 11×11 RGB — {_stage_text(stage, epoch)}"
    fig = _grid_figure(title, caption, CONV1_SIZE_IN)
    fig.axes[0].imshow(image, interpolation="nearest")
    _save(fig, path)


def draw_conv2(weights: np.ndarray, stage: str, epoch: int, filter_index: int, path: Path) -> None:
    """Draw the 64 input slices of one conv2 filter (or their change) as an 8×8 grid into `path`."""
    _check_stage(stage)
    image = conv2_mosaic(weights)
    title = f"conv2 filter {filter_index} — 64 input slices 5×5 — {_stage_text(stage, epoch)}"
    if stage == "diff":
        peak = float(np.nanmax(np.abs(image)))
        # A zero change still needs a non-empty scale; any positive bound draws it all white.
        bound = peak if peak > 0 else 1.0
        cmap, vmin, vmax, label = "RdBu_r", -bound, bound, "Δ weight"
        caption = f"one symmetric scale for all slices: white = no change; max |Δ| = {peak:.3g}"
    else:
        low, high = float(np.nanmin(image)), float(np.nanmax(image))
        # A constant filter still needs a non-empty scale; a tiny one draws it in a single colour.
        cmap, vmin, vmax, label = "viridis", low, max(high, low + 1e-12), "weight"
        caption = "one colour scale shared by all 64 slices"
    fig = _grid_figure(title, caption, CONV2_SIZE_IN)
    ax = fig.axes[0]
    colours = matplotlib.colormaps[cmap].with_extremes(bad=CMAP_SEPARATOR)
    shown = ax.imshow(image, interpolation="nearest", cmap=colours, vmin=vmin, vmax=vmax)
    fig.colorbar(shown, ax=ax, shrink=0.8, label=label)
    _save(fig, path)


def conv1_mosaic(weights: np.ndarray, diff: bool) -> np.ndarray:
    """The conv1 kernels as one (97, 97, 3) RGB image in [0, 1], with white lines between kernels."""
    w = _checked(weights, CONV1_SHAPE, "conv1 weights").transpose(0, 2, 3, 1)  # channels last, as imshow wants
    if diff:
        peak = float(np.abs(w).max())
        tiles = 0.5 + w / (2 * peak) if peak > 0 else np.full_like(w, 0.5)
    else:
        low = w.min(axis=(1, 2, 3), keepdims=True)
        span = w.max(axis=(1, 2, 3), keepdims=True) - low
        # A constant kernel has no range to stretch; it is drawn mid-grey.
        tiles = np.where(span > 0, (w - low) / np.where(span > 0, span, 1.0), 0.5)
    return _mosaic(tiles, RGB_SEPARATOR)


def conv2_mosaic(weights: np.ndarray) -> np.ndarray:
    """The 64 input slices of one conv2 filter as one (49, 49) image of raw weights, NaN between slices."""
    return _mosaic(_checked(weights, CONV2_SHAPE, "conv2 filter weights"), np.nan)


def tile_origin(index: int, size: int) -> tuple[int, int]:
    """Row and column of the top-left pixel of tile `index` (row-major) in a mosaic of `size`×`size` tiles."""
    row, col = divmod(index, GRID)
    return GAP + row * (size + GAP), GAP + col * (size + GAP)


def _mosaic(tiles: np.ndarray, fill: float) -> np.ndarray:
    size = tiles.shape[1]
    side = GRID * size + (GRID + 1) * GAP
    out = np.full((side, side, *tiles.shape[3:]), fill, dtype=np.float64)
    for index, tile in enumerate(tiles):
        row, col = tile_origin(index, size)
        out[row : row + size, col : col + size] = tile
    return out


def _checked(weights: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    array = np.asarray(weights, dtype=np.float64)
    if array.shape != shape:
        raise ValueError(f"{what} must have shape {shape}, got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{what} contain NaN or infinity; there is nothing meaningful to draw")
    return array


def _check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {', '.join(STAGES)}; got {stage!r}")


def _stage_text(stage: str, epoch: int) -> str:
    if stage == "diff":
        return f"change (trained − initial), epoch {epoch}"
    return f"{stage} (before training)" if epoch == 0 else f"{stage} (epoch {epoch})"


def _finite_or_nan(epochs: Sequence[Mapping[str, float]], key: str) -> np.ndarray:
    values = np.array([e[key] for e in epochs], dtype=np.float64)
    # A diverged run reports inf; a gap in the line says so better than an axis stretched to infinity.
    return np.where(np.isfinite(values), values, np.nan)


def _grid_figure(title: str, caption: str, size_in: tuple[float, float]) -> Figure:
    fig = Figure(figsize=size_in, dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_title(caption, fontsize=10, color="0.3")
    fig.suptitle(title, fontsize=13)
    return fig


def _save(fig: Figure, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
