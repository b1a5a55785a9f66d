"""THE REFERENCE: the lecture's training pipeline, reimplemented faithfully. Do not optimise this file.

It is what the service is measured against, so it keeps every choice the lecture made, costly or not:
torchvision's CIFAR10 dataset hands each image to PIL, `Resize(224)` enlarges it (bilinear, on the CPU, one
image at a time) and `ToTensor()` scales it to [0, 1] (no normalisation); a shuffling DataLoader batches
them; the model is torchvision's AlexNet with a 10-way last layer in fp32 and the default memory format;
the loss is `NLLLoss` on `log_softmax`; the optimiser is plain `torch.optim.Adam`; and every step reads its
loss back with `.item()`, as a loop that adds up a running loss does.

The only liberty: the dataset reads arrays already in memory (`worker.data.Dataset`) instead of opening the
CIFAR-10 pickles itself, so both pipelines train on the very same images.
"""

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
import torchvision
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms

NUM_CLASSES = 10


class LectureCIFAR10(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    """CIFAR-10 as `torchvision.datasets.CIFAR10` serves it: an HWC uint8 array → PIL image → transform."""

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, transform: Callable[[Image.Image], torch.Tensor]
    ) -> None:
        self.data = images.transpose(0, 2, 3, 1)  # (N, 32, 32, 3), a view, as torchvision keeps it
        self.targets = [int(v) for v in labels]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        img = Image.fromarray(self.data[index])
        return self.transform(img), self.targets[index]


def lecture_transform(image_size: int) -> transforms.Compose:
    """`Resize(image_size)` (PIL, bilinear) then `ToTensor()`: float in [0, 1], no normalisation."""
    return transforms.Compose([transforms.Resize(image_size), transforms.ToTensor()])


def make_loader(dataset: LectureCIFAR10, batch_size: int, num_workers: int, seed: int) -> DataLoader:
    """A shuffling DataLoader; the lecture's only knob beyond the batch size is `num_workers`."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),  # the bench's order is reproducible; speed is not affected
    )


def lecture_model(device: torch.device) -> nn.Module:
    """torchvision's AlexNet (no pretrained weights) with the last layer swapped for a 10-way one."""
    model = torchvision.models.alexnet(weights=None)
    model.classifier[6] = nn.Linear(4096, NUM_CLASSES)
    return model.to(device)


def lecture_optimizer(model: nn.Module, learning_rate: float) -> torch.optim.Optimizer:
    """Plain Adam with PyTorch's default implementation choices."""
    return torch.optim.Adam(model.parameters(), lr=learning_rate)


criterion = nn.NLLLoss()


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor) -> float:
    """One step as the lecture's loop writes it; returns the batch's mean loss (a device sync per step)."""
    device = next(model.parameters()).device
    images, labels = images.to(device), labels.to(device)
    optimizer.zero_grad()
    output = F.log_softmax(model(images), dim=1)
    loss = criterion(output, labels)
    loss.backward()
    optimizer.step()
    return loss.item()
