"""The documented error answers that more than one router declares, so that no route module imports another."""

from typing import Any

from service.api import images
from service.api.schemas import ErrorBody

Responses = dict[int | str, dict[str, Any]]


def errors(*answers: tuple[int, str]) -> Responses:
    """OpenAPI `responses` for these status codes, each with the one error body and its description."""
    return {code: {"model": ErrorBody, "description": text} for code, text in answers}


NOT_NOW = errors((409, "Not possible in the job's current status"))
OVER_QUOTA = errors((429, "Over the submitter's quota of active jobs"))
# An uploaded image (predict, and looking inside with an upload).
UPLOAD_ERRORS = errors(
    (400, "The body is not valid multipart/form-data"),
    (413, f"The image is over {images.MAX_BYTES // (1024 * 1024)} MiB"),
    (415, "The upload is not a PNG or JPEG image"),
    (422, f"No image, or one that is truncated or corrupt, or over {images.MAX_PIXELS / 1e6:g} megapixels"),
)
# Looking inside a job's network (activations, Grad-CAM, filters).
INSIDE_ERRORS = errors(
    (409, "The job has no weights yet: neither weights.pt nor a checkpoint"),
    (422, "No such test image or class"),
    (503, "The process that looks inside networks failed or took too long; try again"),
)
