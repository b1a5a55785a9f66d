"""Pictures drawn on request: what the API sends `python -m worker.pictures.server`, and its answer."""

from typing import Annotated, Literal

from pydantic import (
    Field,
    TypeAdapter,
    model_validator,
)

from service.contracts.base import Contract, Layer
from service.contracts.epochs import Mistakes
from service.spec import JobSpec

# ---------------------------------------------------------------- pictures drawn on request (worker.pictures.server)


class KernelsDraw(Contract):
    """One kernel grid at one epoch: `trained` (the weights then) or `diff` (their change since epoch 0)."""

    kind: Literal["kernels"] = "kernels"
    layer: Layer
    stage: Literal["trained", "diff"]
    epoch: int = Field(ge=0)
    filter: int = Field(ge=0, description="The conv2 filter drawn (the job's `conv2_filter`).")
    # Kernel-history files (.npz): the epoch's last, after epoch 0's for a `diff`.
    sources: list[str] = Field(min_length=1, max_length=2)


class EvolutionDraw(Contract):
    """The GIF of a layer's kernels over every epoch, one source file an epoch from epoch 0."""

    kind: Literal["evolution"] = "evolution"
    layer: Layer
    stage: Literal["trained", "diff"]
    filter: int = Field(ge=0)
    title: str
    sources: list[str] = Field(min_length=1)


class ConfusionDraw(Contract):
    """The test set's confusion matrix after one epoch."""

    kind: Literal["confusion"] = "confusion"
    matrix: list[list[int]]
    classes: list[str] = Field(min_length=1)
    epoch: int = Field(ge=0)
    title: str

    @model_validator(mode="after")
    def _square(self) -> "ConfusionDraw":
        n = len(self.classes)
        if len(self.matrix) != n or any(len(row) != n for row in self.matrix):
            raise ValueError(f"a confusion matrix for {n} classes must be {n}×{n}")
        return self


class MistakesDraw(Contract):
    """The test images one epoch got wrong, read again from the job's dataset (its spec says which subset)."""

    kind: Literal["mistakes"] = "mistakes"
    spec: JobSpec
    data_dir: str
    mistakes: Mistakes
    classes: list[str] = Field(min_length=1)
    epoch: int = Field(ge=0)
    title: str


CompareMetric = Literal["test_accuracy", "test_loss", "train_loss"]


class CompareSeries(Contract):
    """One job's line on the comparison chart."""

    label: str
    status: str
    epochs: list[int]
    values: list[float]

    @model_validator(mode="after")
    def _paired(self) -> "CompareSeries":
        if len(self.epochs) != len(self.values):
            raise ValueError(f"{len(self.epochs)} epochs but {len(self.values)} values")
        return self


class CompareDraw(Contract):
    """One metric of several jobs over the epochs, a line per job."""

    kind: Literal["compare"] = "compare"
    metric: CompareMetric
    series: list[CompareSeries]
    shared: str = Field("", description="What every job has in common, said once under the title.")


DrawRequest = Annotated[
    KernelsDraw | EvolutionDraw | ConfusionDraw | MistakesDraw | CompareDraw, Field(discriminator="kind")
]


class DrawOrder(Contract):
    """One line to the drawing process: the picture, and the file to draw it into (PNG or GIF, by the picture)."""

    out: str
    picture: DrawRequest


# How the drawing process parses a line: a bad one is a validation error naming the field, never a crash.
DRAW_ORDER: TypeAdapter[DrawOrder] = TypeAdapter(DrawOrder)


class Answer(Contract):
    """A helper process's answer to one request: `error` says what went wrong, and is None when all went well."""

    error: str | None = None


class DrawAnswer(Answer):
    """The drawing process's answer: the picture is at the order's `out` when `error` is None."""

    # A file the order names was gone (its job deleted meanwhile): the API answers 404, not a failed drawing.
    missing: bool = False
