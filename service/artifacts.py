"""Artifact names: the files a job publishes, built and parsed here and nowhere else (worker and API alike).

A name is what the API shows and the database keys an artifact by (`curves.png`, `kernels/conv1/diff.png`);
where its bytes lie is the store's business (`service.storage`).
"""

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal, get_args

Layer = Literal["conv1", "conv2"]
Stage = Literal["initial", "trained", "diff"]
LAYERS: tuple[Layer, ...] = get_args(Layer)
STAGES: tuple[Stage, ...] = get_args(Stage)

CURVES = "curves.png"
METRICS_CSV = "metrics.csv"
WEIGHTS = "weights.pt"
KERNELS_PREFIX = "kernels/"

PNG = "image/png"
CONTENT_TYPES = {
    ".png": PNG,
    ".gif": "image/gif",
    ".csv": "text/csv",
    ".json": "application/json",
    ".pt": "application/octet-stream",
    ".npz": "application/octet-stream",
}


@dataclass(frozen=True)
class KernelImage:
    """One kernel grid: a layer's weights at one stage."""

    layer: Layer
    stage: Stage

    @property
    def name(self) -> str:
        return f"{KERNELS_PREFIX}{self.layer}/{self.stage}.png"


def kernel_image(layer: Layer, stage: Stage) -> str:
    """The name of a kernel grid, e.g. `kernels/conv1/diff.png`."""
    return KernelImage(layer, stage).name


def parse_kernel_image(name: str) -> KernelImage | None:
    """The layer and stage a name draws, or None for any other name (under `kernels/` or not)."""
    parts = PurePosixPath(name).parts
    if len(parts) != 3 or f"{parts[0]}/" != KERNELS_PREFIX or not parts[2].endswith(".png"):
        return None
    layer, stage = parts[1], parts[2].removesuffix(".png")
    if layer not in LAYERS or stage not in STAGES:
        return None
    return KernelImage(layer, stage)


def kernel_images() -> list[str]:
    """Every kernel grid a job draws, conv1 first."""
    return [kernel_image(layer, stage) for layer in LAYERS for stage in STAGES]


def content_type(name: str) -> str:
    """What a file is served as, by its suffix."""
    return CONTENT_TYPES.get(PurePosixPath(name).suffix, "application/octet-stream")


def checkpoint_name(token: str, epoch: int, step: int) -> str:
    """A checkpoint's file name: unique to the claim (`token`), ordered by position (epoch `epoch`, step `step`)."""
    return f"{token[:8]}-e{epoch:04d}-s{step:06d}.pt"


# metrics.csv's columns, in order: the API's `?format=csv` and the worker's file alike.
METRIC_FIELDS = ("epoch", "train_loss", "test_loss", "test_accuracy", "seconds", "images_per_second")


def metrics_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """Per-epoch metric rows as metrics.csv: a header, then one line per epoch."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=METRIC_FIELDS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
