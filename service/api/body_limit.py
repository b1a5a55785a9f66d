"""The request body limit: 413 in the one error shape for a body over MAX_BODY_BYTES, larger for image uploads.

Not FastAPI's own `max_body_size` (app, router and route limits over Starlette's `RequestBodyLimitMiddleware`): it
covers a body without Content-Length and a larger limit per route, but a body whose declared Content-Length is over
the limit (the common case: curl, browsers and httpx all declare it) gets Starlette's plain-text "Content Too Large",
sent in place of whatever the app answered, on every path, so neither our error handler nor the route can give it
the error shape. This one answers in the error shape, before any route runs.
"""

import re
from collections.abc import Sequence

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import PayloadTooLarge, error_body


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413, whether or not they declare a Content-Length.

    Paths matching one of `larger`'s patterns have that pattern's limit instead (image uploads).
    """

    def __init__(self, app: ASGIApp, limit: int, larger: Sequence[tuple[re.Pattern[str], int]] = ()) -> None:
        self.app, self.limit, self.larger = app, limit, larger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = next((n for pattern, n in self.larger if pattern.fullmatch(scope["path"])), self.limit)
        too_large = JSONResponse(
            error_body(PayloadTooLarge.code, f"request body over {limit} bytes"), PayloadTooLarge.status_code
        )
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await too_large(scope, receive, send)
            return
        # Job specs are tiny, images a few MB: read the whole body (up to the limit) before the app sees it.
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                await too_large(scope, receive, send)
                return
            more = message.get("more_body", False)
        body, sent = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
