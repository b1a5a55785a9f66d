"""A picture composed pixel for pixel: images pasted at exact places on a white canvas, text and colour bars on top.

One `figimage` for the whole canvas and matplotlib's text for the words: no Axes, which cost ~40 ms each to draw.
"""

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from worker.pictures import kernels

WHITE = 255
TEXT_COLOUR = "0.1"
BAR_PX = 14


def coloured(values: np.ndarray, cmap: str, high: float) -> np.ndarray:
    """A 2-D array as uint8 RGB through colour map `cmap`, 0 at its low end and `high` at its top."""
    scaled = np.clip(np.asarray(values, dtype=np.float32) / (high or 1.0), 0, 1)
    return (colormaps[cmap](scaled)[..., :3] * 255 + 0.5).astype(np.uint8)


def blend(under: np.ndarray, over: np.ndarray, alpha: float) -> np.ndarray:
    """`over` laid on `under` (uint8 RGB of one size) with opacity `alpha`."""
    mixed = under.astype(np.float32) * (1 - alpha) + over.astype(np.float32) * alpha
    return (mixed + 0.5).astype(np.uint8)


def enlarge(pixels: np.ndarray, side: int) -> np.ndarray:
    """An (h, w, 3) image shown `side` px square, each source pixel a block (nearest neighbour)."""
    h, w = pixels.shape[:2]
    rows = np.arange(side) * h // side
    cols = np.arange(side) * w // side
    return pixels[rows][:, cols]


class Canvas:
    """A white `width`×`height` px picture, drawn from the top left."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = np.full((height, width, 3), WHITE, dtype=np.uint8)
        self.fig = Figure(figsize=(width / kernels.DPI, height / kernels.DPI), dpi=kernels.DPI)

    def image(self, left: int, top: int, pixels: np.ndarray, side: int) -> None:
        """Paste an (h, w, 3) uint8 image enlarged (or reduced) to `side` px square."""
        self.pixels[top : top + side, left : left + side] = enlarge(pixels, side)

    def box(self, left: int, top: int, width: int, height: int, colour: tuple[int, int, int]) -> None:
        """A filled rectangle."""
        self.pixels[top : top + height, left : left + width] = colour

    def outline(self, left: float, top: float, right: float, bottom: float, colour: tuple[int, int, int]) -> None:
        """A 2 px rectangle's outline, clipped to the canvas."""
        x0, y0 = max(0, round(left)), max(0, round(top))
        x1, y1 = min(self.width, round(right)), min(self.height, round(bottom))
        if x1 - x0 < 2 or y1 - y0 < 2:
            return
        for y in (y0, y1 - 2):
            self.pixels[y : y + 2, x0:x1] = colour
        for x in (x0, x1 - 2):
            self.pixels[y0:y1, x : x + 2] = colour

    def text(
        self, x: float, y: float, words: str, size: float = 10, ha: str = "left", va: str = "top", **style: Any
    ) -> None:
        """Words at (`x`, `y`) px from the top left; by default `y` is their top."""
        self.fig.text(
            x / self.width, 1 - y / self.height, words, fontsize=size, ha=ha, va=va, color=TEXT_COLOUR, **style
        )

    def colour_bar(self, left: int, top: int, height: int, cmap: str, high: float, label: str) -> None:
        """A vertical bar of `cmap` from 0 (bottom) to `high` (top), with three ticks and a label beside it."""
        ramp = np.linspace(high, 0, height, dtype=np.float32)[:, None].repeat(BAR_PX, axis=1)
        self.pixels[top : top + height, left : left + BAR_PX] = coloured(ramp, cmap, high)
        for fraction in (0.0, 0.5, 1.0):
            y = top + (1 - fraction) * (height - 1)
            self.box(left + BAR_PX, round(y), 4, 1, (40, 40, 40))
            self.text(left + BAR_PX + 6, y - 6, _tick(fraction * high), size=8)
        self.text(left + BAR_PX + 62, top + height / 2, label, size=8, rotation=90, va="center", ha="center")

    def save(self, path: Path) -> None:
        """Write the PNG (atomically)."""
        self.fig.figimage(self.pixels, xo=0, yo=0, origin="upper")
        kernels.save_png(self.fig, path)


def _tick(value: float) -> str:
    return f"{value:.2g}" if value else "0"
