"""Looking inside trained networks, done by a child process (`python -m worker.inside.server`) so that the API never
loads torch: activations and Grad-CAM for one image, and the strongest test images of each filter.

Requests and answers are `service.contracts` models, validated at both ends. What the child answers is cached under
`cache_dir` by a key naming the weights and the request, the numbers (.json) and the picture (.png) together: the
dashboard asks for both, and the second costs nothing.
"""

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel, Field

from service.api.child import ChildProcess
from service.contracts import (
    INSIDE_ANSWER,
    ActivationsAnswer,
    ActivationsRequest,
    DatasetRef,
    Drawn,
    ExplainAnswer,
    ExplainRequest,
    Failure,
    FilterAnswer,
    FilterRequest,
    FiltersAnswer,
    FiltersRequest,
    InsideAnswer,
    LabelsAnswer,
    LabelsRequest,
    OverviewRequest,
)
from service.errors import InvalidRequest, ServiceUnavailable

# Pictures and answers kept (each picture 50–400 kB, each answer a few kB); the oldest go beyond this.
CACHE_FILES = 600
# Filter indices kept: ~300 kB each, one per job's weights looked at.
INDICES_KEPT = 50
# The first request starts the process, imports torch and loads a 228 MB model, or a 700 MB checkpoint: seconds.
# Everything else answers in about a second; a filter pass runs beside the requests and is never waited for here.
TIMEOUT_SECONDS = 120.0
# How often a request that waits for a filter pass asks how far it has come.
POLL_SECONDS = 0.5


class Mistake(BaseModel):
    test_index: int
    true: str
    predicted: str


class TestImages(BaseModel):
    """A job's test images by class, and those its latest evaluated epoch got wrong: what to look inside with."""

    job_id: int
    count: int = Field(description="How many test images the job has: `?image=` takes 0 to count − 1.")
    classes: list[str]
    labels: list[int] = Field(description="Each test image's class (a position in `classes`), test image 0 first.")
    epoch: int | None = Field(description="The epoch whose mistakes are listed; None before the first evaluation.")
    mistakes: list[Mistake] = Field(description="Up to 64 test images that epoch got wrong.")


