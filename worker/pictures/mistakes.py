"""Pictures of test images: the ones the network got wrong, each labelled with its true and predicted class.

Drawn with matplotlib's object API like the charts in `worker.pictures.charts`; `worker.pictures.kernels` owns the
atomic write.
The layout is computed in screen pixels, so every image is shown at exactly four times its size.
"""

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from worker.pictures import charts, kernels

# 8×8 fills a screen and is enough to see what kind of mistake the network makes; more would be a wall of images.
MAX_SHOWN = 64
COLUMNS = 8
# A 32 px CIFAR image shown 4× (each pixel a 4×4 square) is large enough to recognise; an integer factor keeps the
# squares even. Each column is wider than its image by a gap that keeps neighbouring labels apart.
SIDE = 32
IMAGE_PX = 4 * SIDE
COLUMN_PX = 152
MARGIN_PX = 20
# The title's top, the note's top under it, and where the first row of labels may start.
TITLE_TOP_PX, NOTE_TOP_PX, HEADER_PX = 12, 44, 72
LABEL_PT = 9
# A label line at 9 pt is ~16 px tall; the names are wrapped at 18 characters, ~125 px of 9 pt text, so that two
# neighbouring labels never touch. CIFAR's longest name ("automobile") fits on one line.
LABEL_LINE_PX = 16
LABEL_CHARS = 18
ROW_GAP_PX = 14
# With no mistake to show, a short picture with the title and one line of text.
EMPTY_HEIGHT_PX = 200


def mistake_label(true_name: str, predicted_name: str) -> str:
    """The label of one image: its true class over "→ the predicted class", each wrapped to fit the column."""
    lines = textwrap.wrap(true_name, LABEL_CHARS) + textwrap.wrap(f"→ {predicted_name}", LABEL_CHARS)
    return "\n".join(lines)


def mistakes_heading(shown: int, total: int, epoch: int) -> str:
    """What the picture shows, e.g. "Test images misclassified at epoch 7 — 64 of 1,234 mistakes"."""
    if total == 0:
        count = "no mistakes"
    elif total == 1:
        count = "1 mistake" if shown else "0 of 1 mistake"
    elif shown == total:
        count = f"all {total:,} mistakes"
    else:
        count = f"{shown:,} of {total:,} mistakes"
    return f"Test images misclassified at epoch {epoch} — {count}"


def draw_mistakes(
    images: np.ndarray,
    true: Sequence[int],
    predicted: Sequence[int],
    classes: Sequence[str],
    epoch: int,
    path: Path,
    title: str = "",
    total: int | None = None,
) -> None:
    """Draw up to 64 misclassified test images, 8 to a row, each labelled "true → predicted", into the PNG at `path`.

    `images` are uint8 (N, 3, 32, 32), as the CIFAR-10 files hold them; `total` counts all the mistakes these
    were taken from (N when not given).
    """
    pictures = _checked(images, true, predicted, classes, total)
    total = len(pictures) if total is None else total
    shown = pictures[:MAX_SHOWN]
    labels = [
        mistake_label(classes[t], classes[p]) for t, p in zip(true[:MAX_SHOWN], predicted[:MAX_SHOWN], strict=True)
    ]
    rows = -(-len(shown) // COLUMNS)
    label_px = LABEL_LINE_PX * max((label.count("\n") + 1 for label in labels), default=0) + 4
    row_px = label_px + IMAGE_PX + ROW_GAP_PX
    width = 2 * MARGIN_PX + COLUMNS * COLUMN_PX
    height = HEADER_PX + rows * row_px + MARGIN_PX if rows else EMPTY_HEIGHT_PX
    fig = Figure(figsize=(width / kernels.DPI, height / kernels.DPI), dpi=kernels.DPI)
    heading = mistakes_heading(len(shown), total, epoch)
    fig.suptitle(
        f"{charts.plain(title)} — {heading}" if title else heading, fontsize=13, y=1 - TITLE_TOP_PX / height, va="top"
    )
    if not rows:
        note = "every test image was classified correctly" if total == 0 else "none of the mistakes was kept to show"
        fig.text(0.5, 0.45, note.capitalize(), ha="center", va="center", fontsize=12, color="0.35")
    else:
        note = "above each image: its true class, then → the class the network predicted"
        fig.text(0.5, 1 - NOTE_TOP_PX / height, note, ha="center", va="top", fontsize=10, color="0.3")
    for index, (picture, label) in enumerate(zip(shown, labels, strict=True)):
        row, col = divmod(index, COLUMNS)
        left = MARGIN_PX + col * COLUMN_PX + (COLUMN_PX - IMAGE_PX) // 2
        top = HEADER_PX + row * row_px + label_px
        # Placed pixel for pixel, already enlarged: every image pixel an exact square, and no Axes to build (64 of
        # them took 0.6 s).
        enlarged = picture.transpose(1, 2, 0).repeat(IMAGE_PX // SIDE, axis=0).repeat(IMAGE_PX // SIDE, axis=1)
        fig.figimage(enlarged, xo=left, yo=height - top - IMAGE_PX, origin="upper")
        centre = (left + IMAGE_PX / 2) / width
        fig.text(centre, 1 - (top - 3) / height, label, ha="center", va="bottom", fontsize=LABEL_PT, linespacing=1.15)
    kernels.save_png(fig, path)


def _checked(
    images: np.ndarray, true: Sequence[int], predicted: Sequence[int], classes: Sequence[str], total: int | None
) -> np.ndarray:
    pictures = np.asarray(images)
    if pictures.dtype != np.uint8 or pictures.ndim != 4 or pictures.shape[1:] != (3, SIDE, SIDE):
        raise ValueError(f"images must be uint8 (N, 3, {SIDE}, {SIDE}), got {pictures.dtype} {pictures.shape}")
    n = len(pictures)
    if len(true) != n or len(predicted) != n:
        raise ValueError(f"{n} images need {n} true and {n} predicted classes, got {len(true)} and {len(predicted)}")
    for index, (t, p) in enumerate(zip(true, predicted, strict=True)):
        if not (0 <= t < len(classes) and 0 <= p < len(classes)):
            raise ValueError(f"image {index} has class {t} or {p}, outside the {len(classes)} classes")
        if t == p:
            raise ValueError(f"image {index} was classified correctly as {classes[t]!r}; it is not a mistake")
    if total is not None and total < n:
        raise ValueError(f"total counts every mistake, so it cannot be {total} with {n} mistaken images given")
    return pictures
