"""The confusion matrix of a test set: which true classes the network takes for which.

A pure function from counts to a PNG file, drawn with matplotlib's object API like the charts in
`worker.pictures.charts` (and written by `worker.pictures.kernels.save_png`).
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from worker.pictures import charts, kernels

# Sized so that ten class names and four-digit counts never crowd.
CONFUSION_SIZE_IN = (8.0, 7.4)
# Above this many classes a count no longer fits in its cell; the colours still tell the story.
MAX_LABELLED_CLASSES = 30
# Cells darker than this (relative luminance, 0 black to 1 white) get white counts, lighter ones black:
# whichever differs more from the cell.
DARK_CELL = 0.5


def draw_confusion(
    matrix: Sequence[Sequence[int]], classes: Sequence[str], epoch: int, path: Path, title: str = ""
) -> None:
    """Draw an N×N confusion matrix (rows: true class, columns: predicted) with counts into the PNG at `path`.

    The colour of a cell is its share of the true class (the row), so a rare class reads as clearly as a common one.
    """
    counts = np.asarray(matrix, dtype=np.int64)
    n = len(classes)
    if n == 0:
        raise ValueError("a confusion matrix needs at least one class; there is nothing to draw")
    if counts.shape != (n, n):
        raise ValueError(f"a confusion matrix for {n} classes must have shape ({n}, {n}), got {counts.shape}")
    totals = counts.sum(axis=1, keepdims=True)
    # A class absent from the test set has an empty row: drawn as 0 instead of dividing by zero.
    shares = counts / np.where(totals > 0, totals, 1)
    correct, seen = int(np.trace(counts)), int(counts.sum())
    accuracy = f"accuracy {100 * correct / seen:.1f} % ({correct:,} of {seen:,})" if seen else "no test images"

    fig = Figure(figsize=CONFUSION_SIZE_IN, dpi=kernels.DPI, layout="constrained")
    ax = fig.add_subplot()
    shown = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(shown, ax=ax, shrink=0.8, label="fraction of the true class")
    ticks = np.arange(n)
    ax.set_xticks(ticks, list(classes), rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(ticks, list(classes))
    ax.set(xlabel="predicted", ylabel="true", title=f"Test set, epoch {epoch} — {accuracy}")
    if n <= MAX_LABELLED_CLASSES:
        # 10 pt up to ten classes; beyond, the cells shrink as 1/N and so does the text (5 pt at 20 classes).
        size = min(10.0, 100 / n)
        for (row, col), count in np.ndenumerate(counts):
            colour = "white" if _luminance(shown.to_rgba(shares[row, col])) < DARK_CELL else "black"
            ax.text(col, row, f"{count}", ha="center", va="center", color=colour, fontsize=size)
    if title:
        fig.suptitle(charts.plain(title), fontsize=13)
    kernels.save_png(fig, path)


def _luminance(rgba: Sequence[float] | np.ndarray) -> float:
    red, green, blue = rgba[:3]
    return float(0.2126 * red + 0.7152 * green + 0.0722 * blue)  # Rec. 709 weights: green looks brightest
