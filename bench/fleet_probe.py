"""The fleet benchmark's clients: the API's reads timed while event streams are held open, and what the streams see.

Half the streams follow every job's status and progress (`GET /events`, as the jobs page does); the other half
each follow one running job (`GET /jobs/{id}/events`, as a job's page does) and, when it ends, the next running one.
Each epoch event they receive is stamped, to be matched against when the fleet recorded it.
"""

import asyncio
import json
import random
import time
from dataclasses import dataclass, field

import httpx

# What the readers ask, in turn: a page of the list, one job, one job's step losses (of the prefilled history).
ROUTES = ("GET /jobs", "GET /jobs/{id}", "GET /jobs/{id}/metrics/steps")


@dataclass
class ProbeResult:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {route: [] for route in ROUTES})
    errors: int = 0
    streams_opened: int = 0
    stream_events: int = 0
    stream_errors: int = 0
    # "job:epoch" → wall-clock times a stream got it, and that stream connected (what it replays is not "live")
    epoch_seen: dict[str, tuple[float, float]] = field(default_factory=dict)


async def probe(base: str, seconds: float, streams: int, readers: int, history: int) -> ProbeResult:
    """Hold `streams` event streams open and run `readers` clients reading in a loop, for `seconds`."""
    result = ProbeResult()
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=streams + readers + 8, max_keepalive_connections=streams + readers + 8)
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(30.0), limits=limits) as client:
        running: list[int] = []
        tasks = [asyncio.create_task(_running_jobs(client, running, deadline))]
        for i in range(streams):
            follow = i % 2 == 1
            tasks.append(asyncio.create_task(_stream(client, result, deadline, running if follow else None)))
        await asyncio.sleep(1.0)  # the streams are open before the reads are timed
        tasks += [asyncio.create_task(_reader(client, result, deadline, history)) for _ in range(readers)]
        await asyncio.gather(*tasks)
    return result


async def _running_jobs(client: httpx.AsyncClient, running: list[int], deadline: float) -> None:
    """Keep `running` filled with the ids of running jobs, for the streams that follow one."""
    while time.monotonic() < deadline:
        try:
            answer = await client.get("/jobs", params={"status": "running", "limit": 100})
            running[:] = [job["id"] for job in answer.json()["items"]]
        except httpx.HTTPError:
            pass
        await asyncio.sleep(2.0)


async def _reader(client: httpx.AsyncClient, result: ProbeResult, deadline: float, history: int) -> None:
    while time.monotonic() < deadline:
        for route in ROUTES:
            job = random.randint(1, max(1, history))
            path = {"GET /jobs": "/jobs", "GET /jobs/{id}": f"/jobs/{job}"}.get(route, f"/jobs/{job}/metrics/steps")
            start = time.perf_counter()
            try:
                answer = await client.get(path)
                ok = answer.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                result.latencies[route].append(time.perf_counter() - start)
            else:
                result.errors += 1


async def _stream(client: httpx.AsyncClient, result: ProbeResult, deadline: float, running: list[int] | None) -> None:
    """One stream, held until the deadline: every job's (`running` None), or one running job's after another."""
    while (left := deadline - time.monotonic()) > 0:
        if running is not None and not running:
            await asyncio.sleep(0.5)
            continue
        job = random.choice(running) if running is not None else None
        path = "/events" if job is None else f"/jobs/{job}/events"
        try:
            async with asyncio.timeout(left):
                async with client.stream("GET", path, timeout=httpx.Timeout(30.0, read=None)) as answer:
                    result.streams_opened += 1
                    connected = time.time()
                    kind = ""
                    async for line in answer.aiter_lines():
                        if line.startswith("event:"):
                            kind = line.removeprefix("event:").strip()
                        elif line.startswith("data:"):
                            result.stream_events += 1
                            if kind == "epoch":
                                data = json.loads(line.removeprefix("data:"))
                                key = f"{job}:{data['epoch']}"  # an epoch event names its epoch, not its job
                                result.epoch_seen.setdefault(key, (time.time(), connected))
        except TimeoutError:
            return
        except httpx.HTTPError:
            result.stream_errors += 1
            await asyncio.sleep(0.5)
