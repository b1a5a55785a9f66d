"""Predictions from trained jobs, made by a child process (`python -m worker.predict`) so that the API never loads
torch: it keeps the most recently used few models loaded, and gets 3,072 bytes of 32×32 RGB per request."""

import asyncio
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from service.api import images
from service.api.child import ChildProcess
from service.contracts import PredictAnswer, PredictRequest
from service.errors import ServiceUnavailable

# Uploads decoded at once: a 40-megapixel PNG holds ~120 MB while it is reduced; two at a time bound that.
DECODE_SLOTS = 2


class Predictor:
    """The API's inference process, and the decoding of uploads on the way to it."""

    def __init__(self, timeout: float = 120.0) -> None:
        # 120 s: the first prediction starts the process and loads torch and a 228 MB model; later ones take well
        # under a second.
        self.child = ChildProcess("worker.predict", "prediction", timeout)
        self.decoding = asyncio.Semaphore(DECODE_SLOTS)

    async def prepare(self, data: bytes) -> bytes:
        """The upload as 32×32 RGB (see `images.to_cifar`), decoded in a worker thread."""
        images.check_size(data)
        async with self.decoding:
            return await run_in_threadpool(images.to_cifar, data)

    async def probabilities(self, weights: Path, key: str, image_size: int, pixels: bytes) -> list[float]:
        """Each class's probability for the 32×32 RGB `pixels`, from the model in `weights` (cached by `key`)."""
        request = PredictRequest(weights=str(weights), key=key, image_size=image_size, pixels=pixels)
        answer = await self.child.ask(request, PredictAnswer)
        if answer.error is not None:
            raise ServiceUnavailable(f"the prediction failed: {answer.error}")
        return answer.probabilities

    async def close(self) -> None:
        """Stop the inference process, if there is one."""
        await self.child.close()
