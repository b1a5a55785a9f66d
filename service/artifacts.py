"""Artifact names: the files a job publishes, built and parsed here and nowhere else (worker and API alike).

A name is what the API shows and the database keys an artifact by (`curves.png`, `kernels/conv1/diff.png`);
where its bytes lie is the store's business (`service.storage`).
"""

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal, get_args

from service.contracts import EPOCH_SCALARS, EpochRecord, Layer, WeightChange

Stage = Literal["initial", "trained", "diff"]
LAYERS: tuple[Layer, ...] = get_args(Layer)
STAGES: tuple[Stage, ...] = get_args(Stage)

CURVES = "curves.png"
CONFUSION = "confusion.png"
WEIGHT_CHANGE = "weight-change.png"
MISTAKES = "mistakes.png"
METRICS_CSV = "metrics.csv"
WEIGHTS = "weights.pt"
KERNELS_PREFIX = "kernels/"
# The drawn kernels' numbers after each epoch (epoch 0: the initialisation), from which any epoch is drawn.
KERNEL_HISTORY_PREFIX = "history/kernels/"

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


def kernel_history(epoch: int) -> str:
    """The name of the kernels' numbers after `epoch`, e.g. `history/kernels/e0003.npz`."""
    return f"{KERNEL_HISTORY_PREFIX}e{epoch:04d}.npz"


def parse_kernel_history(name: str) -> int | None:
    """The epoch a kernel-history name holds, or None for any other name."""
    stem = name.removeprefix(KERNEL_HISTORY_PREFIX)
    if stem == name or not (stem.startswith("e") and stem.endswith(".npz") and stem[1:-4].isdigit()):
        return None
    return int(stem[1:-4])


def content_type(name: str) -> str:
    """What a file is served as, by its suffix."""
    return CONTENT_TYPES.get(PurePosixPath(name).suffix, "application/octet-stream")


def checkpoint_name(token: str, epoch: int, step: int) -> str:
    """A checkpoint's file name: unique to the claim (`token`), ordered by position (epoch `epoch`, step `step`)."""
    return f"{token[:8]}-e{epoch:04d}-s{step:06d}.pt"


_CHECKPOINT = re.compile(r"^[0-9a-f]{8}-e(\d{4})-s(\d{6})\.pt$")


def checkpoint_position(name: str) -> tuple[int, int] | None:
    """(epoch, step) of a name `checkpoint_name` made; None for any other name."""
    match = _CHECKPOINT.match(name)
    return (int(match[1]), int(match[2])) if match else None


def describe_position(name: str | None) -> str:
    """Where checkpoint `name` resumes, for people: "the end of epoch 1", "epoch 2, step 40", or "the start"."""
    position = checkpoint_position(name) if name else None
    if position is None:
        return "the start"
    epoch, step = position
    return f"epoch {epoch}, step {step}" if step else f"the end of epoch {epoch}"


# metrics.csv's columns: the scalars of `EpochRecord` in order, then per-class accuracy (`accuracy <class>`) and each
# layer's weight change (`<layer> from_initial`, `… from_previous`), where measured.
WEIGHT_CHANGE_KINDS = tuple(WeightChange.model_fields)


def metrics_csv(records: Iterable[EpochRecord]) -> str:
    """Per-epoch records as metrics.csv: a header, then one line per epoch (the worker's file and the API's CSV)."""
    records = list(records)
    classes = next((r.classes for r in records if r.classes), [])
    layers = next((list(r.weight_change) for r in records if r.weight_change), [])
    columns = [
        *EPOCH_SCALARS,
        *(f"accuracy {name}" for name in classes),
        *(f"{layer} {kind}" for layer in layers for kind in WEIGHT_CHANGE_KINDS),
    ]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for record in records:
        row: dict[str, object] = dict(record.scalars())
        row |= {f"accuracy {name}": value for name, value in (record.per_class_accuracy() or {}).items()}
        for layer, change in record.weight_change.items():
            row |= {f"{layer} {kind}": getattr(change, kind) for kind in WEIGHT_CHANGE_KINDS}
        writer.writerow(row)
    return out.getvalue()
