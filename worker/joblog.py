"""A job's own log: the worker's lines about one job, kept with the job so that they outlive the worker.

Lines about a job are logged through a `JobLogger(job_id)`: each begins `job 7: ` and carries the job's id on its
record (`extra={"job_id": 7}`). While a worker runs a job, `JobLog` collects the `worker` log's records that carry
that id (with the traceback of an error), and the heartbeat stores what was collected every beat
(`service.events.emit_logs`): `GET /jobs/{id}/logs` and the job's event stream read them back.
"""

import logging
from collections.abc import MutableMapping
from typing import Any

# `2026-11-29 15:04:05,123 INFO job 7: epoch 1/3 …`: the same lines the worker prints, tracebacks included.
FORMAT = "%(asctime)s %(levelname)s %(message)s"


class JobLogger(logging.LoggerAdapter[logging.Logger]):
    """The `worker` log, for lines about job `job_id`: each says so (`job 7: …`) and carries the id for `JobLog`."""

    def __init__(self, job_id: int) -> None:
        super().__init__(logging.getLogger("worker"), {"job_id": job_id})
        self.job_id = job_id

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**kwargs.get("extra", {}), "job_id": self.job_id}
        return f"job {self.job_id}: {msg}", kwargs


class JobLog(logging.Handler):
    """Collects the `worker` log's records about job `job_id` (those a `JobLogger(job_id)` made) until `take`."""

    def __init__(self, job_id: int) -> None:
        super().__init__(level=logging.INFO)
        self.job_id = job_id
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter(FORMAT))
        self.addFilter(lambda record: getattr(record, "job_id", None) == job_id)

    def emit(self, record: logging.LogRecord) -> None:  # called with the handler's lock held, once the filter passed
        self.lines.append(self.format(record))

    def take(self) -> list[str]:
        """The lines collected since the last call, oldest first."""
        self.acquire()
        try:
            lines, self.lines = self.lines, []
        finally:
            self.release()
        return lines

    def put_back(self, lines: list[str]) -> None:
        """Lines that could not be stored this time, to go first next time."""
        self.acquire()
        try:
            self.lines[:0] = lines
        finally:
            self.release()

    def __enter__(self) -> "JobLog":
        logging.getLogger("worker").addHandler(self)
        return self

    def __exit__(self, *_: object) -> None:
        logging.getLogger("worker").removeHandler(self)
