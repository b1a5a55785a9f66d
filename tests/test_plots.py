"""Tests for worker/kernels.py and worker/charts.py: each picture shows what its title promises, readably."""

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
from matplotlib.collections import QuadMesh
from matplotlib.figure import Figure
from PIL import Image

from worker.measures import LAYER_NAMES
from worker.pictures import charts, kernels

THREE_EPOCHS = [
    {"epoch": 1, "train_loss": 1.95, "test_loss": 1.62, "test_accuracy": 0.41},
    {"epoch": 2, "train_loss": 1.45, "test_loss": 1.31, "test_accuracy": 0.53},
    {"epoch": 3, "train_loss": 1.18, "test_loss": 1.15, "test_accuracy": 0.60},
]
# 11×11 tiles plus 1-pixel separators on both sides of each: 8·11 + 9.
CONV1_SIDE = 97
CONV2_SIDE = 49


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"), dtype=np.float64)


def assert_readable_png(path: Path) -> np.ndarray:
    pixels = read_png(path)
    height, width, _ = pixels.shape
    assert height >= 400
    assert width >= 400
    assert pixels.std() > 10, "the image is (nearly) one flat colour"
    return pixels


def conv1_weights(rng: np.random.Generator) -> np.ndarray:
    return rng.normal(0.0, 0.05, kernels.CONV1_SHAPE).astype(np.float32)


# --- curves ---------------------------------------------------------------------------------------------


def test_curves_with_three_epochs_show_loss_and_accuracy_panels(tmp_path: Path, drawn: list[Figure]) -> None:
    path = tmp_path / "curves.png"
    charts.draw_curves(THREE_EPOCHS, path, title="job 7")
    pixels = assert_readable_png(path)
    assert pixels.shape[:2] == (400, 1000)
    fig = drawn[0]
    assert fig.get_suptitle() == "job 7 — 3 epochs"
    loss_ax, acc_ax = fig.axes[:2]
    assert (loss_ax.get_title(), loss_ax.get_xlabel(), loss_ax.get_ylabel()) == (
        "Loss",
        "epoch",
        "loss (NLL, nats)",
    )
    assert [line.get_label() for line in loss_ax.get_lines()] == [
        "train loss (epoch mean)",
        "test loss",
        "chance (ln 10)",
    ]
    assert acc_ax.get_title() == "Test accuracy"
    assert acc_ax.get_ylim() == (0.0, 100.0)
    accuracy, chance = acc_ax.get_lines()
    assert list(np.asarray(accuracy.get_ydata())) == pytest.approx([41.0, 53.0, 60.0])
    assert chance.get_label() == "chance (10 %)"
    assert chance.get_linestyle() == "--"
    assert set(np.asarray(chance.get_ydata())) == {10.0}
    assert all(float(tick).is_integer() for tick in loss_ax.get_xticks())


def test_curves_with_one_epoch_show_the_single_point_on_an_integer_tick(tmp_path: Path, drawn: list[Figure]) -> None:
    path = tmp_path / "curves.png"
    charts.draw_curves(THREE_EPOCHS[:1], path)
    assert_readable_png(path)
    fig = drawn[0]
    assert fig.get_suptitle() == "AlexNet on CIFAR-10 — 1 epoch"
    for ax in fig.axes[:2]:
        low, high = ax.get_xlim()
        assert low < 1 < high
        assert [tick for tick in ax.get_xticks() if low <= tick <= high] == [1.0]
        assert ax.get_lines()[0].get_marker() == "o"


def test_curves_with_no_epochs_draw_empty_axes_with_a_note(tmp_path: Path, drawn: list[Figure]) -> None:
    path = tmp_path / "curves.png"
    charts.draw_curves([], path)
    assert_readable_png(path)
    fig = drawn[0]
    assert fig.get_suptitle() == "AlexNet on CIFAR-10 — 0 epochs"
    for ax in fig.axes[:2]:
        assert [text.get_text() for text in ax.texts] == ["no epoch finished yet"]
        # An accuracy line with no point once made the layout squeeze both panels into slivers at the edges.
        assert ax.get_position().width > 0.35


