"""The OpenAPI document as published: FastAPI's, made valid for the version it declares.

FastAPI (0.165) writes an event stream's response with `itemSchema`, a field OpenAPI 3.2 added, into a document that
says `openapi: 3.1.0`; 3.1 validators and client generators then reject the whole document. The document stays 3.1
(what Swagger UI, ReDoc, Schemathesis and most generators read today) and the event schema moves to the extension
`x-itemSchema`, which 3.1 allows on a media type and tools that do not know it skip. And FastAPI declares a route's
errors in the route's own media type (`text/event-stream` for the streams), while every error is answered as JSON
in the one error shape: such entries are declared `application/json`, as the answers are.
"""

from typing import Any

from fastapi import FastAPI

JSON = "application/json"
# A media type's fields that OpenAPI 3.2 added, and the extension each becomes in an older document.
NEWER_FIELDS = {"itemSchema": "x-itemSchema"}


def conform(document: dict[str, Any]) -> dict[str, Any]:
    """`document`, changed in place where it uses fields newer than its `openapi` version or declares an error in a
    media type other than the JSON it is answered in; returned for convenience. Changing it again changes nothing."""
    older = tuple(int(n) for n in document["openapi"].split(".")[:2]) < (3, 2)
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                content: dict[str, Any] = response.get("content", {})
                for media in content.values():
                    for field, extension in NEWER_FIELDS.items():
                        if older and field in media:
                            media[extension] = media.pop(field)
                if status[0] in "45":
                    _declare_errors_as_json(content)
    return document


def _declare_errors_as_json(content: dict[str, Any]) -> None:
    for media_type in [m for m in content if m != JSON]:
        if "ErrorBody" in content[media_type].get("schema", {}).get("$ref", ""):
            content.setdefault(JSON, content.pop(media_type))


def anonymous_allowed(document: dict[str, Any]) -> dict[str, Any]:
    """Each operation that asks for a token accepts none as well (`{}`): a service without API_TOKEN lets everyone in
    until its first user is added, and then asks for one."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            if operation.get("security") and {} not in operation["security"]:
                operation["security"].append({})
    return document


def install(app: FastAPI, open_until_users: bool = False) -> None:
    """Have `app` publish its OpenAPI document through `conform` (made once, on first request, as FastAPI's is);
    `open_until_users`: see `anonymous_allowed`."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if not app.openapi_schema:
            document = conform(generate())
            app.openapi_schema = anonymous_allowed(document) if open_until_users else document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
