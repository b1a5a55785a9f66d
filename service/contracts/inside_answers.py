"""What `python -m worker.inside.server` answers the API: numbers, pictures, or what went wrong."""

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, TypeAdapter

from service.contracts.inside import ConvLayer, Strict, WeightsUsed

# ---------------------------------------------------------------- answers


class ClassProbability(Strict):
    # `class` is a Python keyword: the field is `class_` in Python, and always `class` on the wire.
    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True, validate_by_name=True)
    class_: str = Field(alias="class")
    probability: float = Field(description="0–1: the softmax of the network's output.")


class Tile(Strict):
    channel: int
    mean: float = Field(description="The channel's mean activation (after the ReLU) on this image.")
    box: tuple[float, float, float, float] = Field(
        description="Where its map lies in the picture: (left, top, right, bottom), fractions of width and height."
    )


class LayerActivations(Strict):
    layer: ConvLayer
    shape: tuple[int, int, int] = Field(description="(channels, height, width) of the layer's output.")
    means: list[float] = Field(description="Every channel's mean activation after the ReLU, channel 0 first.")
    shown: list[Tile] = Field(description="The strongest channels, as the picture shows them: strongest first.")


class Seen(Strict):
    """The image looked at, and what the network made of it."""

    used: WeightsUsed
    image_size: int
    test_index: int | None
    label: str | None = Field(description="A test image's true class; None for an upload.")
    predictions: list[ClassProbability] = Field(description="The five most likely classes, best first.")


class ActivationsAnswer(Seen):
    kind: Literal["activations"] = "activations"
    layers: list[LayerActivations]


class ExplainAnswer(Seen):
    kind: Literal["explain"] = "explain"
    class_name: str = Field(description="The class explained.")
    class_index: int
    probability: float
    cam: list[list[float]] = Field(description="Grad-CAM at conv5's resolution, scaled to 0–1 (row by row).")
    cam_peak: float = Field(description="The unscaled Grad-CAM's largest value (logit units per activation unit).")
    saliency_peak: float = Field(description="The largest |∂ score / ∂ pixel|, pixels of the upscaled input in 0–1.")


class FiltersAnswer(Strict):
    kind: Literal["filters"] = "filters"
    state: Literal["computing", "ready", "failed"]
    done: int = Field(description="Test images looked at so far.")
    total: int = Field(description="Test images looked at in all.")
    seconds: float = Field(description="How long the pass has taken (so far).")
    error: str | None = None


class FilterImage(Strict):
    test_index: int
    label: str
    activation: float = Field(description="The channel's strongest activation on the image.")
    position: tuple[int, int] = Field(description="(row, column) of that activation in the layer's map.")
    box: tuple[float, float, float, float] = Field(
        description="The input pixels that position sees (its receptive field): (left, top, right, bottom)."
    )


class FilterAnswer(Strict):
    kind: Literal["filter"] = "filter"
    used: WeightsUsed
    layer: ConvLayer
    channel: int
    images_looked_at: int
    image_size: int
    images: list[FilterImage] = Field(description="The test images that drive the channel hardest, strongest first.")


class LabelsAnswer(Strict):
    kind: Literal["labels"] = "labels"
    classes: list[str] = Field(description="The dataset's class names.")
    labels: list[int] = Field(description="Each test image's class (a position in `classes`), test image 0 first.")


class Drawn(Strict):
    kind: Literal["drawn"] = "drawn"


class Failure(Strict):
    """The request could not be answered: `invalid` if it asked for something that is not there."""

    kind: Literal["failure"] = "failure"
    invalid: bool
    message: str


InsideAnswer = Annotated[
    ActivationsAnswer | ExplainAnswer | FiltersAnswer | FilterAnswer | LabelsAnswer | Drawn | Failure,
    Field(discriminator="kind"),
]
INSIDE_ANSWER: TypeAdapter[InsideAnswer] = TypeAdapter(InsideAnswer)