def test_curves_with_a_thousand_epochs_drop_the_markers(tmp_path: Path, drawn: list[Figure]) -> None:
    many = [
        {"epoch": i, "train_loss": 2.0 / i, "test_loss": 2.2 / i, "test_accuracy": 0.8 - 0.7 / i}
        for i in range(1, 1001)
    ]
    path = tmp_path / "curves.png"
    charts.draw_curves(many, path)
    assert_readable_png(path)
    loss_ax = drawn[0].axes[0]
    assert {line.get_marker() for line in loss_ax.get_lines()} == {"None"}
    assert len(np.asarray(loss_ax.get_lines()[0].get_xdata())) == 1000


def test_curves_with_a_diverged_loss_leave_a_gap_instead_of_failing(tmp_path: Path, drawn: list[Figure]) -> None:
    epochs = [
        *THREE_EPOCHS,
        {"epoch": 4, "train_loss": float("inf"), "test_loss": float("nan"), "test_accuracy": 0.1},
    ]
    path = tmp_path / "curves.png"
    charts.draw_curves(epochs, path)
    assert_readable_png(path)
    loss_ax, acc_ax = drawn[0].axes[:2]
    train, test = (np.asarray(line.get_ydata(), dtype=np.float64) for line in loss_ax.get_lines()[:2])
    # The diverged epoch is a gap (NaN, which matplotlib leaves undrawn); the epochs before it are drawn as they were.
    assert np.isnan(train[3]) and np.isnan(test[3])
    assert train[:3].tolist() == [1.95, 1.45, 1.18]
    assert test[:3].tolist() == [1.62, 1.31, 1.15]
    # So the loss axis spans the finite losses, not up to infinity.
    assert np.isfinite(loss_ax.get_ylim()).all()
    assert loss_ax.get_ylim()[1] < 10
    accuracy = np.asarray(acc_ax.get_lines()[0].get_ydata(), dtype=np.float64)
    assert accuracy.tolist() == pytest.approx([41.0, 53.0, 60.0, 10.0])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("synthetic", "adam", 1e-4, 512, 64, "bf16"), "synthetic · Adam lr 1e-4 · batch 512 · 64 px · bf16"),
        (("cifar10", "sgd", 0.01, 128, 224, "fp32"), "CIFAR-10 · SGD lr 1e-2 · batch 128 · 224 px · fp32"),
    ],
)
def test_run_title_names_dataset_optimizer_rate_batch_size_and_precision(
    args: tuple[str, str, float, int, int, str], expected: str
) -> None:
    assert charts.run_title(*args) == expected


@pytest.mark.parametrize(
    ("rate", "text"), [(1e-4, "1e-4"), (3e-4, "3e-4"), (0.01, "1e-2"), (2.5e-3, "2.5e-3"), (0.1, "1e-1"), (1.0, "1")]
)
def test_learning_rates_are_written_in_compact_exponent_form(rate: float, text: str) -> None:
    assert charts.compact_number(rate) == text


def test_curves_title_says_which_epoch_of_how_many_until_the_last(tmp_path: Path, drawn: list[Figure]) -> None:
    charts.draw_curves(THREE_EPOCHS, tmp_path / "running.png", title="job 7", epochs_total=10)
    charts.draw_curves(THREE_EPOCHS, tmp_path / "done.png", title="job 7", epochs_total=3)
    assert [fig.get_suptitle() for fig in drawn] == ["job 7 — epoch 3 of 10", "job 7 — 3 epochs"]


def test_curves_loss_axis_starts_at_zero_so_a_flat_run_reads_flat(tmp_path: Path, drawn: list[Figure]) -> None:
    flat = [
        {"epoch": e, "train_loss": loss, "test_loss": loss - 0.0005, "test_accuracy": 0.1}
        for e, loss in enumerate([2.3020, 2.3008, 2.2997, 2.2985], start=1)
    ]
    charts.draw_curves(flat, tmp_path / "curves.png")
    loss_ax = drawn[0].axes[0]
    low, high = loss_ax.get_ylim()
    assert low == 0.0
    # A 0.15 % change in the loss fills well under 1 % of the axis instead of all of it.
    assert (2.3020 - 2.2985) / (high - low) < 0.01
    chance = loss_ax.get_lines()[-1]
    assert chance.get_label() == "chance (ln 10)"
    assert chance.get_linestyle() == "--"
    assert np.asarray(chance.get_ydata()).tolist() == pytest.approx([np.log(10)] * 2)
    assert high > np.log(10)  # the reference line is inside the frame
    assert "chance (ln 10)" in [t.get_text() for t in loss_ax.get_legend().get_texts()]


