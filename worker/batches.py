"""Where the batches come from: the dataset on the training device, served a batch at a time as conv1 takes it.

The images stay on the device as uint8 (N, 3, 32, 32); each batch is gathered, upscaled and scaled to [0, 1] there
in one batched call, or, with `Tuning.upscale_once`, upscaled once when training starts and gathered (the upscale
rounds to whole levels, so the two give the same values).
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the usual name

from worker.data import Dataset
from worker.model import upscale, upscale_levels
from worker.tuning import Tuning

log = logging.getLogger("worker")


class DeviceImages:
    """uint8 (N, 3, 32, 32) images on the training device, served a batch at a time as conv1 takes them:
    upscaled to `size`, scaled to [0, 1], channels_last, with zero channels up to `channels`.

    Upscaled once (`once`), they are kept as uint8 (N, size, size, channels) and a batch is a gather and a
    division; otherwise each batch is upscaled when asked for. Either way a batch holds the same values.
    """

    def __init__(self, images: torch.Tensor, size: int, channels: int = 3, once: bool = False) -> None:
        self.source, self.size, self.channels = images, size, channels
        self.stored: torch.Tensor | None = None
        if once:
            need = len(images) * size * size * channels
            free = free_memory(images.device)
            if free is not None and need > free // 2:
                log.info(
                    "upscale_once: %d images at %d px need %.1f GB, more than half the %.1f GB free on %s; "
                    "upscaling batch by batch instead",
                    *(len(images), size, need / 1e9, free / 1e9, images.device),
                )
            else:
                self.stored = self._upscale_all()

    def __len__(self) -> int:
        return len(self.source)

    def batch(self, index: torch.Tensor | slice) -> torch.Tensor:
        """The images at `index` (a tensor of indices or a slice), as float32 (B, channels, size, size)."""
        if self.stored is not None:
            # (B, size, size, C) read as (B, C, size, size): channels_last without a copy
            return self.stored[index].permute(0, 3, 1, 2).div(255)  # uint8 / 255 → float32 in one pass
        x = upscale(self.source[index], self.size)
        if self.channels > x.shape[1]:
            x = F.pad(x, (0, 0, 0, 0, 0, self.channels - x.shape[1]))
        return x.contiguous(memory_format=torch.channels_last)

    def _upscale_all(self, chunk: int = 1024) -> torch.Tensor:
        n, device = len(self.source), self.source.device
        stored = torch.zeros(n, self.size, self.size, self.channels, dtype=torch.uint8, device=device)
        for start in range(0, n, chunk):
            levels = upscale_levels(self.source[start : start + chunk], self.size)  # whole numbers 0–255
            stored[start : start + chunk, :, :, :3] = levels.permute(0, 2, 3, 1).to(torch.uint8)
        return stored


def free_memory(device: torch.device) -> int | None:
    """Bytes free for new tensors on `device`: CUDA's free memory, or the host's available memory."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


@dataclass(frozen=True, eq=False)
class DeviceDataset:
    """A job's dataset on its training device: images served as conv1 takes them, labels as int64."""

    train_images: DeviceImages
    train_labels: torch.Tensor
    test_images: DeviceImages
    test_labels: torch.Tensor
    classes: tuple[str, ...]

    @classmethod
    def load(cls, data: Dataset, device: torch.device, size: int, tuning: Tuning) -> "DeviceDataset":
        """`data` copied to `device`, its images to be served at `size` px as `tuning` says."""

        def on_device(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(array).to(device)

        def images(array: np.ndarray) -> DeviceImages:
            return DeviceImages(on_device(array), size, tuning.conv1_channels, tuning.upscale_once)

        return cls(
            images(data.train_images),
            on_device(data.train_labels),
            images(data.test_images),
            on_device(data.test_labels),
            data.classes,
        )
