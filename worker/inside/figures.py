"""Pictures of one image inside the network: its activations layer by layer, and Grad-CAM with gradient saliency.

Pure functions from numbers to a PNG (`worker.pictures.kernels` owns the atomic write). Every picture is composed
pixel for pixel on one canvas (`worker.inside.canvas`) with text on top, and no Axes: the 80 small Axes of a first
version took 3 s to draw, the canvas 0.2 s. The activations picture is laid out in fixed pixels, so where each
feature map lies is known without drawing it (`tile_boxes`): the dashboard puts a button over each map.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from worker.inside.activations import CONV_LAYERS, SHOWN_CHANNELS
from worker.inside.canvas import Canvas, blend, coloured

# One feature map is shown 64 px square (conv1's 55×55 at 224 px, conv5's 13×13 enlarged), 8 px apart, so that 16
# of them, a layer's name on the left and its colour bar on the right fit a 1,360 px wide picture.
TILE_PX, TILE_GAP_PX = 64, 8
LEFT_PX, RIGHT_PX = 150, 120
# The title, then the input beside the top-5 bars, then a row per layer: its maps and, under them, their channels.
TITLE_PX, INPUT_PX, INPUT_GAP_PX = 64, 192, 48
ROW_PX = 96
BOTTOM_PX = 8
WIDTH_PX = LEFT_PX + SHOWN_CHANNELS * TILE_PX + (SHOWN_CHANNELS - 1) * TILE_GAP_PX + RIGHT_PX
LAYERS_TOP_PX = TITLE_PX + INPUT_PX + INPUT_GAP_PX
HEIGHT_PX = LAYERS_TOP_PX + len(CONV_LAYERS) * ROW_PX + BOTTOM_PX
ACTIVATION_MAP = "viridis"
HEAT_MAP = "jet"  # Grad-CAM's paper's colours: red where the class's evidence is
HEAT_ALPHA = 0.5
SALIENCY_MAP = "magma"
# The explanation: three panels of 288 px (a 224 px input enlarged, or a 64 px one 4.5×), each with room for a bar.
PANEL_PX, PANEL_GAP_PX, EXPLAIN_TOP_PX = 288, 150, 116


def tile_boxes(layer_index: int, count: int) -> list[tuple[float, float, float, float]]:
    """Where the maps of the `layer_index`-th layer lie in the activations picture: (left, top, right, bottom) as
    fractions of its width and height, one box per map shown."""
    top = LAYERS_TOP_PX + layer_index * ROW_PX
    boxes = []
    for column in range(count):
        left = LEFT_PX + column * (TILE_PX + TILE_GAP_PX)
        boxes.append((left / WIDTH_PX, top / HEIGHT_PX, (left + TILE_PX) / WIDTH_PX, (top + TILE_PX) / HEIGHT_PX))
    return boxes


def _rgb(image: np.ndarray) -> np.ndarray:
    """float (3, S, S) in 0–1 → uint8 (S, S, 3)."""
    return (np.clip(image.transpose(1, 2, 0), 0, 1) * 255 + 0.5).astype(np.uint8)


def _top5(canvas: Canvas, left: int, top: int, top5: Sequence[tuple[str, float]]) -> None:
    """The five most likely classes as bars, best on top, each with its name and percentage."""
    canvas.text(left, top, "top-5 prediction", size=11, bold=True)
    bar_left, bar_px, step = left + 190, 260, 28
    for row, (name, p) in enumerate(top5):
        y = top + 30 + row * step
        canvas.text(bar_left - 10, y + 2, name, size=10, ha="right")
        canvas.box(bar_left, y, bar_px, 18, (235, 235, 235))
        canvas.box(bar_left, y, max(1, round(bar_px * p)), 18, (78, 121, 167))
        canvas.text(bar_left + bar_px + 8, y + 2, f"{p * 100:.1f} %", size=10)
    canvas.text(bar_left, top + 30 + 5 * step + 2, "probability: softmax of the output (bar: 0–100 %)", size=9)


def draw_activations(
    image: np.ndarray,
    layers: Sequence[tuple[str, np.ndarray, Sequence[int], tuple[int, ...]]],
    top5: Sequence[tuple[str, float]],
    title: str,
    path: Path,
) -> None:
    """The input as the network sees it, its top-5 prediction, and a row per conv layer of its strongest channels'
    maps, each row on one colour scale with a bar.

    `image`: the upscaled input, float (3, S, S) in 0–1; `layers`: (name, maps (k, h, w) of the channels shown,
    their channel numbers, the layer's full (C, H, W) shape), conv1 first.
    """
    canvas = Canvas(WIDTH_PX, HEIGHT_PX)
    canvas.text(16, 12, title, size=13, bold=True, fit=WIDTH_PX - 32)
    note = "Each row: the layer's strongest channels on this image (highest mean activation after the ReLU), labelled"
    canvas.text(16, 36, f"{note} with their channel number; one colour scale per row.", size=10)
    size = image.shape[-1]
    canvas.image(LEFT_PX, TITLE_PX + 18, _rgb(image), INPUT_PX - 18)
    canvas.text(LEFT_PX, TITLE_PX, f"input, {size}×{size} (32×32 upscaled)", size=10)
    _top5(canvas, LEFT_PX + INPUT_PX + 120, TITLE_PX, top5)
    for row, (name, maps, channels, shape) in enumerate(layers):
        top = LAYERS_TOP_PX + row * ROW_PX
        high = float(maps.max()) if maps.size else 0.0
        high = high if high > 0 else 1.0  # a silent layer: an all-dark row whose scale still reads
        for column, (m, channel) in enumerate(zip(maps, channels, strict=True)):
            left = LEFT_PX + column * (TILE_PX + TILE_GAP_PX)
            canvas.image(left, top, coloured(m, ACTIVATION_MAP, high), TILE_PX)
            canvas.text(left + TILE_PX / 2, top + TILE_PX + 3, f"ch {channel}", size=9, ha="center")
        channels_total, height, width = shape
        canvas.text(16, top + 4, name, size=12, bold=True)
        canvas.text(16, top + 24, f"{channels_total} channels\n{height}×{width} each", size=9)
        canvas.colour_bar(WIDTH_PX - RIGHT_PX + 20, top, TILE_PX, ACTIVATION_MAP, high, "activation\n(after the ReLU)")
    canvas.save(path)


def draw_explain(
    image: np.ndarray,
    heat: np.ndarray,
    saliency: np.ndarray,
    class_name: str,
    asked: bool,
    top5: Sequence[tuple[str, float]],
    title: str,
    path: Path,
) -> None:
    """The input, Grad-CAM's heat map over it for `class_name`, and gradient saliency, side by side.

    `image`: float (3, S, S) in 0–1; `heat`: (S, S) in 0–1; `saliency`: (S, S) ≥ 0.
    """
    width = 24 + 3 * PANEL_PX + 3 * PANEL_GAP_PX
    canvas = Canvas(width, EXPLAIN_TOP_PX + PANEL_PX + 24)
    which = "the class asked for" if asked else "the predicted class"
    canvas.text(16, 12, title, size=13, bold=True, fit=width - 32)
    canvas.text(16, 38, f"Where it looked for “{class_name}” ({which})", size=12, bold=True, fit=width - 32)
    canvas.text(16, 62, "top-5: " + " · ".join(f"{name} {p * 100:.1f} %" for name, p in top5), size=10)
    size = image.shape[-1]
    rgb = _rgb(image)
    high = float(saliency.max()) or 1.0
    panels = (
        (rgb, f"input, {size}×{size} (32×32 upscaled)", None),
        (
            blend(rgb, coloured(heat, HEAT_MAP, 1.0), HEAT_ALPHA),
            "Grad-CAM at conv5, over the input" if heat.max() > 0 else "Grad-CAM at conv5: no evidence for it anywhere",
            None,
        ),
        (coloured(saliency, SALIENCY_MAP, high), "gradient saliency", None),
    )
    for column, (pixels, caption, _) in enumerate(panels):
        left = 16 + column * (PANEL_PX + PANEL_GAP_PX)
        canvas.text(left, EXPLAIN_TOP_PX - 24, caption, size=10, bold=True)
        canvas.image(left, EXPLAIN_TOP_PX, pixels, PANEL_PX)
    bar_top, bar_px = EXPLAIN_TOP_PX, PANEL_PX
    cam_left = 16 + PANEL_PX + PANEL_GAP_PX + PANEL_PX + 14
    canvas.colour_bar(cam_left, bar_top, bar_px, HEAT_MAP, 1.0, "class evidence,\nrelative to its peak")
    sal_left = 16 + 2 * (PANEL_PX + PANEL_GAP_PX) + PANEL_PX + 14
    canvas.colour_bar(sal_left, bar_top, bar_px, SALIENCY_MAP, high, "|∂ score / ∂ pixel|\n(max over R, G, B)")
    canvas.save(path)