def test_curves_draw_per_step_losses_as_a_thin_lighter_line_under_the_epoch_points(
    tmp_path: Path, drawn: list[Figure]
) -> None:
    # Four steps per epoch: step g sits at g / 4 epochs; one step diverged.
    losses = [2.31, 2.2, 2.1, 2.05, 1.9, float("inf"), 1.6, 1.5, 1.3, 1.2, 1.25, 1.1]
    steps = [((g + 1) / 4, loss) for g, loss in enumerate(losses)]
    charts.draw_curves(THREE_EPOCHS, tmp_path / "curves.png", steps=steps)
    loss_ax, acc_ax = drawn[0].axes[:2]
    by_label = {line.get_label(): line for line in loss_ax.get_lines()}
    per_step, per_epoch = by_label["train loss per step"], by_label["train loss (epoch mean)"]
    assert np.asarray(per_step.get_xdata()).tolist() == [s[0] for s in steps]
    y = np.asarray(per_step.get_ydata(), dtype=np.float64)
    assert np.isnan(y[5]), "a diverged step is a gap"
    assert np.delete(y, 5).tolist() == [loss for i, loss in enumerate(losses) if i != 5]
    assert per_step.get_linewidth() < per_epoch.get_linewidth()
    assert (per_step.get_alpha() or 1.0) < 1.0
    assert per_step.get_zorder() < per_epoch.get_zorder()
    assert per_step.get_color() == per_epoch.get_color()
    # The first step, a quarter into epoch 1, is inside the frame, and both panels share one epoch axis.
    assert loss_ax.get_xlim()[0] <= 0.25
    assert acc_ax.get_xlim() == loss_ax.get_xlim()
    assert loss_ax.get_ylim()[1] >= 2.31


def test_curves_show_steps_before_the_first_epoch_ends(tmp_path: Path, drawn: list[Figure]) -> None:
    path = tmp_path / "curves.png"
    charts.draw_curves([], path, title="job 7", steps=[(0.25, 2.31), (0.5, 2.2)], epochs_total=5)
    assert_readable_png(path)
    fig = drawn[0]
    assert fig.get_suptitle() == "job 7 — epoch 0 of 5"
    loss_ax = fig.axes[0]
    per_step = next(line for line in loss_ax.get_lines() if line.get_label() == "train loss per step")
    assert np.asarray(per_step.get_ydata()).tolist() == [2.31, 2.2]
    assert len(loss_ax.get_yticks()) > 0, "the steps need a loss scale"


# --- conv1 ----------------------------------------------------------------------------------------------


def test_conv1_mosaic_places_each_kernel_between_separator_lines(rng: np.random.Generator) -> None:
    weights = conv1_weights(rng)
    mosaic = kernels.conv1_mosaic(weights, diff=False)
    assert mosaic.shape == (CONV1_SIDE, CONV1_SIDE, 3)
    separators = [12 * k for k in range(9)]  # every 11 pixels of kernel plus 1 of gap
    assert (mosaic[separators, :, :] == kernels.RGB_SEPARATOR).all()
    assert (mosaic[:, separators, :] == kernels.RGB_SEPARATOR).all()
    assert kernels.tile_origin(0, 11) == (1, 1)
    assert kernels.tile_origin(9, 11) == (13, 13)  # second row, second column
    assert kernels.tile_origin(63, 11) == (85, 85)
    kernel9 = weights[9].transpose(1, 2, 0).astype(np.float64)
    expected = (kernel9 - kernel9.min()) / (kernel9.max() - kernel9.min())
    np.testing.assert_allclose(mosaic[13:24, 13:24], expected, rtol=1e-6)


