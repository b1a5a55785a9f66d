"""Tests for worker/mistakes.py: misclassified test images in a grid, each labelled true → predicted."""

from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.image import FigureImage
from matplotlib.transforms import Bbox
from PIL import Image

from worker import synthetic
from worker.pictures import mistakes

CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def wrong_answers(n: int, seed: int = 0) -> tuple[np.ndarray, list[int], list[int]]:
    """`n` test images with their true classes and a different predicted class for each."""
    rng = np.random.default_rng(seed)
    images, labels = synthetic.draw(n, rng)
    predicted = (labels + rng.integers(1, 10, n)) % 10
    return images, labels.tolist(), predicted.tolist()


def image_box(image: FigureImage) -> Bbox:
    """Where a figure image lies, in screen pixels."""
    left, right, bottom, top = image.get_extent()
    return Bbox.from_extents(left + 0.5, bottom + 0.5, right + 0.5, top + 0.5)


def labels_of(fig: Figure) -> list[str]:
    """The text just above each image, centred on it: its label."""
    labels = []
    for image in fig.images:
        box = image_box(image)
        above = [
            text.get_text()
            for text in fig.texts
            if text.get_window_extent().x0 + text.get_window_extent().x1 == pytest.approx(box.x0 + box.x1, abs=2)
            and 0 <= text.get_window_extent().y0 - box.y1 <= 8
        ]
        assert len(above) == 1, "each image has one label right above it"
        labels.append(above[0])
    return labels


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def test_each_mistake_is_its_image_labelled_true_then_predicted(tmp_path: Path, drawn: list[Figure]) -> None:
    images, true, predicted = wrong_answers(11)
    path = tmp_path / "mistakes.png"
    mistakes.draw_mistakes(images, true, predicted, CIFAR_CLASSES, 7, path, title="job 7")
    assert read_png(path).std() > 10
    fig = drawn[0]
    assert len(fig.images) == 11
    for shown, image in zip(fig.images, images, strict=True):
        np.testing.assert_array_equal(shown.get_array()[::4, ::4], image.transpose(1, 2, 0))
    assert labels_of(fig) == [f"{CIFAR_CLASSES[t]}\n→ {CIFAR_CLASSES[p]}" for t, p in zip(true, predicted, strict=True)]
    assert fig.get_suptitle() == "job 7 — Test images misclassified at epoch 7 — all 11 mistakes"


def test_images_are_shown_four_times_their_size_in_sharp_squares(tmp_path: Path, drawn: list[Figure]) -> None:
    images, true, predicted = wrong_answers(3)
    mistakes.draw_mistakes(images, true, predicted, CIFAR_CLASSES, 1, tmp_path / "m.png")
    fig = drawn[0]
    assert fig.axes == []
    for shown, image in zip(fig.images, images, strict=True):
        box = image_box(shown)
        assert (box.width, box.height) == (4 * 32, 4 * 32)
        # Each image pixel is a flat 4×4 square in the figure, drawn at one screen pixel per array element.
        expected = image.transpose(1, 2, 0).repeat(4, axis=0).repeat(4, axis=1)
        np.testing.assert_array_equal(shown.get_array(), expected)
    pixels = read_png(tmp_path / "m.png")
    box = image_box(fig.images[0])
    top = pixels.shape[0] - int(box.y1)
    np.testing.assert_array_equal(pixels[top : top + 128, int(box.x0) : int(box.x1)], fig.images[0].get_array())


def test_at_most_64_are_shown_and_the_title_says_of_how_many(tmp_path: Path, drawn: list[Figure]) -> None:
    images, true, predicted = wrong_answers(100)
    mistakes.draw_mistakes(images, true, predicted, CIFAR_CLASSES, 12, tmp_path / "m.png", total=1234)
    fig = drawn[0]
    assert len(fig.images) == 64
    titles = labels_of(fig)
    expected = [
        mistakes.mistake_label(CIFAR_CLASSES[t], CIFAR_CLASSES[p]) for t, p in zip(true, predicted, strict=True)
    ]
    assert titles == expected[:64]
    assert fig.get_suptitle() == "Test images misclassified at epoch 12 — 64 of 1,234 mistakes"
    # 8 columns: the ninth image starts the second row, under the first.
    first, ninth = image_box(fig.images[0]), image_box(fig.images[8])
    assert ninth.x0 == pytest.approx(first.x0)
    assert ninth.y1 < first.y0


