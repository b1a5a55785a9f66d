"""Pictures of what excites a filter: one channel's nine strongest test images with the receptive field of the
strongest position outlined, and a layer's overview, each channel a 3×3 block of those receptive fields cut out.

Composed pixel for pixel on a `worker.inside.canvas.Canvas`, like the other pictures of `worker.inside`.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from worker.inside.canvas import Canvas

# A filter's page: a 3×3 grid of images 200 px square, each with its label under it.
GRID = 3
IMAGE_PX, CELL_W_PX, CELL_H_PX = 200, 248, 250
HEADER_PX = 100
BOX_COLOUR = (255, 221, 0)  # yellow, with a dark edge: visible on any image
EDGE_COLOUR = (20, 20, 20)
# The overview: 8 channels a row, each a 3×3 block of 32 px cut-outs (96 px) with its label above.
COLUMNS, CROP_PX, BLOCK_GAP_PX, OVERVIEW_HEADER_PX, LABEL_PX = 8, 32, 28, 100, 18
GREY = 0.5  # outside the image, a cut-out is filled with mid grey, as the zero padding would be seen


def draw_filter(
    images: np.ndarray,
    boxes: Sequence[tuple[float, float, float, float]],
    labels: Sequence[str],
    title: str,
    subtitle: str,
    path: Path,
) -> None:
    """One channel's strongest images, strongest first: `images` float (k, 3, S, S) in 0–1 (as the network saw
    them), `boxes` the receptive field of each one's strongest position in input pixels, `labels` a line each."""
    rows = max(1, -(-len(images) // GRID))
    canvas = Canvas(24 + GRID * CELL_W_PX, HEADER_PX + rows * CELL_H_PX + 8)
    canvas.text(16, 12, title, size=13, bold=True, fit=canvas.width - 32)
    canvas.text(16, 38, subtitle, size=10, fit=canvas.width - 32)
    for n, (image, box, label) in enumerate(zip(images, boxes, labels, strict=True)):
        row, column = divmod(n, GRID)
        left, top = 16 + column * CELL_W_PX, HEADER_PX + row * CELL_H_PX
        rgb = (np.clip(image.transpose(1, 2, 0), 0, 1) * 255 + 0.5).astype(np.uint8)
        canvas.image(left, top, rgb, IMAGE_PX)
        scale = IMAGE_PX / image.shape[-1]
        # Clipped to the image: a deep layer's field reaches past it (into the padding), often on every side.
        x0, y0, x1, y1 = (min(max(v * scale, 0), IMAGE_PX) for v in box)
        canvas.outline(left + x0 - 1, top + y0 - 1, left + x1 + 1, top + y1 + 1, EDGE_COLOUR)
        canvas.outline(left + x0, top + y0, left + x1, top + y1, BOX_COLOUR)
        canvas.text(left, top + IMAGE_PX + 4, label, size=9)
    if not len(images):
        canvas.text(16, HEADER_PX + 20, "No test image to show.", size=11)
    canvas.save(path)


def cut_out(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The square `box` (x0, y0, x1, y1 in pixels) of `image` float (3, S, S), as uint8 (CROP_PX, CROP_PX, 3); what
    lies outside the image is grey."""
    size = image.shape[-1]
    x0, y0, x1, y1 = (round(v) for v in box)
    side = max(1, x1 - x0)
    pad = max(0, -x0, -y0, x1 - size, y1 - size)
    padded = np.pad(image, ((0, 0), (pad, pad), (pad, pad)), constant_values=GREY)
    crop = padded[:, y0 + pad : y0 + pad + side, x0 + pad : x0 + pad + side]
    rgb = (np.clip(crop.transpose(1, 2, 0), 0, 1) * 255 + 0.5).astype(np.uint8)
    rows = np.arange(CROP_PX) * rgb.shape[0] // CROP_PX
    cols = np.arange(CROP_PX) * rgb.shape[1] // CROP_PX
    return rgb[rows][:, cols]


def draw_overview(blocks: Sequence[tuple[int, float, np.ndarray]], title: str, subtitle: str, path: Path) -> None:
    """A layer's channels, each (channel, its strongest activation, its cut-outs uint8 (k, CROP_PX, CROP_PX, 3))."""
    block_px = GRID * (CROP_PX + 2)  # 2 px apart: nine cut-outs, not one picture
    rows = max(1, -(-len(blocks) // COLUMNS))
    width = 32 + COLUMNS * (block_px + BLOCK_GAP_PX)
    canvas = Canvas(width, OVERVIEW_HEADER_PX + rows * (block_px + LABEL_PX + BLOCK_GAP_PX))
    canvas.text(16, 12, title, size=13, bold=True, fit=width - 32)
    canvas.text(16, 38, subtitle, size=10, fit=canvas.width - 32)
    for n, (channel, peak, crops) in enumerate(blocks):
        row, column = divmod(n, COLUMNS)
        left = 16 + column * (block_px + BLOCK_GAP_PX)
        top = OVERVIEW_HEADER_PX + row * (block_px + LABEL_PX + BLOCK_GAP_PX)
        canvas.text(left, top, f"ch {channel} · {peak:.3g}", size=9)
        for k, crop in enumerate(crops):
            r, c = divmod(k, GRID)
            canvas.image(left + c * (CROP_PX + 2), top + LABEL_PX + r * (CROP_PX + 2), crop, CROP_PX)
    canvas.save(path)
