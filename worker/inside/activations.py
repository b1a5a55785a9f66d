"""What each convolution of AlexNet makes of an image: its feature maps after the ReLU, the strongest channels,
and which input pixels a feature-map position sees (its receptive field).

Pure functions over a model and a batch; the layers are torchvision's `features` Sequential, named conv1…conv5 as
`worker.measures.LAYER_NAMES` names them.
"""

from dataclasses import dataclass

import torch
from torch import nn

from worker.measures import LAYER_NAMES

CONV_LAYERS = tuple(name for name in LAYER_NAMES.values() if name.startswith("conv"))
# The activation people mean by "conv3's output" is the rectified one: the ReLU right after each convolution, which
# in torchvision's AlexNet is the next module of `features`.
RELU_INDEX = {name: int(layer.split(".")[1]) + 1 for layer, name in LAYER_NAMES.items() if name in CONV_LAYERS}
# The strongest channels shown per layer: a row of 16 maps is readable side by side; conv1 alone has 64.
SHOWN_CHANNELS = 16


def feature_maps(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each convolution's ReLU'd output (N, C, H, W) for the batch `x` (N, 3, S, S), conv1 first."""
    features = model.get_submodule("features")
    assert isinstance(features, nn.Sequential)
    maps: dict[str, torch.Tensor] = {}
    last = max(RELU_INDEX.values())
    by_index = {index: name for name, index in RELU_INDEX.items()}
    h = x
    for index, module in enumerate(features):
        if index > last:
            break
        h = module(h)
        if index in by_index:
            # The next convolution reads `h` and writes a new tensor; the ReLUs work in place on their own input
            # only, so what is kept here is never overwritten.
            maps[by_index[index]] = h
    return maps


def classify(model: nn.Module, conv5: torch.Tensor) -> torch.Tensor:
    """The logits (N, classes) from conv5's rectified maps: the rest of the network (a max-pool, the classifier)."""
    features = model.get_submodule("features")
    assert isinstance(features, nn.Sequential)
    pooled = model.get_submodule("avgpool")(features[RELU_INDEX["conv5"] + 1 :](conv5))
    logits: torch.Tensor = model.get_submodule("classifier")(torch.flatten(pooled, 1))
    return logits.float()


def strongest_channels(means: torch.Tensor, count: int = SHOWN_CHANNELS) -> list[int]:
    """The `count` channels with the highest mean activation (`means`: one per channel), strongest first."""
    order = torch.sort(means, descending=True, stable=True).indices
    return order[:count].tolist()


@dataclass(frozen=True)
class ReceptiveField:
    """Which input pixels a position of a layer's map sees: `size` pixels square, centred at `start + i * jump`."""

    size: float
    jump: float
    start: float

    def box(self, y: int, x: int) -> tuple[float, float, float, float]:
        """The input region (x0, y0, x1, y1) position (y, x) of the map sees, in input pixels; padding included."""
        cy, cx = self.start + y * self.jump, self.start + x * self.jump
        half = self.size / 2
        return (cx - half, cy - half, cx + half, cy + half)


def receptive_field(model: nn.Module, layer: str) -> ReceptiveField:
    """The receptive field of `layer`'s maps, from the kernels, strides and padding of every module before it."""
    features = model.get_submodule("features")
    assert isinstance(features, nn.Sequential)
    # Continuous pixel coordinates: pixel i spans [i, i + 1), so the first pixel's centre is 0.5.
    size, jump, start = 1.0, 1.0, 0.5
    for module in list(features)[: RELU_INDEX[layer] + 1]:
        if isinstance(module, nn.Conv2d | nn.MaxPool2d):
            kernel, stride, padding = (_first(v) for v in (module.kernel_size, module.stride, module.padding))
            start += ((kernel - 1) / 2 - padding) * jump
            size += (kernel - 1) * jump
            jump *= stride
    return ReceptiveField(size, jump, start)


def _first(value: object) -> int:
    # AlexNet's kernels, strides and padding are square, and its padding a number (never "same" or "valid").
    first = value if isinstance(value, int) else value[0] if isinstance(value, tuple) else None
    if not isinstance(first, int):
        raise ValueError(f"expected a size in pixels, got {value!r}")
    return first