def test_conv1_mosaic_scales_every_kernel_to_its_own_full_range(rng: np.random.Generator) -> None:
    weights = conv1_weights(rng)
    weights[5] *= 100  # one loud kernel must not wash out the others
    mosaic = kernels.conv1_mosaic(weights, diff=False)
    for index in range(64):
        row, col = kernels.tile_origin(index, 11)
        tile = mosaic[row : row + 11, col : col + 11]
        assert tile.min() == pytest.approx(0.0)
        assert tile.max() == pytest.approx(1.0)


def test_conv1_mosaic_draws_a_constant_kernel_mid_grey(rng: np.random.Generator) -> None:
    weights = conv1_weights(rng)
    weights[0] = 0.3
    mosaic = kernels.conv1_mosaic(weights, diff=False)
    assert (mosaic[1:12, 1:12] == 0.5).all()


def test_conv1_diff_mosaic_uses_one_symmetric_scale_around_grey() -> None:
    diff = np.zeros(kernels.CONV1_SHAPE, dtype=np.float32)
    diff[0, 0, 0, 0] = 0.2  # the largest change: full red in the first pixel
    diff[1, 2, 0, 0] = -0.1  # half as large the other way: blue channel at a quarter
    mosaic = kernels.conv1_mosaic(diff, diff=True)
    assert mosaic[1, 1].tolist() == pytest.approx([1.0, 0.5, 0.5])
    row, col = kernels.tile_origin(1, 11)
    assert mosaic[row, col].tolist() == pytest.approx([0.5, 0.5, 0.25])
    assert mosaic[row + 5, col + 5].tolist() == [0.5, 0.5, 0.5]


def test_conv1_zero_diff_draws_every_tile_neutral_grey(tmp_path: Path) -> None:
    zeros = np.zeros(kernels.CONV1_SHAPE, dtype=np.float32)
    mosaic = kernels.conv1_mosaic(zeros, diff=True)
    tiles = mosaic[mosaic != kernels.RGB_SEPARATOR]
    assert tiles.size == 64 * 11 * 11 * 3
    assert (tiles == 0.5).all()

    path = tmp_path / "conv1_diff.png"
    kernels.draw_conv1(zeros, "diff", 3, path)
    pixels = read_png(path).reshape(-1, 3)
    grey = (np.abs(pixels - 128).max(axis=1) <= 1).mean()
    white = (pixels == 255).all(axis=1).mean()
    assert grey > 0.5, "the kernel tiles should cover most of the picture in neutral grey"
    assert white > 0.05, "the white separators and margins should be there"


def test_conv1_initial_and_trained_pictures_differ(
    tmp_path: Path, rng: np.random.Generator, drawn: list[Figure]
) -> None:
    initial = conv1_weights(rng)
    trained = initial + rng.normal(0.0, 0.02, initial.shape).astype(np.float32)
    kernels.draw_conv1(initial, "initial", 0, tmp_path / "initial.png")
    kernels.draw_conv1(trained, "trained", 2, tmp_path / "trained.png")
    kernels.draw_conv1(trained - initial, "diff", 2, tmp_path / "diff.png")
    before, after, change = (assert_readable_png(tmp_path / f"{n}.png") for n in ("initial", "trained", "diff"))
    assert np.abs(before - after).mean() > 1.0
    # The change picture is taller by its scale bar; the grids above it are what must differ.
    assert np.abs(after - change[: after.shape[0]]).mean() > 1.0
    assert [fig.get_suptitle() for fig in drawn] == [
        "conv1 — 64 kernels 11×11 RGB — initial (before training)",
        "conv1 — 64 kernels 11×11 RGB — trained (epoch 2)",
        "conv1 — 64 kernels 11×11 RGB — change (trained − initial), epoch 2",
    ]
    assert drawn[0].axes[0].get_title() == "each kernel scaled to its own range"
    assert "max |Δ|" in drawn[2].axes[0].get_title()


