"""What crosses a process boundary, typed once, and validated at both ends: an epoch's record, and the requests the
API's helper processes take. The worker fills an `EpochRecord`, `service.records` stores it (its scalars in columns,
the rest in the JSON `details` column) and the API reads it back for the metrics, the CSV and the pictures; the API
sends a `DrawOrder` to `python -m worker.pictures.server` and a `PredictRequest` to `python -m worker.predict`, a JSON
line each, which the child parses with the same model. Pure pydantic: the API imports this (no torch, no numpy).
"""

import base64
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from service.spec import JobSpec

# The layers whose kernels are drawn (artifact names are built from these in `service.artifacts`).
Layer = Literal["conv1", "conv2"]


class Contract(BaseModel):
    """A message between processes: immutable, unknown fields refused (a typo is an error, not a silent default),
    and checked again whenever it is put into another message, so that nothing unvalidated is ever sent."""

    model_config = ConfigDict(frozen=True, extra="forbid", revalidate_instances="always")


def problems(exc: ValidationError) -> str:
    """A validation error in one line, each problem led by the field it is about: `picture.layer: Input should…`."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '(the message)'}: {e['msg']}" for e in exc.errors())


# ---------------------------------------------------------------- an epoch's record


class WeightChange(Contract):
    """How far one layer's weights have moved."""

    from_initial: float = Field(description="‖W_t − W_0‖ / ‖W_0‖: how far the layer has moved from its initialisation.")
    from_previous: float = Field(description="‖W_t − W_{t−1}‖ / ‖W_{t−1}‖: how far it moved in this epoch.")


class Mistakes(Contract):
    """The first misclassified test images of an epoch (by index in the job's test set), and how many there were."""

    count: int = Field(0, ge=0)
    indices: list[int] = []
    predicted: list[int] = Field([], description="The class predicted for each of `indices`, by index in `classes`.")

    @model_validator(mode="after")
    def _paired(self) -> "Mistakes":
        if len(self.indices) != len(self.predicted):
            raise ValueError(f"{len(self.indices)} indices but {len(self.predicted)} predicted classes")
        return self


class EpochScalars(Contract):
    """One number each: what a table row, a line of metrics.csv and an epoch of `GET /jobs/{id}/metrics` hold. A new
    per-epoch number is a new field here: stored (in `details`, unless given a column), written to metrics.csv and
    shown by the API without another edit."""

    epoch: int = Field(ge=1)
    train_loss: float = Field(description="Mean training loss over the epoch (NLL).")
    test_loss: float
    test_accuracy: float = Field(description="0–1.")
    seconds: float = Field(description="Training and evaluation.")
    images_per_second: float = Field(description="Training images per second.")


# The scalars' names, in order: metrics.csv's first columns.
EPOCH_SCALARS = tuple(EpochScalars.model_fields)


class EpochRecord(EpochScalars):
    """What one epoch measured: the scalars, and the measurements too big for a column of their own."""

    # Every training step's loss, in order (the epoch's share of the per-step curve).
    step_losses: list[float] = []
    # Test-set confusion matrix: confusion[true][predicted] counts, in the order of `classes`.
    confusion: list[list[int]] = []
    classes: list[str] = []
    # For each weight layer (torchvision's names: features.0 is conv1, classifier.6 the last).
    weight_change: dict[str, WeightChange] = {}
    mistakes: Mistakes = Mistakes()

    def scalars(self) -> dict[str, float]:
        """The scalars by name (`epoch` among them)."""
        return self.model_dump(include=set(EPOCH_SCALARS))

    def per_class_accuracy(self) -> dict[str, float] | None:
        """Each class's share of its test images predicted right (None without a matrix that fits the classes)."""
        if not self.confusion or len(self.confusion) != len(self.classes):
            return None
        return {
            name: (row[i] / total if (total := sum(row)) else 0.0)
            for i, (name, row) in enumerate(zip(self.classes, self.confusion, strict=True))
        }


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


# ---------------------------------------------------------------- predictions (worker.predict)

# One CIFAR-sized image: 32×32 RGB, row by row; 3,072 bytes in Python, base64 text in JSON.
PIXEL_BYTES = 32 * 32 * 3


def _pixels(value: object) -> bytes:
    if isinstance(value, str):  # as JSON carries them; binascii.Error, a ValueError, when it is not base64
        value = base64.b64decode(value, validate=True)
    if not isinstance(value, bytes):
        raise ValueError("expected bytes, or base64 text of them")
    if len(value) != PIXEL_BYTES:
        raise ValueError(f"expected 32×32 RGB ({PIXEL_BYTES} bytes), got {len(value)} bytes")
    return value


Pixels = Annotated[
    bytes, PlainValidator(_pixels), PlainSerializer(lambda b: base64.b64encode(b).decode(), when_used="json")
]


class PredictRequest(Contract):
    """What a trained network makes of one image: the weights to use and the 32×32 RGB pixels."""

    weights: str = Field(description="The job's weights.pt, on this machine.")
    key: str = Field(description="What the loaded model is cached by: it changes whenever the weights do.")
    image_size: int = Field(ge=1, description="The job's `image_size`: the image is upscaled to it, as in training.")
    pixels: Pixels


class PredictAnswer(Answer):
    """Each class's probability, in the order of the job's classes (empty when `error` says why)."""

    probabilities: list[float] = []
