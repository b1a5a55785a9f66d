"""Pictures of a job's history, drawn on request by a child process (`python -m worker.pictures.server`).

The API process never loads numpy or matplotlib: it keeps one drawing process (`service.api.child`), sends it one
`DrawOrder` at a time (`service.contracts`), and caches what it drew under `cache_dir` by a key that changes whenever
the numbers behind the picture change. A request that takes longer than `timeout` kills the process (the next
request starts another) and answers 503. A drawing that failed says why in the log only: the answer's error names
files on this machine, which a client has no business seeing.
"""

import asyncio
import hashlib
import logging
from pathlib import Path

from service.api.child import ChildProcess
from service.contracts import DrawAnswer, DrawOrder, DrawRequest
from service.errors import NotFound, ServiceError

log = logging.getLogger("service")

# Drawn pictures kept; the oldest are dropped beyond this (each is 30–300 kB).
CACHE_FILES = 500


class Undrawable(ServiceError):
    """A picture whose drawing failed: drawn again from the same numbers it would fail again, so not a 503."""

    status_code = 422
    code = "undrawable"


class Renderer:
    """The API's drawing process and its cache."""

    def __init__(self, cache_dir: Path, timeout: float = 60.0) -> None:
        self.cache_dir = cache_dir
        self.child = ChildProcess("worker.pictures.server", "drawing", timeout)
        self.lock = asyncio.Lock()

    async def draw(self, picture: DrawRequest, key: str, suffix: str) -> Path:
        """The picture described: from the cache when `key` was drawn before, else drawn now.

        The order is validated before anything is sent (a picture built without validation is refused here)."""
        out = self.cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}{suffix}"
        order = DrawOrder(out=str(out), picture=picture)
        if out.is_file():
            return out
        async with self.lock:  # one drawing at a time
            if out.is_file():  # drawn while this request waited
                return out
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            answer = await self.child.ask(order, DrawAnswer)
        if answer.missing:
            log.info("drawing %s: a file behind it is gone: %s", picture.kind, answer.error)
            raise NotFound(f"the numbers behind this {picture.kind} picture are gone (its job deleted?)")
        if answer.error is not None:
            log.error("drawing %s failed: %s", picture.kind, answer.error)
            raise Undrawable(f"the {picture.kind} picture could not be drawn from these numbers; see the server log")
        self._prune()
        return out

    def _prune(self) -> None:
        files = sorted(self.cache_dir.glob("*.*"), key=lambda p: p.stat().st_mtime)
        for old in files[:-CACHE_FILES]:
            old.unlink(missing_ok=True)

    async def close(self) -> None:
        """Stop the drawing process, if there is one."""
        await self.child.close()