def test_conv1_diff_has_a_grey_scale_bar_that_maps_change_as_the_mosaic_does(
    tmp_path: Path, drawn: list[Figure]
) -> None:
    diff = np.zeros(kernels.CONV1_SHAPE, dtype=np.float32)
    diff[0, 0, 0, 0] = 0.2
    diff[1, 2, 0, 0] = -0.1
    kernels.draw_conv1(diff, "diff", 3, tmp_path / "diff.png")
    fig = drawn[0]
    grid_ax, bar_ax = fig.axes
    assert "R, G and B each show their own Δ" in grid_ax.get_title()
    assert bar_ax.get_xlabel() == "Δ weight, per colour channel"
    assert [t.get_text() for t in bar_ax.get_xticklabels()] == ["−0.2", "0 (grey: no change)", "+0.2"]
    ramp = next(c for c in bar_ax.collections if isinstance(c, QuadMesh))
    mosaic = kernels.conv1_mosaic(diff, diff=True)
    row, col = kernels.tile_origin(1, 11)
    # The bar's colour for a change is the grey level the mosaic gives any one channel with that change.
    for change, shade in [(0.2, mosaic[1, 1, 0]), (-0.1, mosaic[row, col, 2]), (0.0, mosaic[row + 5, col + 5, 1])]:
        assert ramp.to_rgba(change)[:3] == pytest.approx((shade,) * 3, abs=0.01)
    assert ramp.norm.vmin == pytest.approx(-0.2)
    assert ramp.norm.vmax == pytest.approx(0.2)


@pytest.mark.parametrize("layer", ["conv1", "conv1 diff", "conv2"])
def test_kernel_pixels_are_drawn_as_squares_of_at_least_seven_screen_pixels(
    tmp_path: Path, rng: np.random.Generator, drawn: list[Figure], layer: str
) -> None:
    if layer.startswith("conv1"):
        kernels.draw_conv1(conv1_weights(rng), "diff" if "diff" in layer else "trained", 1, tmp_path / "grid.png")
        side = CONV1_SIDE
    else:
        kernels.draw_conv2(rng.normal(size=kernels.CONV2_SHAPE), "trained", 1, 0, tmp_path / "grid.png")
        side = CONV2_SIDE
    assert_readable_png(tmp_path / "grid.png")
    ax = drawn[0].axes[0]
    box = ax.get_window_extent()  # in screen pixels, as laid out when the PNG was drawn
    assert box.width / side >= 7
    assert box.height / side >= 7
    assert box.width == pytest.approx(box.height, rel=0.01)  # square pixels
    assert ax.get_images()[0].get_interpolation() == "nearest"
    assert not ax.axison


# --- conv2 ----------------------------------------------------------------------------------------------


def test_conv2_mosaic_keeps_raw_weights_with_nan_separators(rng: np.random.Generator) -> None:
    weights = rng.normal(0.0, 0.02, kernels.CONV2_SHAPE).astype(np.float32)
    mosaic = kernels.conv2_mosaic(weights)
    assert mosaic.shape == (CONV2_SIDE, CONV2_SIDE)
    separators = [6 * k for k in range(9)]
    assert np.isnan(mosaic[separators, :]).all()
    assert np.isnan(mosaic[:, separators]).all()
    assert np.isnan(mosaic).sum() == CONV2_SIDE**2 - 64 * 25
    row, col = kernels.tile_origin(10, 5)
    assert (row, col) == (7, 13)
    np.testing.assert_array_equal(mosaic[row : row + 5, col : col + 5], weights[10])


def test_conv2_initial_and_trained_share_one_colour_scale_and_differ(
    tmp_path: Path, rng: np.random.Generator, drawn: list[Figure]
) -> None:
    initial = rng.normal(0.0, 0.02, kernels.CONV2_SHAPE).astype(np.float32)
    trained = initial + rng.normal(0.0, 0.01, initial.shape).astype(np.float32)
    kernels.draw_conv2(initial, "initial", 0, 4, tmp_path / "initial.png")
    kernels.draw_conv2(trained, "trained", 5, 4, tmp_path / "trained.png")
    before, after = (
        assert_readable_png(tmp_path / "initial.png"),
        assert_readable_png(tmp_path / "trained.png"),
    )
    assert np.abs(before - after).mean() > 1.0
    fig = drawn[1]
    assert fig.get_suptitle() == "conv2 filter 4 — 64 input slices 5×5 — trained (epoch 5)"
    image = fig.axes[0].get_images()[0]
    assert image.get_clim() == pytest.approx((trained.min(), trained.max()))
    assert image.get_interpolation() == "nearest"
    assert fig.axes[1].get_ylabel() == "weight"  # the colourbar


