"""Pictures of what the first layers learned: conv1's kernels and one conv2 filter, as grids in PNG files.

Only matplotlib's object API (`Figure`) is used, never `pyplot`: the worker is a long-lived process and pyplot
keeps every figure in a global registry until someone remembers to close it. `save_png` writes every picture of
`worker.pictures` but the GIFs.
"""

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from worker.atomic import atomic_write

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
# With the sizes below: ~800 px grids, 8 (conv1) to 14 (conv2) px per kernel pixel.
DPI = 100
CONV1_SIZE_IN = (8.0, 8.5)
# Taller by the colour bar under the grid, so the grid keeps the size it has in the other two stages.
CONV1_DIFF_SIZE_IN = (8.0, 9.3)
# Wider than tall: the colourbar takes ~1.3 in beside a square grid, and extra height would be blank.
CONV2_SIZE_IN = (8.6, 7.8)


def draw_conv1(weights: np.ndarray, stage: str, epoch: int, path: Path, layer_label: str = "conv1") -> None:
    """Draw the 64 RGB conv1 kernels (or their change, for stage "diff") as an 8×8 grid into `path`."""
    _check_stage(stage)
    diff = stage == "diff"
    image = conv1_mosaic(weights, diff=diff)
    title = f"{layer_label} — 64 kernels 11×11 RGB — {_stage_text(stage, epoch)}"
    if not diff:
        fig = _grid_figure(title, "each kernel scaled to its own range", CONV1_SIZE_IN)
        fig.axes[0].imshow(image, interpolation="nearest")
        save_png(fig, path)
        return
    peak = float(np.abs(np.asarray(weights, dtype=np.float64)).max())
    caption = f"one scale (below) for all kernels; R, G and B each show their own Δ on it; max |Δ| = {peak:.3g}"
    fig = _grid_figure(title, caption, CONV1_DIFF_SIZE_IN, with_bar=True)
    ax, bar_ax = fig.axes
    ax.imshow(image, interpolation="nearest")
    # The mosaic maps each channel's Δ to 0.5 + Δ / (2·max|Δ|); a linear grey ramp over ±max|Δ| is that same map.
    # A zero change still needs a non-empty scale; the mosaic draws it all mid-grey, and the labels say ±0.
    bound = peak if peak > 0 else 1.0
    scale = ScalarMappable(Normalize(-bound, bound), cmap="gray")
    bar = fig.colorbar(scale, cax=bar_ax, orientation="horizontal", label="Δ weight, per colour channel")
    bar.set_ticks([-bound, 0.0, bound], labels=[f"−{peak:.3g}", "0 (grey: no change)", f"+{peak:.3g}"])
    save_png(fig, path)


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
    save_png(fig, path)


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


def _grid_figure(title: str, caption: str, size_in: tuple[float, float], with_bar: bool = False) -> Figure:
    """A figure whose first axes holds the grid; with `with_bar`, its second is a slot for a scale under it."""
    fig = Figure(figsize=size_in, dpi=DPI, layout="constrained")
    if with_bar:
        # The bar spans the middle 60 % of the grid's width: long enough to read, short enough to look like a key.
        rows = fig.add_gridspec(2, 3, height_ratios=(30, 1), width_ratios=(1, 3, 1))
        ax = fig.add_subplot(rows[0, :])
        fig.add_subplot(rows[1, 1])
    else:
        ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_title(caption, fontsize=10, color="0.3")
    fig.suptitle(title, fontsize=13)
    return fig


def save_png(fig: Figure, path: Path) -> None:
    """Write `fig` as a PNG at `path`, whole or not at all (`worker.atomic`): the API may be serving the old one."""
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png")
