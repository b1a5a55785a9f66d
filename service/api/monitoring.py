"""What an operator's Prometheus scrapes from `GET /metrics`: the API's requests, the queue and the workers.

Request counts and latencies are kept in memory per API process, labelled by route template (`/jobs/{job_id}`),
never by raw path, so their number stays bounded. The queue and the workers are read from the database at scrape
time, so they are right whichever process changed them.
"""

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIX = "alexnet_jobs"
# Responses that last as long as the client listens (event streams) say nothing about latency.
STREAMING_SUFFIXES = ("/events",)
# From a cached SQLite read (~0.3 ms) to a drawing or a prediction (seconds).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Monitor:
    """One API process's request metrics, and the exposition of them with a database snapshot."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            f"{PREFIX}_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "Time to answer an HTTP request (event streams and ?wait= long polls excluded), by method and route "
            "template.",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float, waited: bool = False) -> None:
        """Count one answered request, and time it unless it was an event stream or a long poll (`waited`: it asked
        to be held until something happened, so its time is the job's, not the API's)."""
        self.requests.labels(method, route, str(status)).inc()
        if not waited and not route.endswith(STREAMING_SUFFIXES):
            self.latency.labels(method, route).observe(seconds)

    def exposition(self, snapshot: "Snapshot") -> bytes:
        """The text format Prometheus reads: this process's request metrics, then the snapshot's."""
        database = CollectorRegistry()
        database.register(snapshot)
        return generate_latest(self.registry) + generate_latest(database)


class Snapshot:
    """The queue and the workers as one scrape read them; a collector of its own, registered per scrape."""

    def __init__(
        self, jobs: Mapping[str, int], workers_alive: int, epochs: int, speeds: Sequence[tuple[str, float]]
    ) -> None:
        self.jobs, self.workers_alive, self.epochs, self.speeds = jobs, workers_alive, epochs, speeds

    def collect(self) -> Iterable[Metric]:
        """The snapshot as Prometheus metrics (what a registry asks a collector for)."""
        jobs = GaugeMetricFamily(f"{PREFIX}_jobs", "Jobs in each status.", labels=["status"])
        for status, n in self.jobs.items():
            jobs.add_metric([status], n)
        yield jobs
        yield GaugeMetricFamily(
            f"{PREFIX}_workers_alive", "Workers that heartbeated recently.", value=self.workers_alive
        )
        yield CounterMetricFamily(
            f"{PREFIX}_epochs_completed", "Training epochs recorded, over all jobs kept.", value=self.epochs
        )
        speed = GaugeMetricFamily(
            f"{PREFIX}_worker_images_per_second",
            "Training images/s in the last epoch of the job each live worker is running.",
            labels=["worker"],
        )
        for worker, images_per_second in self.speeds:
            speed.add_metric([worker], images_per_second)
        yield speed


class RequestMetrics:
    """ASGI middleware: counts and times every HTTP request into `monitor`."""

    def __init__(self, app: ASGIApp, monitor: Monitor) -> None:
        self.app, self.monitor = app, monitor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            seconds = time.perf_counter() - started
            self.monitor.observe(scope["method"], _route(scope), status, seconds, _long_poll(scope))


def _route(scope: Mapping[str, Any]) -> str:
    """The matched route's template; one label for everything unmatched, so a scanner cannot grow the series."""
    path = getattr(scope.get("route"), "path", None)
    return str(path) if path else "unmatched"


def _long_poll(scope: Mapping[str, Any]) -> bool:
    """Whether the request asked to wait (`?wait=S`, S > 0: GET /jobs/{id}, the filter pass's routes)."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("wait", [])
    try:
        return any(float(v) > 0 for v in values)
    except ValueError:  # refused with a 422, at once
        return False
