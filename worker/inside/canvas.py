"""A picture composed pixel for pixel: images pasted at exact places on a white canvas, text and colour bars on top.

Drawn with Pillow and matplotlib's own DejaVu Sans (the font of every other picture of the service): no Figure and
no Axes. An activations picture of 80 small Axes took 3 s to draw, on a matplotlib canvas 0.4 s, here 0.05 s.
"""

import functools
import os
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.font_manager import FontProperties, findfont
from PIL import Image, ImageDraw, ImageFont

WHITE = (255, 255, 255)
TEXT_COLOUR = (26, 26, 26)
BAR_PX = 14
# Sizes are given in points, as matplotlib's are, for a 100 dpi picture: the service's other pictures' scale.
PX_PER_POINT = 100 / 72
LINE_SPACING = 1.25
MIN_POINTS = 8


@functools.lru_cache(maxsize=64)
def _font(size: float, bold: bool) -> ImageFont.FreeTypeFont:
    path = findfont(FontProperties(family="DejaVu Sans", weight="bold" if bold else "normal"))
    return ImageFont.truetype(path, round(size * PX_PER_POINT))


@functools.lru_cache(maxsize=8)
def _table(cmap: str) -> np.ndarray:
    """`cmap`'s 256 colours as uint8 RGB: a lookup is 10× faster than asking matplotlib for each pixel's."""
    return (colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255 + 0.5).astype(np.uint8)


def coloured(values: np.ndarray, cmap: str, high: float) -> np.ndarray:
    """A 2-D array as uint8 RGB through colour map `cmap`, 0 at its low end and `high` at its top."""
    scaled = np.clip(np.asarray(values, dtype=np.float32) / (high or 1.0), 0, 1)
    return _table(cmap)[(scaled * 255 + 0.5).astype(np.intp)]


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
        self.pixels = np.full((height, width, 3), 255, dtype=np.uint8)
        self.words: list[tuple[float, float, str, float, str, str, bool, bool]] = []

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
        self,
        x: float,
        y: float,
        words: str,
        size: float = 10,
        ha: str = "left",
        va: str = "top",
        bold: bool = False,
        vertical: bool = False,
        fit: float | None = None,
    ) -> None:
        """Words at (`x`, `y`) px from the top left, `size` in points; by default `y` is their top. `vertical` turns
        them a quarter left (reading upwards), centred on (`x`, `y`). With `fit`, a line wider than `fit` px is set
        smaller until it fits (a long job name in a title), down to 8 pt."""
        if fit is not None:
            while size > MIN_POINTS and max(_font(size, bold).getlength(line) for line in words.split("\n")) > fit:
                size -= 0.5
        self.words.append((x, y, words, size, ha, va, bold, vertical))

    def colour_bar(self, left: int, top: int, height: int, cmap: str, high: float, label: str) -> None:
        """A vertical bar of `cmap` from 0 (bottom) to `high` (top), with three ticks and a label beside it."""
        ramp = np.linspace(high, 0, height, dtype=np.float32)[:, None].repeat(BAR_PX, axis=1)
        self.pixels[top : top + height, left : left + BAR_PX] = coloured(ramp, cmap, high)
        for fraction in (0.0, 0.5, 1.0):
            y = top + (1 - fraction) * (height - 1)
            self.box(left + BAR_PX, round(y), 4, 1, (40, 40, 40))
            self.text(left + BAR_PX + 6, y, _tick(fraction * high), size=8, va="center")
        self.text(left + BAR_PX + 72, top + height / 2, label, size=8, vertical=True)

    def save(self, path: Path) -> None:
        """Write the PNG, whole or not at all (a temporary file renamed)."""
        picture = Image.fromarray(self.pixels)
        draw = ImageDraw.Draw(picture)
        for x, y, words, size, ha, va, bold, vertical in self.words:
            font = _font(size, bold)
            if vertical:
                self._vertical(picture, x, y, words, font)
                continue
            lines = words.split("\n")
            step = font.size * LINE_SPACING
            if va == "center":
                y -= step * len(lines) / 2 - (step - font.size) / 2
            anchor = {"left": "la", "center": "ma", "right": "ra"}[ha]
            for n, line in enumerate(lines):
                draw.text((x, y + n * step), line, font=font, fill=TEXT_COLOUR, anchor=anchor)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            # Level 1: a third of the default's time (most of the drawing) for files ~20 % larger.
            picture.save(tmp, format="PNG", compress_level=1)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @staticmethod
    def _vertical(picture: Image.Image, x: float, y: float, words: str, font: ImageFont.FreeTypeFont) -> None:
        lines = words.split("\n")
        step = font.size * LINE_SPACING
        width = max(round(font.getlength(line)) for line in lines) + 2
        strip = Image.new("RGBA", (width, round(step * len(lines)) + 2), (255, 255, 255, 0))
        draw = ImageDraw.Draw(strip)
        for n, line in enumerate(lines):
            draw.text((width / 2, n * step), line, font=font, fill=(*TEXT_COLOUR, 255), anchor="ma")
        turned = strip.rotate(90, expand=True)
        picture.paste(turned, (round(x - turned.width / 2), round(y - turned.height / 2)), turned)


def _tick(value: float) -> str:
    return f"{value:.2g}" if value else "0"