def test_conv2_diff_uses_a_symmetric_diverging_scale(
    tmp_path: Path, rng: np.random.Generator, drawn: list[Figure]
) -> None:
    change = rng.normal(0.0, 0.01, kernels.CONV2_SHAPE).astype(np.float32)
    kernels.draw_conv2(change, "diff", 2, 0, tmp_path / "diff.png")
    assert_readable_png(tmp_path / "diff.png")
    fig = drawn[0]
    assert fig.get_suptitle() == "conv2 filter 0 — 64 input slices 5×5 — change (trained − initial), epoch 2"
    image = fig.axes[0].get_images()[0]
    peak = float(np.abs(change).max())
    assert image.get_clim() == pytest.approx((-peak, peak))
    assert image.get_cmap().name.startswith("RdBu_r")
    assert fig.axes[1].get_ylabel() == "Δ weight"


def test_conv2_zero_diff_draws_every_slice_in_the_neutral_colour(tmp_path: Path) -> None:
    path = tmp_path / "diff.png"
    kernels.draw_conv2(np.zeros(kernels.CONV2_SHAPE, dtype=np.float32), "diff", 1, 0, path)
    pixels = read_png(path).reshape(-1, 3)
    neutral = np.array(matplotlib.colormaps["RdBu_r"](0.5)[:3]) * 255
    share = (np.abs(pixels - neutral).max(axis=1) <= 2).mean()
    assert share > 0.3, "the slices should be drawn in the colour of zero change"


# --- confusion matrix -----------------------------------------------------------------------------------

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
    charts.draw_confusion(matrix.tolist(), CLASSES, 7, path, title="job 7")
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
    charts.draw_confusion(strong_diagonal().tolist(), CLASSES, 7, tmp_path / "confusion.png", title="job 7")
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
    charts.draw_confusion(matrix.tolist(), CLASSES, 1, tmp_path / "confusion.png")
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
    charts.draw_confusion(matrix, ["a", "b", "c"], 2, tmp_path / "confusion.png")
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
        charts.draw_confusion(matrix, classes, 1, tmp_path / "x.png")
    assert not tmp_path.joinpath("x.png").exists()


# --- weight change --------------------------------------------------------------------------------------

LAYERS = list(LAYER_NAMES)


def weight_change_epochs(count: int) -> list[dict[str, Any]]:
    """Layer i moves 10^-(1 + i/3) of its size per epoch; from initialisation that grows with √epoch."""
    return [
        {
            "epoch": epoch,
            "weight_change": {
                layer: {"from_initial": 10 ** -(1 + i / 3) * epoch**0.5, "from_previous": 10 ** -(1 + i / 3) / epoch}
                for i, layer in enumerate(LAYERS)
            },
        }
        for epoch in range(1, count + 1)
    ]


def test_weight_change_draws_one_line_per_layer_in_two_log_panels(tmp_path: Path, drawn: list[Figure]) -> None:
    epochs = weight_change_epochs(5)
    path = tmp_path / "weight_change.png"
    charts.draw_weight_change(epochs, path, title="job 7")
    assert_readable_png(path)
    fig = drawn[0]
    assert fig.get_suptitle() == "job 7 — relative weight change per layer"
    initial_ax, previous_ax = fig.axes
    assert "W_0" in initial_ax.get_title()
    assert "previous epoch" in previous_ax.get_title()
    expected_labels = [
        "conv1 (features.0)",
        "conv2 (features.3)",
        "conv3 (features.6)",
        "conv4 (features.8)",
        "conv5 (features.10)",
        "fc1 (classifier.1)",
        "fc2 (classifier.4)",
        "fc3 (classifier.6)",
    ]
    for ax, key in [(initial_ax, "from_initial"), (previous_ax, "from_previous")]:
        assert ax.get_yscale() == "log"
        assert ax.get_xlabel() == "epoch"
        assert "relative change" in ax.get_ylabel()
        lines = ax.get_lines()
        assert [line.get_label() for line in lines] == expected_labels
        for line, layer in zip(lines, LAYERS, strict=True):
            assert np.asarray(line.get_xdata()).tolist() == [1, 2, 3, 4, 5]
            expected = [e["weight_change"][layer][key] for e in epochs]
            assert np.asarray(line.get_ydata()).tolist() == pytest.approx(expected)
        low, high = ax.get_xlim()
        assert [tick for tick in ax.get_xticks() if low <= tick <= high] == [1, 2, 3, 4, 5]
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == expected_labels
    # Fully connected layers are dashed so that eight lines can be told apart by more than colour.
    assert {line.get_linestyle() for line in initial_ax.get_lines()[:5]} == {"-"}
    assert {line.get_linestyle() for line in initial_ax.get_lines()[5:]} == {"--"}