def test_long_class_names_wrap_so_that_no_label_overlaps_another_or_an_image(
    tmp_path: Path, drawn: list[Figure]
) -> None:
    images, _, _ = wrong_answers(16)
    # The two longest synthetic names, each way round: four-line labels in every column of both rows.
    longest = sorted(range(10), key=lambda c: len(synthetic.CLASS_NAMES[c]))[-2:]
    true, predicted = longest * 8, longest[::-1] * 8
    mistakes.draw_mistakes(images, true, predicted, synthetic.CLASS_NAMES, 3, tmp_path / "m.png", title="job 9")
    fig = drawn[0]
    assert {label.count("\n") for label in labels_of(fig)} == {3}
    # In screen pixels, as laid out when the PNG was drawn; fig.texts holds the labels, the title and the note.
    boxes = [image_box(image) for image in fig.images] + [text.get_window_extent() for text in fig.texts]
    assert len(boxes) == 2 * 16 + 2
    for a, b in combinations(boxes, 2):
        assert not a.overlaps(b)
    assert all(fig.bbox.contains(box.x0, box.y0) and fig.bbox.contains(box.x1, box.y1) for box in boxes)


def test_a_label_puts_the_true_class_first_and_wraps_long_names() -> None:
    assert mistakes.mistake_label("cat", "dog") == "cat\n→ dog"
    label = mistakes.mistake_label("green anti-diagonal stripes", "yellow diagonal stripes")
    assert label == "green anti-\ndiagonal stripes\n→ yellow diagonal\nstripes"
    assert all(len(line) <= mistakes.LABEL_CHARS for line in label.split("\n"))


def test_the_heading_counts_what_is_shown_of_all_mistakes() -> None:
    assert mistakes.mistakes_heading(64, 1234, 7) == "Test images misclassified at epoch 7 — 64 of 1,234 mistakes"
    assert mistakes.mistakes_heading(12, 12, 7).endswith("— all 12 mistakes")
    assert mistakes.mistakes_heading(1, 1, 7).endswith("— 1 mistake")
    assert mistakes.mistakes_heading(0, 5, 7).endswith("— 0 of 5 mistakes")
    assert mistakes.mistakes_heading(0, 0, 7).endswith("— no mistakes")


def test_no_mistakes_draws_a_readable_note_instead_of_an_empty_grid(tmp_path: Path, drawn: list[Figure]) -> None:
    empty = np.zeros((0, 3, 32, 32), dtype=np.uint8)
    path = tmp_path / "m.png"
    mistakes.draw_mistakes(empty, [], [], CIFAR_CLASSES, 30, path, total=0)
    fig = drawn[0]
    assert fig.images == []
    assert fig.get_suptitle() == "Test images misclassified at epoch 30 — no mistakes"
    assert "Every test image was classified correctly" in [text.get_text() for text in fig.texts]
    assert (read_png(path) < 128).any(), "the note is drawn in dark ink"


def test_writes_create_folders_and_leave_no_temp_files(tmp_path: Path) -> None:
    images, true, predicted = wrong_answers(2)
    path = tmp_path / "a" / "b" / "mistakes.png"
    mistakes.draw_mistakes(images, true, predicted, CIFAR_CLASSES, 1, path)
    assert [p.name for p in path.parent.iterdir()] == ["mistakes.png"]


def test_bad_input_raises_value_error_and_writes_nothing(tmp_path: Path) -> None:
    images, true, predicted = wrong_answers(4)
    path = tmp_path / "m.png"
    with pytest.raises(ValueError, match="4 images need 4 true and 4 predicted classes, got 3 and 4"):
        mistakes.draw_mistakes(images, true[:3], predicted, CIFAR_CLASSES, 1, path)
    with pytest.raises(ValueError, match="got 4 and 5"):
        mistakes.draw_mistakes(images, true, [*predicted, 0], CIFAR_CLASSES, 1, path)
    with pytest.raises(ValueError, match="uint8"):
        mistakes.draw_mistakes(images.astype(np.float32), true, predicted, CIFAR_CLASSES, 1, path)
    with pytest.raises(ValueError, match=r"\(N, 3, 32, 32\)"):
        mistakes.draw_mistakes(images.transpose(0, 2, 3, 1), true, predicted, CIFAR_CLASSES, 1, path)
    with pytest.raises(ValueError, match="outside the 10 classes"):
        mistakes.draw_mistakes(images, [10, *true[1:]], predicted, CIFAR_CLASSES, 1, path)
    with pytest.raises(ValueError, match="not a mistake"):
        mistakes.draw_mistakes(images, true, [true[0], *predicted[1:]], CIFAR_CLASSES, 1, path)
    with pytest.raises(ValueError, match="cannot be 3 with 4"):
        mistakes.draw_mistakes(images, true, predicted, CIFAR_CLASSES, 1, path, total=3)
    assert not path.exists()