class Inside:
    """The API's process for looking inside networks, and its cache."""

    def __init__(self, cache_dir: Path, timeout: float = TIMEOUT_SECONDS) -> None:
        self.cache_dir = cache_dir / "inside"
        self.child = ChildProcess("worker.inside.server", "inside-the-network", timeout)
        self.lock = asyncio.Lock()

    def _path(self, key: str, suffix: str) -> Path:
        return self.cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}{suffix}"

    async def ask(self, request: BaseModel) -> InsideAnswer:
        """The child's answer to `request`; InvalidRequest for something the job does not have, else
        ServiceUnavailable when it fails."""
        answer = await self.child.exchange(request, INSIDE_ANSWER)
        if isinstance(answer, Failure):
            if answer.invalid:
                raise InvalidRequest(answer.message)
            raise ServiceUnavailable(f"looking inside the network failed: {answer.message}")
        return answer

    async def look(
        self, request: ActivationsRequest | ExplainRequest, key: str
    ) -> tuple[ActivationsAnswer | ExplainAnswer, Path]:
        """The numbers and the picture of `request` (which names no `out`), from the cache or made now."""
        numbers, picture = self._path(key, ".json"), self._path(key, ".png")
        answer_type = ExplainAnswer if isinstance(request, ExplainRequest) else ActivationsAnswer
        async with self.lock:  # one request at a time: the same image asked twice at once is made once
            cached = _cached(numbers, picture)
            if cached is not None:
                return answer_type.model_validate_json(cached), picture
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            answer = await self.ask(request.model_copy(update={"out": str(picture)}))
            if not isinstance(answer, answer_type):
                raise ServiceUnavailable(f"looking inside the network answered {answer.kind!r}")
            _write(numbers, answer.model_dump_json(by_alias=True).encode())
            self._prune()
            return answer, picture

    def index_path(self, key: str) -> Path:
        """Where the filter index of the weights and test images `key` names is kept: a folder of its own, pruned
        apart from the pictures so that an index being written is never removed."""
        folder = self.cache_dir / "filters"
        if folder.is_dir():
            indices = sorted(folder.glob("*.npz"), key=_mtime)  # "*.npz": whole files only, never ".….tmp.npz"
            for old in [p for p in indices if not p.name.startswith(".")][:-INDICES_KEPT]:
                old.unlink(missing_ok=True)
        return folder / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.npz"

    async def filters(self, request: FiltersRequest, wait: float) -> FiltersAnswer:
        """How far the filter pass has come (starting it if need be), waiting up to `wait` s for it to finish."""
        loop = asyncio.get_running_loop()
        until = loop.time() + wait
        while True:
            answer = await self.ask(request)
            if not isinstance(answer, FiltersAnswer):
                raise ServiceUnavailable(f"looking inside the network answered {answer.kind!r}")
            if answer.state != "computing" or loop.time() >= until:
                return answer
            await asyncio.sleep(min(POLL_SECONDS, max(0.0, until - loop.time())))

    async def filter(self, request: FilterRequest, key: str) -> tuple[FilterAnswer, Path] | FiltersAnswer:
        """One filter's strongest images and their picture; the pass's progress instead while it is not done."""
        numbers, picture = self._path(key, ".json"), self._path(key, ".png")
        cached = _cached(numbers, picture)
        if cached is not None:
            return FilterAnswer.model_validate_json(cached), picture
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        answer = await self.ask(request.model_copy(update={"out": str(picture)}))
        if isinstance(answer, FiltersAnswer):
            return answer
        if not isinstance(answer, FilterAnswer):
            raise ServiceUnavailable(f"looking inside the network answered {answer.kind!r}")
        _write(numbers, answer.model_dump_json(by_alias=True).encode())
        self._prune()
        return answer, picture

    async def overview(self, request: OverviewRequest, key: str) -> Path | FiltersAnswer:
        """A layer's overview picture; the pass's progress instead while it is not done."""
        picture = self._path(key, ".png")
        if _cached(picture, picture) is not None:
            return picture
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        answer = await self.ask(request.model_copy(update={"out": str(picture)}))
        if isinstance(answer, FiltersAnswer):
            return answer
        if not isinstance(answer, Drawn):
            raise ServiceUnavailable(f"looking inside the network answered {answer.kind!r}")
        self._prune()
        return picture

    async def labels(self, data: DatasetRef) -> LabelsAnswer:
        """The classes of a job's test images."""
        answer = await self.ask(LabelsRequest(data=data))
        if not isinstance(answer, LabelsAnswer):
            raise ServiceUnavailable(f"looking inside the network answered {answer.kind!r}")
        return answer

    def _prune(self) -> None:
        files = sorted((p for p in self.cache_dir.glob("*.*") if not p.name.startswith(".")), key=_mtime)
        for old in files[:-CACHE_FILES]:
            old.unlink(missing_ok=True)

    async def close(self) -> None:
        """Stop the process, if there is one."""
        await self.child.close()


def _cached(numbers: Path, picture: Path) -> bytes | None:
    """The cached answer's bytes when both files are there, marked as just used (pruned last); else None."""
    try:
        data = numbers.read_bytes()
        os.utime(picture)
        os.utime(numbers)
    except FileNotFoundError:  # never made, or pruned: made again
        return None
    return data


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)  # whole or not at all, for a reader of the cache


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


async def _inside(request: Request) -> Inside:
    """The app's process for looking inside networks, made on first use (and stopped with the app, by `lifespan`)."""
    state = request.app.state
    if getattr(state, "inside", None) is None:
        state.inside = Inside(state.settings.cache_dir)
    inside: Inside = state.inside
    return inside


InsideDep = Annotated[Inside, Depends(_inside)]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Stop the app's process for looking inside networks, if it started one, when the app stops."""
    yield
    inside: Inside | None = getattr(app.state, "inside", None)
    if inside is not None:
        await inside.close()
