"""Predictions: what the API sends `python -m worker.predict`, and its answer."""

import base64
from typing import Annotated

from pydantic import (
    Field,
    PlainSerializer,
    PlainValidator,
)

from service.contracts.base import Contract
from service.contracts.drawing import Answer

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
