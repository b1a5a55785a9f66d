"""The confusion matrix (worker/pictures/confusion.py): shares by true class, counts that stay readable on any cell,
any number of classes."""

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from tests.pictures import assert_readable_png
from worker.pictures import confusion

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def strong_diagonal() -> np.ndarray:
    """100 test images per class, 80 of them right; the rest spread over the next two classes."""
    matrix = np.zeros((10, 10), dtype=np.int64)
    for true in range(10):
        matrix[true, true] = 80
        matrix[true, (true + 1) % 10] = 15
        matrix[true, (true + 2) % 10] = 5
    matrix[3] = [0, 0, 0, 40, 0, 60, 0, 0, 0, 0]  # cats taken for dogs more often than not
    return matrix


def luminance(rgb: Any) -> float:
    red, green, blue = rgb[:3]
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def test_confusion_colours_cells_by_share_of_the_true_class_and_prints_counts(
    tmp_path: Path, drawn: list[Figure]
) -> None:
    matrix = strong_diagonal()
    path = tmp_path / "confusion.png"
    confusion.draw_confusion(matrix.tolist(), CLASSES, 7, path, title="job 7")
    assert_readable_png(path)
    fig = drawn[0]
    ax = fig.axes[0]
    image = ax.get_images()[0]
    np.testing.assert_allclose(image.get_array(), matrix / 100)
    assert image.get_clim() == (0.0, 1.0)
    counts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    assert counts == {(row, col): str(matrix[row, col]) for row in range(10) for col in range(10)}
    assert fig.axes[1].get_ylabel() == "fraction of the true class"  # the colourbar


def test_confusion_names_classes_on_both_axes_and_states_epoch_and_accuracy(
    tmp_path: Path, drawn: list[Figure]
) -> None:
    confusion.draw_confusion(strong_diagonal().tolist(), CLASSES, 7, tmp_path / "confusion.png", title="job 7")
    fig = drawn[0]
    ax = fig.axes[0]
    assert fig.get_suptitle() == "job 7"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "true")
    assert [t.get_text() for t in ax.get_xticklabels()] == CLASSES
    assert [t.get_text() for t in ax.get_yticklabels()] == CLASSES
    assert {t.get_rotation() for t in ax.get_xticklabels()} == {45.0}
    # 9 classes at 80 of 100 and cats at 40: 760 of 1,000.
    assert ax.get_title() == "Test set, epoch 7 — accuracy 76.0 % (760 of 1,000)"


def test_confusion_counts_contrast_with_their_cells_dark_or_light(tmp_path: Path, drawn: list[Figure]) -> None:
    matrix = strong_diagonal()
    confusion.draw_confusion(matrix.tolist(), CLASSES, 1, tmp_path / "confusion.png")
    ax = drawn[0].axes[0]
    image = ax.get_images()[0]
    colours = set()
    for text in ax.texts:
        col, row = (round(v) for v in text.get_position())
        cell = image.to_rgba(matrix[row, col] / 100)
        ink = matplotlib.colors.to_rgb(text.get_color())
        colours.add(ink)
        assert abs(luminance(cell) - luminance(ink)) > 0.4, (row, col)
    assert colours == {(0.0, 0.0, 0.0), (1.0, 1.0, 1.0)}, "both dark and light cells occur here"


def test_confusion_works_for_any_number_of_classes_and_an_empty_row(tmp_path: Path, drawn: list[Figure]) -> None:
    matrix = [[5, 1, 0], [0, 0, 0], [2, 0, 3]]  # no test image of class "b"
    confusion.draw_confusion(matrix, ["a", "b", "c"], 2, tmp_path / "confusion.png")
    ax = drawn[0].axes[0]
    shares = np.asarray(ax.get_images()[0].get_array())
    np.testing.assert_allclose(shares, [[5 / 6, 1 / 6, 0], [0, 0, 0], [0.4, 0, 0.6]])
    assert len(ax.texts) == 9
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert "accuracy 72.7 % (8 of 11)" in ax.get_title()
    assert drawn[0].get_suptitle() == ""


@pytest.mark.parametrize(
    ("matrix", "classes", "message"),
    [([[1, 2], [3, 4]], ["a", "b", "c"], r"shape \(3, 3\)"), ([], [], "at least one class")],
)
def test_confusion_with_a_matrix_that_does_not_fit_the_classes_raises_value_error(
    tmp_path: Path, matrix: list[list[int]], classes: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        confusion.draw_confusion(matrix, classes, 1, tmp_path / "x.png")
    assert not tmp_path.joinpath("x.png").exists()
