"""One error family with a status code, and the one JSON shape every error is returned in."""

from typing import Any


class ServiceError(Exception):
    """An error a client can act on; the handler renders it as `{"error": {code, message, details}}`."""

    status_code = 400
    code = "bad_request"
    headers: dict[str, str] | None = None

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


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


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The body of every error response."""
    return {"error": {"code": code, "message": message, "details": details}}


class UnsupportedMediaType(ServiceError):
    status_code = 415
    code = "unsupported_media_type"


class InvalidImage(InvalidRequest):
    """An upload that is an image of a supported kind, but one that cannot or will not be decoded."""

    code = "invalid_image"
