"""Which test images excite a filter most (Zeiler & Fergus 2014): one pass over a job's test images, keeping for
every channel of conv1…conv5 the images whose strongest activation anywhere in the map is highest, and where.

A channel's response to an image is the maximum of its rectified map over all positions: "how hard does this image
drive the filter somewhere". The pass is forward only, in batches, in fp32.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from worker.inside.activations import CONV_LAYERS, feature_maps
from worker.model import upscale

# The images a filter's page shows: a 3×3 grid, as in Zeiler & Fergus's figures.
TOP = 9
# Images per forward pass: 64 at 224 px hold ~60 MB of feature maps, and progress moves every second or so.
BATCH = 64


@dataclass(frozen=True)
class LayerTop:
    """One layer's strongest images per channel, strongest first: each (channels, TOP)."""

    indices: np.ndarray  # int64: which test images (positions in the images given)
    values: np.ndarray  # float32: the channel's maximum activation on that image
    positions: np.ndarray  # int64 (channels, TOP, 2): (y, x) of that maximum in the map
    map_size: int  # the map's height (= width) at this image size


@dataclass(frozen=True)
class FilterIndex:
    """Every conv layer's `LayerTop`, over the first `images` test images."""

    images: int
    layers: dict[str, LayerTop]


Progress = Callable[[int, int], None]


@torch.inference_mode()
def responses(model: nn.Module, images: np.ndarray, image_size: int, progress: Progress | None = None) -> dict:
    """Each layer's (N, C) maximum activations and (N, C) flat positions of them, for uint8 (N, 3, 32, 32) images."""
    n = len(images)
    values: dict[str, list[torch.Tensor]] = {layer: [] for layer in CONV_LAYERS}
    where: dict[str, list[torch.Tensor]] = {layer: [] for layer in CONV_LAYERS}
    sizes: dict[str, int] = {}
    for lo in range(0, n, BATCH):
        batch = torch.from_numpy(images[lo : lo + BATCH])
        x = upscale(batch, image_size).contiguous(memory_format=torch.channels_last)
        for layer, maps in feature_maps(model, x).items():
            best, at = maps.float().flatten(2).max(dim=2)
            values[layer].append(best)
            where[layer].append(at)
            sizes[layer] = maps.shape[-1]
        if progress is not None:
            progress(min(lo + BATCH, n), n)
    return {layer: (torch.cat(values[layer]), torch.cat(where[layer]), sizes[layer]) for layer in CONV_LAYERS}


def build_index(model: nn.Module, images: np.ndarray, image_size: int, progress: Progress | None = None) -> FilterIndex:
    """The strongest TOP of `images` (uint8 (N, 3, 32, 32)) for every channel of every conv layer."""
    layers = {}
    for layer, (values, flat, size) in responses(model, images, image_size, progress).items():
        k = min(TOP, len(values))
        # Stable: among equal responses (a channel silent on many images: all 0) the earlier image comes first.
        order = torch.sort(values, dim=0, descending=True, stable=True).indices[:k]  # (k, C)
        chosen = torch.gather(values, 0, order)
        at = torch.gather(flat, 0, order)
        positions = torch.stack([at // size, at % size], dim=-1)  # (k, C, 2)
        layers[layer] = LayerTop(
            indices=order.T.numpy().astype(np.int64),
            values=chosen.T.numpy().astype(np.float32),
            positions=positions.transpose(0, 1).numpy().astype(np.int64),
            map_size=size,
        )
    return FilterIndex(len(images), layers)


def save_index(index: FilterIndex, path: Path) -> None:
    """Write `index` to `path` (an .npz), whole or not at all."""
    arrays: dict[str, np.ndarray] = {"images": np.asarray(index.images)}
    for layer, top in index.layers.items():
        arrays |= {
            f"{layer}.indices": top.indices,
            f"{layer}.values": top.values,
            f"{layer}.positions": top.positions,
            f"{layer}.map_size": np.asarray(top.map_size),
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    tmp.replace(path)


def load_index(path: Path) -> FilterIndex:
    """An index `save_index` wrote."""
    with np.load(path) as f:
        layers = {
            layer: LayerTop(
                f[f"{layer}.indices"], f[f"{layer}.values"], f[f"{layer}.positions"], int(f[f"{layer}.map_size"])
            )
            for layer in CONV_LAYERS
        }
        return FilterIndex(int(f["images"]), layers)
