"""The kernel grids (worker/pictures/kernels.py): conv1's 64 RGB kernels and a conv2 filter's 64 slices, each stage
on the scale that shows it, and what they refuse to draw."""

from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.collections import QuadMesh
from matplotlib.figure import Figure

from tests.pictures import assert_readable_png, read_png
from worker.pictures import kernels

# 11×11 tiles plus 1-pixel separators on both sides of each: 8·11 + 9.
CONV1_SIDE = 97
CONV2_SIDE = 49


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def conv1_weights(rng: np.random.Generator) -> np.ndarray:
    return rng.normal(0.0, 0.05, kernels.CONV1_SHAPE).astype(np.float32)


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
