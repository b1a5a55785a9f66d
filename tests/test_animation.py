"""Tests for worker/evolution.py: one GIF frame per epoch, each showing that epoch's grid, diffs on one scale."""

from itertools import pairwise
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image, ImageSequence

from worker.pictures import evolution, kernels

SHAPES = {"conv1": kernels.CONV1_SHAPE, "conv2": kernels.CONV2_SHAPE}


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def drifting(rng: np.random.Generator, layer: str, epochs: int) -> list[np.ndarray]:
    """Random initial weights, then a random step per epoch: every epoch's weights differ from the last."""
    shape = SHAPES[layer]
    history = [rng.normal(0.0, 0.05, shape)]
    for _ in range(epochs):
        history.append(history[-1] + rng.normal(0.0, 0.01, shape))
    return history


def read_frames(path: Path) -> list[np.ndarray]:
    with Image.open(path) as image:
        assert image.format == "GIF"
        return [np.asarray(frame.convert("RGB"), dtype=np.int64) for frame in ImageSequence.Iterator(image)]


def grid_of(frame: np.ndarray, layer: str) -> np.ndarray:
    left, top, right, bottom = evolution.grid_box(layer)
    return frame[top:bottom, left:right]


def kernel_pixels(frame: np.ndarray, layer: str) -> np.ndarray:
    """The grid at mosaic resolution: one screen pixel from each kernel-pixel square."""
    return grid_of(frame, layer)[:: evolution.SCALE[layer], :: evolution.SCALE[layer]]


def tile_centre(frame: np.ndarray, layer: str, index: int) -> np.ndarray:
    size = SHAPES[layer][-1]
    row, col = kernels.tile_origin(index, size)
    return kernel_pixels(frame, layer)[row + size // 2, col + size // 2]


def colour(cmap: str, position: float) -> np.ndarray:
    return np.rint(np.asarray(matplotlib.colormaps[cmap](position)[:3]) * 255)


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


# --- diff: one scale for all frames ---------------------------------------------------------------------


def test_conv1_diff_first_frame_is_every_tile_no_change_grey(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "conv1_diff.gif"
    evolution.draw_evolution("conv1", "diff", drifting(rng, "conv1", 2), path)
    first, *later = read_frames(path)
    separators = kernels.conv1_mosaic(np.zeros(kernels.CONV1_SHAPE), diff=True) == kernels.RGB_SEPARATOR
    pixels = kernel_pixels(first, "conv1")
    assert (pixels[~separators] == 128).all()
    assert (pixels[separators] == 255).all()
    assert (kernel_pixels(later[0], "conv1")[~separators] != 128).any()


def test_conv2_diff_first_frame_is_every_slice_no_change_white(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "conv2_diff.gif"
    evolution.draw_evolution("conv2", "diff", drifting(rng, "conv2", 2), path)
    tiles = ~np.isnan(kernels.conv2_mosaic(np.zeros(kernels.CONV2_SHAPE)))
    pixels = kernel_pixels(read_frames(path)[0], "conv2")[tiles]
    assert (np.abs(pixels - colour("RdBu_r", 0.5)) <= 2).all()


def test_conv1_diff_frames_share_one_scale_so_growing_change_deepens(tmp_path: Path, rng: np.random.Generator) -> None:
    initial = rng.normal(0.0, 0.05, kernels.CONV1_SHAPE)
    history = [initial, initial.copy(), initial.copy()]
    history[1][0] += 0.1  # kernel 0 moves up by 0.1, then by 0.2: its change doubles
    history[2][0] += 0.2
    history[1][1] -= 0.1  # kernel 1 moves down by 0.1 and stays there
    history[2][1] -= 0.1
    path = tmp_path / "conv1_diff.gif"
    evolution.draw_evolution("conv1", "diff", history, path)
    _, first, second = read_frames(path)
    # One scale, ±0.2 (the largest change of any epoch): 0.1 is a quarter of the way from grey to white.
    assert tile_centre(first, "conv1", 0) == pytest.approx([191] * 3, abs=3)
    assert tile_centre(second, "conv1", 0) == pytest.approx([255] * 3, abs=3)
    assert tile_centre(first, "conv1", 1) == pytest.approx([64] * 3, abs=3)
    assert tile_centre(second, "conv1", 1) == pytest.approx([64] * 3, abs=3)
    assert tile_centre(second, "conv1", 2) == pytest.approx([128] * 3, abs=1)  # an untouched kernel stays grey


def test_conv2_diff_frames_share_one_scale_so_growing_change_deepens(tmp_path: Path, rng: np.random.Generator) -> None:
    initial = rng.normal(0.0, 0.05, kernels.CONV2_SHAPE)
    history = [initial, initial.copy(), initial.copy()]
    history[1][0] += 0.1
    history[2][0] += 0.2
    history[1][1] -= 0.1
    history[2][1] -= 0.1
    path = tmp_path / "conv2_diff.gif"
    evolution.draw_evolution("conv2", "diff", history, path)
    _, first, second = read_frames(path)
    assert tile_centre(first, "conv2", 0) == pytest.approx(colour("RdBu_r", 0.75), abs=6)
    assert tile_centre(second, "conv2", 0) == pytest.approx(colour("RdBu_r", 1.0), abs=6)
    assert tile_centre(first, "conv2", 1) == pytest.approx(colour("RdBu_r", 0.25), abs=6)
    assert tile_centre(second, "conv2", 1) == pytest.approx(colour("RdBu_r", 0.25), abs=6)


def test_diff_gifs_show_their_scale_under_the_grid_labelled_by_its_peak(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    history = drifting(rng, "conv1", 2)
    louder = [history[0], *(history[0] + 3 * (w - history[0]) for w in history[1:])]
    evolution.draw_evolution("conv1", "diff", history, tmp_path / "quiet.gif")
    evolution.draw_evolution("conv1", "diff", louder, tmp_path / "loud.gif")
    quiet, loud = read_frames(tmp_path / "quiet.gif")[1], read_frames(tmp_path / "loud.gif")[1]
    below = grid_of(quiet, "conv1").shape[0] + evolution.grid_box("conv1")[1]
    bar_row = quiet[below + evolution.MARGIN + evolution.BAR_HEIGHT // 2]
    # The grey ramp runs from black (−max|Δ|) to white (+max|Δ|) in evenly spaced steps, framed on white paper.
    steps = {int(colour("gray", x)[0]) for x in np.linspace(0.0, 1.0, evolution.BAR_STEPS)}
    assert {int(v) for v in bar_row[:, 0]} == steps | {evolution.NOTE_INK[0], evolution.PAPER[0]}
    # Same grid (the same pattern of change, on its own scale), different numbers at the ends of the bar.
    np.testing.assert_array_equal(grid_of(quiet, "conv1"), grid_of(loud, "conv1"))
    labels = slice(below + evolution.MARGIN + evolution.BAR_HEIGHT, None)
    assert not np.array_equal(quiet[labels], loud[labels])


def test_a_history_without_any_change_draws_every_diff_frame_as_no_change(tmp_path: Path) -> None:
    same = [np.full(kernels.CONV1_SHAPE, 0.01)] * 3
    path = tmp_path / "still.gif"
    evolution.draw_evolution("conv1", "diff", same, path)
    frames = read_frames(path)
    assert len(frames) == 3
    tiles = kernels.conv1_mosaic(np.zeros(kernels.CONV1_SHAPE), diff=True) != kernels.RGB_SEPARATOR
    for frame in frames:
        assert (kernel_pixels(frame, "conv1")[tiles] == 128).all()


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
