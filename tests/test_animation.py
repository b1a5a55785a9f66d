"""The kernels' evolution (worker/pictures/evolution.py): one GIF frame per epoch, each showing that epoch's grid;
its size, its files and what it refuses."""

from itertools import pairwise
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image, ImageSequence

from tests.pictures import drifting, grid_of, kernel_pixels, read_frames
from worker.pictures import evolution, kernels


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


# --- frames ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layer", ["conv1", "conv2"])
@pytest.mark.parametrize("stage", ["trained", "diff"])
@pytest.mark.parametrize("epochs", [0, 4])
def test_one_frame_per_epoch_from_the_initial_weights_and_the_last_held_longer(
    tmp_path: Path, rng: np.random.Generator, layer: str, stage: str, epochs: int
) -> None:
    path = tmp_path / "evolution.gif"
    evolution.draw_evolution(layer, stage, drifting(rng, layer, epochs), path)
    with Image.open(path) as image:
        assert image.n_frames == epochs + 1
        durations = []
        for frame in ImageSequence.Iterator(image):
            durations.append(frame.info["duration"])
    assert durations == [evolution.FRAME_MS] * epochs + [evolution.LAST_FRAME_MS]
    assert evolution.LAST_FRAME_MS > evolution.FRAME_MS


def test_each_conv1_frame_shows_that_epochs_kernels_in_squares_of_several_pixels(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    history = drifting(rng, "conv1", 3)
    path = tmp_path / "conv1.gif"
    evolution.draw_evolution("conv1", "trained", history, path)
    scale = evolution.SCALE["conv1"]
    assert scale >= 5
    for epoch, frame in enumerate(read_frames(path)):
        grid = grid_of(frame, "conv1")
        pixels = kernel_pixels(frame, "conv1")
        # Every kernel pixel is a flat scale×scale square: nearest-neighbour, no blur.
        np.testing.assert_array_equal(grid, pixels.repeat(scale, axis=0).repeat(scale, axis=1))
        expected = 255 * kernels.conv1_mosaic(history[epoch], diff=False)
        # 256 colours for ~7,700 random RGB kernel pixels: close, not exact.
        assert np.abs(pixels - expected).mean() < 10
        assert np.abs(pixels - expected).max() < 80


def test_each_conv2_frame_shows_the_slices_on_that_epochs_own_shared_scale(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    history = drifting(rng, "conv2", 2)
    history[2] = 3 * history[2]  # a louder epoch is stretched onto the same colours, not washed out
    path = tmp_path / "conv2.gif"
    evolution.draw_evolution("conv2", "trained", history, path, filter_index=5)
    separator = np.rint(255 * np.asarray(to_rgb(kernels.CMAP_SEPARATOR)))
    for epoch, frame in enumerate(read_frames(path)):
        image = kernels.conv2_mosaic(history[epoch])
        low, high = np.nanmin(image), np.nanmax(image)
        expected = np.rint(matplotlib.colormaps["viridis"]((image - low) / (high - low))[..., :3] * 255)
        pixels = kernel_pixels(frame, "conv2")
        tiles = ~np.isnan(image)
        assert np.abs(pixels[tiles] - expected[tiles]).mean() < 4
        assert (pixels[~tiles] == separator).all()


def test_frames_change_where_the_weights_change_and_the_caption_every_epoch(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    history = drifting(rng, "conv1", 3)
    history[2] = history[1].copy()  # epoch 2 changed nothing
    path = tmp_path / "conv1.gif"
    evolution.draw_evolution("conv1", "trained", history, path)
    frames = read_frames(path)
    assert len(frames) == 4
    grids = [grid_of(frame, "conv1") for frame in frames]
    captions = [frame[: evolution.grid_box("conv1")[1]] for frame in frames]
    assert not np.array_equal(grids[0], grids[1])
    np.testing.assert_array_equal(grids[1], grids[2])
    assert not np.array_equal(grids[2], grids[3])
    for before, after in pairwise(captions):
        assert not np.array_equal(before, after), "each frame's caption names its own epoch"


def test_frame_caption_names_layer_stage_and_epoch_of_how_many() -> None:
    assert evolution.frame_caption("conv1", "trained", 3, 12) == (
        "conv1 — 64 kernels 11×11 RGB — weights\nepoch 3 of 12"
    )
    assert evolution.frame_caption("conv2", "diff", 0, 12, filter_index=7) == (
        "conv2 filter 7 — 64 slices 5×5 — change since initialisation\nepoch 0 of 12 (before training)"
    )


# --- size, files and bad input --------------------------------------------------------------------------


def test_a_fifty_epoch_conv1_gif_stays_a_few_megabytes(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "long.gif"
    # Random kernels are the worst case for GIF compression: 5.2 MB with 6-pixel squares.
    evolution.draw_evolution("conv1", "trained", drifting(rng, "conv1", 50), path)
    with Image.open(path) as image:
        assert image.n_frames == 51
    assert path.stat().st_size < 6_000_000


def test_writes_create_folders_and_leave_no_temp_files(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "a" / "b" / "conv2.gif"
    evolution.draw_evolution("conv2", "trained", drifting(rng, "conv2", 1), path)
    assert [p.name for p in path.parent.iterdir()] == ["conv2.gif"]


@pytest.mark.parametrize(
    ("layer", "stage"), [("conv3", "trained"), ("conv1", "initial"), ("conv2", "change"), ("CONV1", "diff")]
)
def test_an_unknown_layer_or_stage_raises_value_error(
    tmp_path: Path, rng: np.random.Generator, layer: str, stage: str
) -> None:
    with pytest.raises(ValueError, match="must be one of"):
        evolution.draw_evolution(layer, stage, drifting(rng, "conv1", 1), tmp_path / "x.gif")
    with pytest.raises(ValueError, match="must be one of"):
        evolution.frame_caption(layer, stage, 1, 2)
    assert not (tmp_path / "x.gif").exists()


def test_bad_histories_raise_value_error_and_write_nothing(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "x.gif"
    good = drifting(rng, "conv1", 2)
    with pytest.raises(ValueError, match="at least the initial weights"):
        evolution.draw_evolution("conv1", "trained", [], path)
    with pytest.raises(ValueError, match=r"epoch 2 must have shape \(64, 3, 11, 11\)"):
        evolution.draw_evolution("conv1", "diff", [*good[:2], good[2][:32]], path)
    with pytest.raises(ValueError, match=r"epoch 0 must have shape \(64, 5, 5\)"):
        evolution.draw_evolution("conv2", "trained", good, path)
    broken = good[1].copy()
    broken[3, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="epoch 1 contain NaN"):
        evolution.draw_evolution("conv1", "trained", [good[0], broken], path)
    assert not path.exists()
