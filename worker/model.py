"""The lecture's building blocks: torchvision's AlexNet with a 10-way head, the upscale, the loss, the optimizer,
and the kernels drawn as pictures."""

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
import torchvision
from torch import nn

from service.spec import JobSpec

NUM_CLASSES = 10


@dataclass
class Kernels:
    """The weights drawn as pictures: conv1's 64 kernels and the 64 input slices of one conv2 filter."""

    conv1: np.ndarray  # (64, 3, 11, 11)
    conv2: np.ndarray  # (64, 5, 5)


def build_model(device: torch.device, seed: int) -> nn.Module:
    """torchvision's AlexNet (random init, seeded) with its last layer replaced by Linear(4096, 10)."""
    torch.manual_seed(seed)
    with torch.device(device):
        model = torchvision.models.alexnet(weights=None)
        model.classifier[6] = nn.Linear(4096, NUM_CLASSES)
    return model


def upscale(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, 3, 32, 32) → float (N, 3, size, size) in [0, 1], as PIL's bilinear Resize + ToTensor give."""
    return upscale_levels(images, size).div_(255)  # a division, as ToTensor does: × 1/255 can differ in the last bit


def upscale_levels(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, 3, 32, 32) → float (N, 3, size, size) of whole levels 0–255, as PIL's bilinear Resize gives.

    PIL enlarges in two passes, rows then columns, rounding half up to whole levels after each. At
    whole-number scales (64, 96, …, 224 = 7 × 32) doing the same reproduces its pixels exactly, so the
    lecture's pipeline and this one see the same images. At other scales the two roundings can each land
    on the other side of a tie from PIL's fixed-point arithmetic, so one pass rounded once is used, which
    keeps every pixel within one level of PIL's. Each pass is one batched call on the training device.
    """
    x = images.float()
    if size % images.shape[-1] == 0:
        x = F.interpolate(x, size=(images.shape[-2], size), mode="bilinear", align_corners=False).add_(0.5).floor_()
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).add_(0.5).floor_()


class ChannelPaddedConv2d(nn.Conv2d):
    """A Conv2d that takes inputs with extra zero channels after its own: its weight is padded with zeros to
    match on the way in, so the result is the unpadded convolution's while the shapes suit tensor cores better.
    The parameter keeps its shape, and the state_dict its keys."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        extra = x.shape[1] - self.in_channels
        weight = F.pad(self.weight, (0, 0, 0, 0, 0, extra)) if extra > 0 else self.weight
        return self._conv_forward(x, weight, self.bias)


def pad_conv1(model: nn.Module) -> None:
    """Let conv1 take inputs padded with zero channels (`ChannelPaddedConv2d`), keeping its parameters."""
    conv = model.get_submodule("features.0")
    assert isinstance(conv, nn.Conv2d)
    if isinstance(conv, ChannelPaddedConv2d):
        return
    padded = ChannelPaddedConv2d(3, 64, kernel_size=11, stride=4, padding=2, device="meta")  # torchvision's conv1
    assert (padded.kernel_size, padded.stride, padded.padding) == (conv.kernel_size, conv.stride, conv.padding)
    padded.weight, padded.bias = conv.weight, conv.bias
    features = model.get_submodule("features")
    assert isinstance(features, nn.Sequential)
    features[0] = padded


def lecture_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """NLL on log-softmax, computed in fp32 whatever the autocast precision."""
    return F.nll_loss(F.log_softmax(logits.float(), dim=1), labels, reduction=reduction)


def make_optimizer(cfg: JobSpec, model: nn.Module, device: torch.device) -> torch.optim.Optimizer:
    """Adam, or SGD with momentum 0.9; the fused single-kernel variants, which exist on CUDA and CPU."""
    params = model.parameters()
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.learning_rate, fused=True)
    return torch.optim.SGD(params, lr=cfg.learning_rate, momentum=0.9, fused=True)


def kernels(model: nn.Module, conv2_filter: int) -> Kernels:
    """Copies of conv1's weights and one conv2 filter's, as float32 numpy arrays."""
    conv1_layer, conv2_layer = model.get_submodule("features.0"), model.get_submodule("features.3")
    assert isinstance(conv1_layer, nn.Conv2d) and isinstance(conv2_layer, nn.Conv2d)
    conv1 = conv1_layer.weight.detach().float().cpu().numpy().copy()
    conv2 = conv2_layer.weight[conv2_filter].detach().float().cpu().numpy().copy()
    return Kernels(conv1=conv1, conv2=conv2)


def steps_per_epoch(train_size: int, batch_size: int) -> int:
    """Like a DataLoader without drop_last: the last, smaller batch counts too."""
    return math.ceil(train_size / batch_size)
