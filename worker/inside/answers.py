"""The answers `worker.inside.server` gives, from a loaded model and the image or test images asked about: the
numbers for the JSON twins (`service.contracts`) and, when a picture is asked for, the picture."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from service.contracts import (
    ActivationsAnswer,
    ClassProbability,
    ExplainAnswer,
    FilterAnswer,
    FilterImage,
    LayerActivations,
    Tile,
    WeightsUsed,
)
from worker.inside import figures, filter_figures
from worker.inside.activations import CONV_LAYERS, classify, feature_maps, receptive_field, strongest_channels
from worker.inside.filters import FilterIndex
from worker.inside.gradcam import explain
from worker.model import upscale

TOP_CLASSES = 5


class Unknown(ValueError):
    """The request names something the job does not have (a class, a test image, a channel)."""


def network_input(pixels: np.ndarray, image_size: int) -> torch.Tensor:
    """uint8 (N, 3, 32, 32) → the float (N, 3, S, S) the network is fed, exactly as training feeds a test image."""
    return upscale(torch.from_numpy(np.ascontiguousarray(pixels)), image_size).contiguous(
        memory_format=torch.channels_last
    )


def top5(probabilities: torch.Tensor, classes: Sequence[str]) -> list[ClassProbability]:
    """The most likely classes, best first."""
    order = torch.sort(probabilities, descending=True, stable=True).indices[:TOP_CLASSES].tolist()
    return [ClassProbability(class_=classes[k], probability=float(probabilities[k])) for k in order]


def _pairs(predictions: Sequence[ClassProbability]) -> list[tuple[str, float]]:
    return [(p.class_, p.probability) for p in predictions]


@torch.inference_mode()
def activations(
    model: nn.Module, image: np.ndarray, seen: dict, classes: Sequence[str], out: Path | None, title: str
) -> ActivationsAnswer:
    """Each conv layer's output on one uint8 (3, 32, 32) image: per-channel means, the strongest channels' maps."""
    size = seen["image_size"]
    x = network_input(image[None], size)
    maps = feature_maps(model, x)
    predictions = top5(torch.softmax(classify(model, maps["conv5"])[0], dim=0), classes)
    layers, drawn = [], []
    for row, layer in enumerate(CONV_LAYERS):
        # Contiguous first: reducing the network's channels-last maps over space took 10× as long.
        m = maps[layer][0].float().contiguous()
        means = m.mean(dim=(1, 2))
        shown = strongest_channels(means)
        tiles = [
            Tile(channel=c, mean=float(means[c]), box=box)
            for c, box in zip(shown, figures.tile_boxes(row, len(shown)), strict=True)
        ]
        shape = (int(m.shape[0]), int(m.shape[1]), int(m.shape[2]))
        layers.append(LayerActivations(layer=layer, shape=shape, means=means.tolist(), shown=tiles))
        drawn.append((layer, m[shown].numpy(), shown, shape))
    if out is not None:
        figures.draw_activations(x[0].float().numpy(), drawn, _pairs(predictions), title, out)
    return ActivationsAnswer(**seen, predictions=predictions, layers=layers)


def class_number(name: str | None, classes: Sequence[str]) -> int | None:
    """The class a request names (a class name or its number), None for "the predicted one"; Unknown otherwise."""
    if name is None:
        return None
    if name in classes:
        return list(classes).index(name)
    if name.isdigit() and int(name) < len(classes):
        return int(name)
    raise Unknown(f"no class {name!r}: the job's classes are {', '.join(classes)} (or their numbers 0–9)")


def explanation(
    model: nn.Module,
    image: np.ndarray,
    seen: dict,
    classes: Sequence[str],
    asked: str | None,
    out: Path | None,
    title: str,
) -> ExplainAnswer:
    """Grad-CAM at conv5 and gradient saliency for one uint8 (3, 32, 32) image and a class (the predicted one)."""
    size = seen["image_size"]
    x = network_input(image[None], size)
    found = explain(model, x, class_number(asked, classes))
    predictions = top5(found.probabilities, classes)
    peak = float(found.cam.max())
    cam = found.cam / peak if peak > 0 else found.cam
    name = classes[found.class_index]
    if out is not None:
        figures.draw_explain(
            x[0].float().numpy(),
            found.heat_map(size).numpy(),
            found.saliency.numpy(),
            name,
            asked is not None,
            _pairs(predictions),
            title,
            out,
        )
    return ExplainAnswer(
        **seen,
        predictions=predictions,
        class_name=name,
        class_index=found.class_index,
        probability=float(found.probabilities[found.class_index]),
        cam=cam.tolist(),
        cam_peak=peak,
        saliency_peak=float(found.saliency.max()),
    )


def strongest_images(
    model: nn.Module,
    index: FilterIndex,
    layer: str,
    channel: int,
    test: tuple[np.ndarray, np.ndarray],
    classes: Sequence[str],
    used: WeightsUsed,
    image_size: int,
) -> FilterAnswer:
    """The test images that drive `channel` of `layer` hardest, with where and how hard."""
    top = index.layers[layer]
    if not 0 <= channel < len(top.indices):
        raise Unknown(f"{layer} has channels 0–{len(top.indices) - 1}; there is no channel {channel}")
    field = receptive_field(model, layer)
    images = [
        FilterImage(
            test_index=int(i),
            label=classes[int(test[1][i])],
            activation=float(v),
            position=(int(y), int(x)),
            box=field.box(int(y), int(x)),
        )
        for i, v, (y, x) in zip(top.indices[channel], top.values[channel], top.positions[channel], strict=True)
    ]
    return FilterAnswer(
        used=used,
        layer=layer,
        channel=channel,
        images_looked_at=index.images,
        image_size=image_size,
        images=images,
    )


def draw_filter(answer: FilterAnswer, test_images: np.ndarray, field_size: float, title: str, out: Path) -> None:
    """`answer`'s images as a picture, the receptive field of each one's strongest position outlined."""
    shown = [im.test_index for im in answer.images]
    x = network_input(test_images[shown], answer.image_size).float().numpy()
    labels = [f"test #{im.test_index} · {im.label}\nactivation {im.activation:.3g}" for im in answer.images]
    subtitle = (
        f"The {len(shown)} of the first {answer.images_looked_at:,} test images that drive it hardest, "
        "strongest first,\nranked by the channel's strongest activation anywhere in its map. Yellow box: what "
        f"that position\nsees, its receptive field ({field_size:g}×{field_size:g} px of the {answer.image_size} px "
        "input, clipped to it)."
    )
    filter_figures.draw_filter(x, [im.box for im in answer.images], labels, title, subtitle, out)


def draw_overview(
    model: nn.Module,
    index: FilterIndex,
    layer: str,
    count: int,
    test_images: np.ndarray,
    image_size: int,
    title: str,
    out: Path,
) -> None:
    """The first `count` channels of `layer`, each a block of the receptive fields of its strongest images."""
    top, field = index.layers[layer], receptive_field(model, layer)
    blocks = []
    for channel in range(min(count, len(top.indices))):
        x = network_input(test_images[top.indices[channel]], image_size).float().numpy()
        crops = [
            filter_figures.cut_out(image, field.box(int(y), int(xx)))
            for image, (y, xx) in zip(x, top.positions[channel], strict=True)
        ]
        blocks.append((channel, float(top.values[channel][0]), np.stack(crops)))
    subtitle = (
        f"Each block: a channel's {filter_figures.GRID**2} strongest of the first {index.images:,} test images, each "
        f"cut to what its strongest position sees\n(its receptive field, {field.size:g}×{field.size:g} px of the "
        f"{image_size} px input; grey: outside the image). Above it: the channel and its strongest activation."
    )
    filter_figures.draw_overview(blocks, title, subtitle, out)
