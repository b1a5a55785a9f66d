"""The kernels' change as a GIF (worker/pictures/evolution.py): every diff frame on one scale, so that growing change
deepens, from an all-neutral first frame."""

from pathlib import Path

import numpy as np
import pytest

from tests.pictures import colour, drifting, grid_of, kernel_pixels, read_frames, tile_centre
from worker.pictures import evolution, kernels


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


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
