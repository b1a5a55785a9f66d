"""Looking inside a trained network: what the API asks `python -m worker.inside.server`, and its answers."""

import base64
import binascii
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from service.contracts.predict import PIXEL_BYTES

# ---------------------------------------------------------------- looking inside a trained network
# The API (`service.api.inside`) asks `python -m worker.inside.server` one request a line; one answer a line.
# CIFAR-10's images are 32×32 RGB: what an upload is reduced to, and what a test image is.
ConvLayer = Literal["conv1", "conv2", "conv3", "conv4", "conv5"]
CONV_LAYERS: tuple[ConvLayer, ...] = ("conv1", "conv2", "conv3", "conv4", "conv5")
CONV_CHANNELS: dict[ConvLayer, int] = {"conv1": 64, "conv2": 192, "conv3": 384, "conv4": 256, "conv5": 256}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WeightsUsed(Strict):
    """Which weights answered: a succeeded job's `weights.pt`, or a running or stopped job's newest checkpoint."""

    job_id: int
    source: Literal["weights", "checkpoint"]
    epoch: int = Field(
        description="The epoch the weights are from: completed, or under way for a checkpoint mid-epoch."
    )
    step: int = Field(0, description="For a checkpoint taken mid-epoch: the steps of `epoch` done; 0 otherwise.")

    def describe(self) -> str:
        """In words, e.g. "weights.pt after epoch 3" or "checkpoint in epoch 2, after step 40"."""
        if self.source == "weights":
            return f"weights.pt after epoch {self.epoch}"
        if self.step:
            return f"checkpoint in epoch {self.epoch}, after step {self.step}"
        return f"checkpoint after epoch {self.epoch}"


class ModelRef(Strict):
    """The trained network to load: a file on the worker's disk, kept loaded by `key`."""

    path: str
    key: str = Field(description="Names these weights exactly: the stored key and its version.")
    image_size: int = Field(ge=63, le=512)
    used: WeightsUsed


class DatasetRef(Strict):
    """A job's dataset as it drew it: the same files, subset and seed."""

    dataset: str
    data_dir: str
    train_samples: int | None
    test_samples: int | None
    seed: int


class ImageRef(Strict):
    """One image: a test image of the job's own test subset, or an upload reduced to 32×32 RGB (base64)."""

    test_index: int | None = Field(None, ge=0)
    pixels: str | None = None

    @field_validator("pixels")
    @classmethod
    def _pixels(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                size = len(base64.b64decode(value, validate=True))
            except binascii.Error as exc:
                raise ValueError(f"not base64: {exc}") from None
            if size != PIXEL_BYTES:
                raise ValueError(f"expected 32×32 RGB ({PIXEL_BYTES} bytes), got {size} bytes")
        return value

    @model_validator(mode="after")
    def _one(self) -> "ImageRef":
        if (self.test_index is None) == (self.pixels is None):
            raise ValueError("give exactly one of test_index and pixels")
        return self


class Looking(Strict):
    """What every request about one image names."""

    model: ModelRef
    data: DatasetRef
    image: ImageRef
    classes: list[str] | None = Field(None, description="The job's class names; the dataset's when not given.")
    out: str | None = Field(None, description="Where to draw the picture (a PNG); None: the numbers only.")
    title: str = ""


class ActivationsRequest(Looking):
    kind: Literal["activations"] = "activations"


class ExplainRequest(Looking):
    kind: Literal["explain"] = "explain"
    class_name: str | None = Field(None, description="The class to explain: a class name, or its number 0–9.")


class FiltersRequest(Strict):
    """The strongest test images of every filter: start computing them, or say how far that has come."""

    kind: Literal["filters"] = "filters"
    model: ModelRef
    data: DatasetRef
    index: str = Field(description="Where the computed index is kept (an .npz), so that it is computed once.")


class FilterRequest(FiltersRequest):
    """One filter's strongest test images, as numbers or (with `out`) a picture."""

    kind: Literal["filter"] = "filter"  # type: ignore[assignment]
    layer: ConvLayer
    channel: int = Field(ge=0)
    classes: list[str] | None = None
    out: str | None = None
    title: str = ""


class OverviewRequest(FiltersRequest):
    """The first `count` channels of a layer, each with the receptive fields of its strongest test images."""

    kind: Literal["overview"] = "overview"  # type: ignore[assignment]
    layer: ConvLayer
    count: int = Field(ge=1, le=64)
    out: str
    title: str = ""


class LabelsRequest(Strict):
    """The classes of a job's test images, to pick one by class."""

    kind: Literal["labels"] = "labels"
    data: DatasetRef


InsideRequest = Annotated[
    ActivationsRequest | ExplainRequest | FiltersRequest | FilterRequest | OverviewRequest | LabelsRequest,
    Field(discriminator="kind"),
]
INSIDE_REQUEST: TypeAdapter[InsideRequest] = TypeAdapter(InsideRequest)