def test_weight_change_leaves_a_gap_for_a_layer_that_did_not_move(tmp_path: Path, drawn: list[Figure]) -> None:
    epochs = weight_change_epochs(3)
    epochs[1]["weight_change"]["classifier.6"]["from_previous"] = 0.0
    epochs[2]["weight_change"]["classifier.6"]["from_previous"] = float("inf")
    charts.draw_weight_change(epochs, tmp_path / "weight_change.png")
    fig = drawn[0]
    assert fig.get_suptitle() == "Relative weight change per layer"
    fc3 = fig.axes[1].get_lines()[-1]
    y = np.asarray(fc3.get_ydata(), dtype=np.float64)
    assert np.isfinite(y[0]) and np.isnan(y[1]) and np.isnan(y[2])
    assert np.isfinite(fig.axes[1].get_ylim()).all()


def test_weight_change_with_no_epochs_draws_empty_panels_with_a_note(tmp_path: Path, drawn: list[Figure]) -> None:
    path = tmp_path / "weight_change.png"
    charts.draw_weight_change([], path)
    assert_readable_png(path)
    for ax in drawn[0].axes:
        assert [text.get_text() for text in ax.texts] == ["no epoch finished yet"]
        assert len(ax.get_yticks()) == 0
        assert len(ax.get_yticks(minor=True)) == 0


# --- validation and atomic writes -----------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(64, 3, 5, 5), (3, 11, 11), (32, 3, 11, 11), (64, 1, 11, 11)])
def test_conv1_with_a_wrong_shape_raises_value_error(tmp_path: Path, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"shape \(64, 3, 11, 11\)"):
        kernels.draw_conv1(np.zeros(shape, dtype=np.float32), "initial", 0, tmp_path / "x.png")
    assert not tmp_path.joinpath("x.png").exists()


@pytest.mark.parametrize("shape", [(64, 3, 5, 5), (5, 5), (64, 5, 6), (63, 5, 5)])
def test_conv2_with_a_wrong_shape_raises_value_error(tmp_path: Path, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"shape \(64, 5, 5\)"):
        kernels.draw_conv2(np.zeros(shape, dtype=np.float32), "initial", 0, 0, tmp_path / "x.png")


def test_unknown_stage_and_nan_weights_raise_value_error(tmp_path: Path) -> None:
    weights = np.zeros(kernels.CONV2_SHAPE, dtype=np.float32)
    with pytest.raises(ValueError, match="stage must be one of"):
        kernels.draw_conv2(weights, "final", 1, 0, tmp_path / "x.png")
    weights[3, 2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        kernels.draw_conv2(weights, "trained", 1, 0, tmp_path / "x.png")


def test_writes_create_folders_and_leave_no_temp_files(tmp_path: Path, rng: np.random.Generator) -> None:
    folder = tmp_path / "jobs" / "7"
    charts.draw_curves(THREE_EPOCHS, folder / "curves.png")
    charts.draw_curves(THREE_EPOCHS[:2], folder / "curves.png")  # overwrite in place
    kernels.draw_conv1(conv1_weights(rng), "initial", 0, folder / "conv1_initial.png")
    assert sorted(p.name for p in folder.iterdir()) == ["conv1_initial.png", "curves.png"]


def test_a_failed_write_keeps_the_old_picture_and_removes_the_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "curves.png"
    charts.draw_curves(THREE_EPOCHS, path)
    before = path.read_bytes()

    def half_written(self: Figure, fname: Path, **kwargs: object) -> None:
        Path(fname).write_bytes(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", half_written)
    with pytest.raises(OSError, match="disk full"):
        charts.draw_curves(THREE_EPOCHS[:1], path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]
