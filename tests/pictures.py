"""What the picture tests share: a PNG read back and checked, and epoch records made from the few numbers a chart
draws."""

from pathlib import Path

import numpy as np
from PIL import Image

from service.contracts import EpochRecord, WeightChange


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
