"""A helper process that the API keeps for work it must not do itself (drawing with matplotlib, inference with torch).

It is started on first use (so the API starts without loading any of that), restarted if it dies, and spoken to
one JSON line at a time over stdin/stdout: a request and its answer are models of `service.contracts`, validated on
both sides. An answer that takes longer than `timeout` kills it: the request gets a 503 and the next one starts a
fresh process.
"""

import asyncio
import sys
from typing import TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from service.contracts import Answer, problems
from service.errors import ServiceUnavailable

A = TypeVar("A", bound=Answer)
T = TypeVar("T")


class ChildProcess:
    """`python -m <module>`, answering one JSON request per line, one request at a time."""

    def __init__(self, module: str, what: str, timeout: float) -> None:
        self.module, self.what, self.timeout = module, what, timeout
        self.process: asyncio.subprocess.Process | None = None
        self.lock = asyncio.Lock()

    async def ask(self, request: BaseModel, answer: type[A]) -> A:
        """Send `request` and return the answer, an `answer`; ServiceUnavailable if the process cannot start, dies, is
        too slow or answers something else."""
        return await self.exchange(request, TypeAdapter(answer))

    async def exchange(self, request: BaseModel, answer: TypeAdapter[T]) -> T:
        """Send `request` and return the answer as `answer` validates it (a union of answers, say); ServiceUnavailable
        as for `ask`."""
        async with self.lock:  # the process answers in order: one request in flight
            process = await self._process()
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(request.model_dump_json(by_alias=True).encode() + b"\n")
                await process.stdin.drain()
                line = await asyncio.wait_for(process.stdout.readline(), self.timeout)
            except (TimeoutError, ConnectionError) as exc:
                await self.close()
                raise ServiceUnavailable(f"the {self.what} took longer than {self.timeout:g} s; try again") from exc
            if not line:
                await self.close()
                raise ServiceUnavailable(f"the {self.what} process stopped; try again")
            try:
                return answer.validate_json(line)
            except ValidationError as exc:  # not one of ours, or out of step: a fresh process is the cure
                await self.close()
                raise ServiceUnavailable(f"the {self.what} process answered nonsense ({problems(exc)})") from exc

    async def _process(self) -> asyncio.subprocess.Process:
        if self.process is None or self.process.returncode is not None:
            try:
                self.process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    self.module,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                )
            except OSError as exc:
                raise ServiceUnavailable(f"the {self.what} process could not start: {exc}") from exc
        return self.process

    async def close(self) -> None:
        """Stop the process, if there is one."""
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()
