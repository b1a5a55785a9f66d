"""How conv1's kernels or one conv2 filter changed during training, as an animated GIF with one frame per epoch.

The grids are the mosaics of `worker.pictures.kernels`, so a frame looks like the still picture of the same epoch.
Frames are composed with Pillow rather than matplotlib: a matplotlib figure per frame costs ~0.1 s, and a 50-epoch job
would spend seconds on it. Drawn this way, 51 frames of conv1 (a 50-epoch job) take ~0.5 s on a 2-core CPU, "trained"
or "diff" alike, and make a ~5 MB file.
"""

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import NamedTuple

import matplotlib
import numpy as np
from matplotlib.colors import to_rgb
from PIL import Image, ImageDraw, ImageFont

from worker.atomic import atomic_write
from worker.pictures import kernels

LAYERS = ("conv1", "conv2")
STAGES = ("trained", "diff")
SHAPES = {"conv1": kernels.CONV1_SHAPE, "conv2": kernels.CONV2_SHAPE}
# Each kernel pixel becomes a square of this many screen pixels (8 and 14 px in the stills): ~585 px grids, large
# enough to see a kernel's structure. A frame's size grows with its height (GIF compresses along rows only): at 7 px
# a 51-frame conv1 GIF takes 6.2 MB, at 6 px 5.1 MB, at 5 px 4.1 MB but with kernels too small to read at a glance.
SCALE = {"conv1": 6, "conv2": 12}
MARGIN = 12
# Long enough to see a frame, short enough that 50 epochs play in 20 s; the last frame stays so the result registers.
FRAME_MS = 400
LAST_FRAME_MS = 2500
# DejaVu Sans ships with matplotlib, so the frames use the stills' font, with the Δ, ± and × that Pillow's own lacks.
FONT_FILE = Path(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf")
HEADLINE_PX, NOTE_PX = 20, 15
# A long run title is set smaller rather than cut; below this it would be unreadable, so it is cut after all.
SMALLEST_PX = 10
LINE_SPACING = 1.3
# The text over the grid: the run's title, two lines of headline and a note. Its height is the same with or without
# a title, so the grid lies in the same place in every GIF (see `grid_box`).
HEADER_PX = MARGIN + 2 * round(NOTE_PX * LINE_SPACING) + 2 * round(HEADLINE_PX * LINE_SPACING)
INK, NOTE_INK, PAPER = (0, 0, 0), (77, 77, 77), (255, 255, 255)
# The scale bar under a grid: as tall as a line of text, 60 % of the grid's width (long enough to read, short
# enough to look like a key), with a thin frame so its white middle does not vanish into the page. Its colours
# come in steps, each with its own palette entry: an odd number, so that "no change" is a step of its own.
BAR_HEIGHT = 16
BAR_WIDTH_SHARE = 0.6
BAR_STEPS = 33
# Palette entries kept for the text: black, white and seven greys between for the edges of the letters, which
# would otherwise take the nearest kernel colour and come out tinted.
TEXT_GREYS = [(v, v, v) for v in np.linspace(0, 255, 9).round().astype(int)] + [NOTE_INK]
SEPARATOR_RGB = tuple(round(255 * c) for c in to_rgb(kernels.CMAP_SEPARATOR))


class Bar(NamedTuple):
    """A colour scale under the grid: the colour map, and the labels at its left end, middle and right end."""

    cmap: str
    labels: tuple[str, str, str]


def frame_caption(layer: str, stage: str, epoch: int, epochs: int, filter_index: int = 0) -> str:
    """The two-line headline of one frame, e.g. "conv1 — change since initialisation" over "epoch 3 of 12"."""
    _check(layer, stage)
    what = "conv1 — 64 kernels 11×11 RGB" if layer == "conv1" else f"conv2 filter {filter_index} — 64 slices 5×5"
    shown = "change since initialisation" if stage == "diff" else "weights"
    when = f"epoch {epoch} of {epochs}" + (" (before training)" if epoch == 0 else "")
    return f"{what} — {shown}\n{when}"


def grid_box(layer: str) -> tuple[int, int, int, int]:
    """Where the grid lies in every frame of a layer's GIF, in screen pixels: (left, top, right, bottom)."""
    _check(layer, STAGES[0])
    kernel = SHAPES[layer][-1]
    side = (kernels.GRID * kernel + (kernels.GRID + 1) * kernels.GAP) * SCALE[layer]
    return MARGIN, HEADER_PX, MARGIN + side, HEADER_PX + side


def draw_evolution(
    layer: str, stage: str, history: Sequence[np.ndarray], path: Path, filter_index: int = 0, title: str = ""
) -> None:
    """Draw one frame per epoch of a layer's weights (or their change since epoch 0) into the GIF at `path`.

    `history[k]` holds the weights after epoch k, `history[0]` the initial ones: (64, 3, 11, 11) for conv1, the
    (64, 5, 5) input slices of filter `filter_index` for conv2.
    """
    _check(layer, stage)
    weights = _checked_history(layer, history)
    if stage == "diff":
        weights = weights - weights[0]
    # Diff frames share one scale, ±max|Δ| over every epoch, so a weight that keeps changing deepens frame by frame.
    peak = float(np.abs(weights).max())
    frame = _conv1_frame if layer == "conv1" else _conv2_frame
    frames = []
    for epoch, w in enumerate(weights):
        grid, note, bar = frame(w, stage, peak)
        pixels = Image.fromarray(np.rint(grid * 255).astype(np.uint8), "RGB")
        headline = frame_caption(layer, stage, epoch, len(weights) - 1, filter_index)
        drawn = _compose(pixels, grid_box(layer), title, headline, note, bar)
        frames.append(_paletted(drawn, pixels, bar))
    _save_gif(frames, Path(path))


def _conv1_frame(w: np.ndarray, stage: str, peak: float) -> tuple[np.ndarray, str, Bar | None]:
    if stage == "trained":
        return kernels.conv1_mosaic(w, diff=False), "each kernel scaled to its own range", None
    # conv1_mosaic scales a change by its own largest |Δ|; stretched back to the shared one, keeping the white
    # separators where they are.
    own = float(np.abs(w).max())
    grid = kernels.conv1_mosaic(w, diff=True)
    grid = np.where(_conv1_separators(), grid, 0.5 + (grid - 0.5) * (own / peak if peak > 0 else 0.0))
    labels = (f"−{peak:.3g}", "0 (grey: no change)", f"+{peak:.3g}")
    return grid, "one grey scale for all epochs; R, G and B each show their own Δ on it", Bar("gray", labels)


@cache
def _conv1_separators() -> np.ndarray:
    return kernels.conv1_mosaic(np.zeros(kernels.CONV1_SHAPE), diff=False) == kernels.RGB_SEPARATOR


def _conv2_frame(w: np.ndarray, stage: str, peak: float) -> tuple[np.ndarray, str, Bar]:
    grid = kernels.conv2_mosaic(w)
    if stage == "diff":
        # A zero change still needs a non-empty scale; any positive bound draws it all white.
        low = -(peak if peak > 0 else 1.0)
        high = -low
        cmap, note = "RdBu_r", "one symmetric scale for all epochs: white = no change"
        labels = (f"−{peak:.3g}", "0 (white: no change)", f"+{peak:.3g}")
    else:
        low, high = float(np.nanmin(grid)), float(np.nanmax(grid))
        # A constant filter still needs a non-empty scale; a tiny one draws it in a single colour.
        high = max(high, low + 1e-12)
        cmap, note = "viridis", "one colour scale for all 64 slices, set per epoch"
        labels = (_number(low), "weight", _number(high))
    colours = matplotlib.colormaps[cmap].with_extremes(bad=kernels.CMAP_SEPARATOR)
    return colours(np.ma.masked_invalid((grid - low) / (high - low)))[..., :3], note, Bar(cmap, labels)


def _compose(
    pixels: Image.Image, box: tuple[int, int, int, int], title: str, headline: str, note: str, bar: Bar | None
) -> Image.Image:
    """One frame: the run's title, the headline and a note over the grid, and the scale bar (if any) under it."""
    left, top, right, bottom = box
    width = right + MARGIN
    below = MARGIN + (BAR_HEIGHT + round(NOTE_PX * LINE_SPACING) + MARGIN if bar else 0)
    canvas = Image.new("RGB", (width, bottom + below), PAPER)
    draw = ImageDraw.Draw(canvas)
    # A job's name may hold line breaks; Pillow cannot centre several lines on one anchor, and a title is one line.
    lines = [(" ".join(title.split()), NOTE_PX, NOTE_INK)] if title else []
    lines += [(text, HEADLINE_PX, INK) for text in headline.split("\n")] + [(note, NOTE_PX, NOTE_INK)]
    # Without a title the lines move down, so the headline stays next to the grid.
    y = top - sum(round(px * LINE_SPACING) for _, px, _ in lines)
    for text, px, ink in lines:
        font, text = _fitting(text, px, right - left)
        draw.text((width // 2, y), text, font=font, fill=ink, anchor="ma")
        y += round(px * LINE_SPACING)
    # Nearest neighbour: each kernel pixel a sharp square, no blur between neighbours.
    canvas.paste(pixels.resize((right - left, bottom - top), Image.Resampling.NEAREST), (left, top))
    if bar:
        _draw_bar(canvas, draw, bar, bottom + MARGIN)
    return canvas


def _draw_bar(canvas: Image.Image, draw: ImageDraw.ImageDraw, bar: Bar, y: int) -> None:
    length = round((canvas.width - 2 * MARGIN) * BAR_WIDTH_SHARE)
    left = (canvas.width - length) // 2
    steps = _bar_colours(bar)
    ramp = np.repeat(steps, np.diff(np.linspace(0, length, len(steps) + 1).round().astype(int)), axis=0)
    canvas.paste(Image.fromarray(np.ascontiguousarray(np.broadcast_to(ramp, (BAR_HEIGHT, *ramp.shape)))), (left, y))
    draw.rectangle((left - 1, y - 1, left + length, y + BAR_HEIGHT), outline=NOTE_INK)
    font = _font(NOTE_PX)
    below = y + BAR_HEIGHT + 3
    draw.text((left, below), bar.labels[0], font=font, fill=INK, anchor="ma")
    draw.text((left + length // 2, below), bar.labels[1], font=font, fill=INK, anchor="ma")
    draw.text((left + length, below), bar.labels[2], font=font, fill=INK, anchor="ma")


def _bar_colours(bar: Bar) -> np.ndarray:
    return np.rint(matplotlib.colormaps[bar.cmap](np.linspace(0.0, 1.0, BAR_STEPS))[:, :3] * 255).astype(np.uint8)


def _paletted(frame: Image.Image, pixels: Image.Image, bar: Bar | None) -> Image.Image:
    """The frame in its own 256-colour palette: the text's greys, the bar's steps and the rest cut from the grid.

    Each frame has its own palette, since conv1's RGB kernels change colour from epoch to epoch and one palette for
    all frames would starve them. Cut from the 97×97 mosaic rather than the whole frame, it takes 0.3 ms.
    """
    reserved = [*TEXT_GREYS, SEPARATOR_RGB, *(map(tuple, _bar_colours(bar)) if bar else ())]
    free = 256 - len(reserved)
    # Fast octree: on random and on smooth kernels its worst colour error is ~2/3 of median cut's, 30× faster.
    cut = pixels.quantize(free, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).getpalette() or []
    palette = Image.new("P", (1, 1))
    palette.putpalette([*cut[: 3 * free], *(int(c) for colour in reserved for c in colour)])
    # No dithering: it would speckle the flat kernel pixels.
    return frame.quantize(palette=palette, dither=Image.Dither.NONE)


def _fitting(text: str, px: int, width: int) -> tuple[ImageFont.FreeTypeFont, str]:
    """The largest font up to `px` in which `text` fits `width`; cut short if even the smallest is too wide."""
    for size in range(px, SMALLEST_PX - 1, -1):
        if _font(size).getlength(text) <= width:
            return _font(size), text
    font = _font(SMALLEST_PX)
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return font, text + "…"


@cache
def _font(px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_FILE), px)


def _number(value: float) -> str:
    return f"{value:.3g}".replace("-", "−")


def _save_gif(frames: list[Image.Image], path: Path) -> None:
    """Write the frames as a looping GIF, whole or not at all (`worker.atomic`)."""
    durations = [FRAME_MS] * (len(frames) - 1) + [LAST_FRAME_MS]
    with atomic_write(path) as tmp:
        frames[0].save(
            tmp, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0, optimize=False
        )


def _check(layer: str, stage: str) -> None:
    if layer not in LAYERS:
        raise ValueError(f"layer must be one of {', '.join(LAYERS)}; got {layer!r}")
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {', '.join(STAGES)}; got {stage!r}")


def _checked_history(layer: str, history: Sequence[np.ndarray]) -> np.ndarray:
    """The history as one (epochs + 1, *shape) array, after checking every epoch's shape and values."""
    if len(history) == 0:
        raise ValueError("a history needs at least the initial weights; there is nothing to draw")
    shape = SHAPES[layer]
    arrays = [np.asarray(w, dtype=np.float64) for w in history]
    for epoch, array in enumerate(arrays):
        if array.shape != shape:
            raise ValueError(f"{layer} weights of epoch {epoch} must have shape {shape}, got {array.shape}")
        if not np.isfinite(array).all():
            raise ValueError(f"{layer} weights of epoch {epoch} contain NaN or infinity; there is nothing to draw")
    return np.stack(arrays)
