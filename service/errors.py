"""One error family with a status code, and the one JSON shape every error is returned in."""

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field


class Detail(BaseModel):
    """One thing wrong with a request, as FastAPI's validation errors name it."""

    loc: list[str | int] = Field(description="Where: `body`, `query`, `path` or `header`, then the field's path.")
    msg: str
    type: str = Field(description="Machine-readable: missing, greater_than_equal, unknown_field, …")


class ServiceError(Exception):
    """An error a client can act on; the handler renders it as `{"error": {code, message, details}}`."""

    status_code = 400
    code = "bad_request"
    headers: dict[str, str] | None = None

    def __init__(self, message: str, details: Sequence[Detail | Mapping[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        # Given as Details or as mappings of the same three keys; checked here, where the error is raised.
        self.details = None if details is None else [Detail.model_validate(d) for d in details]


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"


class Conflict(ServiceError):
    status_code = 409
    code = "conflict"


class InvalidRequest(ServiceError):
    status_code = 422
    code = "invalid_request"


class Unauthorized(ServiceError):
    status_code = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    """Signed in, but without the role or the ownership the request needs; the message names what is missing."""

    status_code = 403
    code = "forbidden"


class QuotaExceeded(ServiceError):
    """The person already has as many active jobs as their quota allows, or asked for a sweep over its cap."""

    status_code = 429
    code = "quota_exceeded"


class ServiceUnavailable(ServiceError):
    """Something the request needs is away for a moment; trying again later can succeed."""

    status_code = 503
    code = "unavailable"


# How long a client told 503 `database_unavailable` should wait: about one connect timeout.
RETRY_AFTER_SECONDS = 5


class DatabaseUnavailable(ServiceUnavailable):
    """The database did not answer in time, or could not be reached; nothing was stored."""

    code = "database_unavailable"
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}  # noqa: RUF012 - read-only, like `code`


class PayloadTooLarge(ServiceError):
    status_code = 413
    code = "payload_too_large"


def error_body(code: str, message: str, details: list[Detail] | None = None) -> dict[str, Any]:
    """The body of every error response."""
    listed = None if details is None else [d.model_dump() for d in details]
    return {"error": {"code": code, "message": message, "details": listed}}


class UnsupportedMediaType(ServiceError):
    status_code = 415
    code = "unsupported_media_type"


class InvalidImage(InvalidRequest):
    """An upload that is an image of a supported kind, but one that cannot or will not be decoded."""

    code = "invalid_image"
