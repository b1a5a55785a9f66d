"""A job's own log: the worker's lines about one job, kept with the job so that they outlive the worker.

While a worker runs a job, `JobLog` collects every line of the `worker` log that names it (`job 7: …`, with the
traceback of an error), and the heartbeat stores what was collected every beat (`service.events.emit_logs`):
`GET /jobs/{id}/logs` and the job's event stream read them back.
"""

import logging

# `2026-11-29 15:04:05,123 INFO job 7: epoch 1/3 …`: the same lines the worker prints, tracebacks included.
FORMAT = "%(asctime)s %(levelname)s %(message)s"


class JobLog(logging.Handler):
    """Collects the worker's log lines about job `job_id` until `take` hands them over."""

    def __init__(self, job_id: int) -> None:
        super().__init__(level=logging.INFO)
        self.job_id = job_id
        self.mention = f"job {job_id}:"
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter(FORMAT))

    def emit(self, record: logging.LogRecord) -> None:  # called with the handler's lock held
        if self.mention in record.getMessage():
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
