"""The fleet benchmark's database: a PostgreSQL database of its own, migrated, pre-filled with history by SQL, and
what it costs (its backends' CPU time from /proc, its transactions from pg_stat_database).

A database of its own, not a schema: CPU time and transaction counts are read per database, so other work on the
same server does not count.
"""

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.processes import migrate
from service.spec import JobSpec

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# A prefilled job's history: 2 epochs of 10 steps each, and the events a finished job of today keeps for them.
PREFILL_EPOCHS = 2
PREFILL_EVENTS = (
    ("status", '{"status": "queued", "error": null, "waiting_for": null}'),
    ("status", '{"status": "running", "error": null, "waiting_for": null}'),
    ("progress", '{"steps_done": 10, "steps_total": 20, "eta_seconds": 1.0, "epochs_completed": 1}'),
    ("epoch", '{"epoch": 1}'),
    ("progress", '{"steps_done": 20, "steps_total": 20, "eta_seconds": 0.0, "epochs_completed": 2}'),
    ("epoch", '{"epoch": 2}'),
    ("artifact", '{"name": "metrics.csv"}'),
    ("log", '{"line": "job succeeded"}'),
    ("status", '{"status": "succeeded", "error": null, "waiting_for": null}'),
    ("end", '{"status": "succeeded"}'),
)


def recreate(url: str) -> None:
    """Drop the database `url` names (if there) and create it empty, migrated to the newest schema."""
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{target.database}"'))
        # Every CPU second in the backends that serve it, where /proc finds them: parallel workers come and go
        # between two samples, and their time would be missed.
        conn.execute(text(f'ALTER DATABASE "{target.database}" SET max_parallel_workers_per_gather = 0'))
    admin.dispose()
    migrate(url)


def drop(url: str) -> None:
    """Remove the benchmark's database."""
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
    admin.dispose()


def prefill(url: str, jobs: int) -> float:
    """`jobs` finished jobs with their epochs and events, made by SQL (generate_series); returns the seconds taken."""
    spec = JobSpec(dataset="synthetic", epochs=PREFILL_EPOCHS, image_size=63).model_dump_json()
    start = time.monotonic()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO jobs (id, spec, status, device_request, created_at, started_at, finished_at, device,"
                " parameter_count, epochs_completed, steps_done, steps_total, attempts, max_attempts,"
                " cancel_requested) SELECT g, CAST(:spec AS json), 'succeeded', 'auto',"
                " now() - make_interval(secs => :n - g), now() - make_interval(secs => :n - g),"
                " now() - make_interval(secs => :n - g), 'cuda (simulated)', 57044810, 2, 20, 20, 1, 3, false"
                " FROM generate_series(1, :n) AS g"
            ),
            {"spec": spec, "n": jobs},
        )
        conn.execute(text("SELECT setval(pg_get_serial_sequence('jobs', 'id'), :n)"), {"n": jobs})
        conn.execute(
            text(
                "INSERT INTO epoch_metrics (job_id, epoch, train_loss, test_loss, test_accuracy, seconds,"
                " images_per_second, details, created_at) SELECT g, e, 1.5, 1.6, 0.5, 1.0, 30000,"
                " CAST(:details AS json), now()"
                " FROM generate_series(1, :n) AS g, generate_series(1, :epochs) AS e"
            ),
            {"n": jobs, "epochs": PREFILL_EPOCHS, "details": json.dumps({"step_losses": [1.5] * 10})},
        )
        conn.execute(
            text(
                "INSERT INTO job_events (job_id, kind, data, created_at)"
                " SELECT g, k.kind, CAST(k.data AS json), now() FROM generate_series(1, :n) AS g,"
                " unnest(CAST(:kinds AS text[]), CAST(:datas AS text[])) WITH ORDINALITY AS k(kind, data, i)"
                " ORDER BY g, k.i"
            ),
            {"n": jobs, "kinds": [k for k, _ in PREFILL_EVENTS], "datas": [d for _, d in PREFILL_EVENTS]},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return time.monotonic() - start


def clear_live(url: str) -> None:
    """End what a step left: its queued and running jobs cancelled, its simulated workers gone."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE jobs SET status = 'cancelled', finished_at = now(), lease_token = NULL,"
                " lease_expires_at = NULL WHERE status IN ('queued', 'running')"
            )
        )
        conn.execute(text("UPDATE workers SET stopped_at = now() WHERE stopped_at IS NULL"))
    engine.dispose()


@dataclass(frozen=True)
class DbSample:
    """The database's cumulative CPU seconds (its backends') and transactions, at one moment."""

    at: float
    cpu: float
    transactions: int


class DbMeter:
    """Samples one database's cost: CPU seconds of the backends serving it, and its committed transactions."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url, pool_size=1)
        self.database = make_url(url).database
        self.ended: dict[int, float] = {}  # backends seen before and gone since: their last CPU time still counts
        self.seen: dict[int, float] = {}

    def sample(self) -> DbSample:
        with self.engine.connect() as conn:
            pids = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()"),
                {"db": self.database},
            ).scalars()
            transactions = conn.execute(
                text("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = :db"),
                {"db": self.database},
            ).scalar_one()
        now = {pid: cpu for pid in pids if (cpu := _cpu_seconds(pid)) is not None}
        for pid, cpu in self.seen.items():
            if pid not in now:
                self.ended[pid] = cpu
        self.seen = now
        return DbSample(time.monotonic(), sum(now.values()) + sum(self.ended.values()), int(transactions))

    def close(self) -> None:
        self.engine.dispose()


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process `pid` (Linux's /proc), None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime and stime, the 14th and 15th fields


def table_bytes(url: str) -> dict[str, int]:
    """Each table's size on disk, its indexes included."""
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT relname, pg_total_relation_size(relid) FROM pg_stat_user_tables"
                " WHERE relname IN ('jobs', 'epoch_metrics', 'job_events')"
            )
        ).all()
    engine.dispose()
    return {name: int(size) for name, size in rows}
