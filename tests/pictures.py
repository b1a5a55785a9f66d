"""What the picture tests share: a PNG or GIF read back and checked, kernel histories to animate, and epoch records
made from the few numbers a chart draws."""

from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageSequence

from service.contracts import EpochRecord, WeightChange
from worker.pictures import evolution, kernels


def read_png(path: Path) -> np.ndarray:
    """The PNG at `path` as float64 RGB pixels."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"), dtype=np.float64)


def assert_readable_png(path: Path) -> np.ndarray:
    """The PNG is at least 400×400 and not one flat colour; its pixels."""
    pixels = read_png(path)
    height, width, _ = pixels.shape
    assert height >= 400
    assert width >= 400
    assert pixels.std() > 10, "the image is (nearly) one flat colour"
    return pixels


def record(
    epoch: int,
    train_loss: float = 2.0,
    test_loss: float = 2.0,
    test_accuracy: float = 0.1,
    weight_change: dict[str, dict[str, float]] | None = None,
) -> EpochRecord:
    """An epoch's record with these numbers (its time and speed made up: no chart draws them)."""
    return EpochRecord(
        epoch=epoch,
        train_loss=train_loss,
        test_loss=test_loss,
        test_accuracy=test_accuracy,
        seconds=1.0,
        images_per_second=100.0,
        weight_change={layer: WeightChange(**change) for layer, change in (weight_change or {}).items()},
    )


# ---------------------------------------------------------------- GIFs of kernel histories

SHAPES = {"conv1": kernels.CONV1_SHAPE, "conv2": kernels.CONV2_SHAPE}


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
