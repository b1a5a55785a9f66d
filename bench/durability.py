"""`python -m bench.durability`: what SQLite's `synchronous=FULL` costs a write, against WAL's usual NORMAL, and that
reads do not notice.

Through the service's own engine (`service.db.make_engine`, FULL) and the same engine with `synchronous=NORMAL` set
after it on every connection, each over a fresh SQLite file migrated by Alembic in `--dir` (by default beside the
service's own database, on the disk whose fsync is being measured): a write is one job queued in its own
transaction as `POST /jobs` stores it (`jobs.create_job`: the job's row and its `queued` event), a read is one job
as `GET /jobs/{id}` reads it (`queries.job_row`). The two settings take turns in rounds, so a neighbour's burst of
disk work falls on both. Prints the median and p99 of each, and a markdown table for the README.
"""

import argparse
import random
import shutil
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, text

from bench.processes import migrate
from service import jobs, queries
from service.db import make_engine, make_sessionmaker, transaction
from service.spec import JobSpec

SETTINGS = ("FULL", "NORMAL")
# `PRAGMA synchronous` reads back a number: 1 is NORMAL, 2 is FULL.
READ_BACK = {"NORMAL": 1, "FULL": 2}
# Writes and reads per setting, in this many alternating rounds; the first round's first few are a warm-up.
DEFAULT_COUNT, ROUNDS, WARM_UP = 600, 6, 10


@contextmanager
def engine_with(setting: str, folder: Path) -> Iterator[Engine]:
    """The service's engine over a fresh migrated database in `folder`, with `synchronous` as `setting`."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    url = f"sqlite:///{folder / 'jobs.db'}"
    migrate(url)
    engine = make_engine(url)
    if setting != "FULL":
        # Registered after make_engine's own listener, so it runs after it and has the last word.
        @event.listens_for(engine, "connect")
        def _relax(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute(f"PRAGMA synchronous={setting}")

    with engine.connect() as conn:
        actual = conn.execute(text("PRAGMA synchronous")).scalar()
    assert actual == READ_BACK[setting], f"asked for {setting}, the connection says {actual}"
    try:
        yield engine
    finally:
        engine.dispose()
        shutil.rmtree(folder, ignore_errors=True)


def timed(work: Callable[[], object], n: int) -> list[float]:
    """`work` done `n` times; each time's duration in milliseconds."""
    out = []
    for _ in range(n):
        start = time.perf_counter()
        work()
        out.append((time.perf_counter() - start) * 1000)
    return out


def p99(values: list[float]) -> float:
    return sorted(values)[min(len(values) - 1, round(0.99 * (len(values) - 1)))]


def measure(folder: Path, count: int) -> dict[str, dict[str, list[float]]]:
    """Per setting, the write and read times (ms) of `count` jobs each, the settings alternating by round."""
    spec = JobSpec()
    times: dict[str, dict[str, list[float]]] = {s: {"write": [], "read": []} for s in SETTINGS}
    with engine_with("FULL", folder / "full") as full, engine_with("NORMAL", folder / "normal") as normal:
        engines = {"FULL": full, "NORMAL": normal}
        for round_ in range(ROUNDS):
            for setting in SETTINGS if round_ % 2 == 0 else reversed(SETTINGS):
                sessions = make_sessionmaker(engines[setting])
                readers = make_sessionmaker(engines[setting], read_only=True)
                ids: list[int] = []

                def write(sessions: Any = sessions, ids: list[int] = ids) -> None:
                    with transaction(sessions) as s:
                        ids.append(jobs.create_job(s, spec).id)

                if round_ == 0:
                    timed(write, WARM_UP)
                times[setting]["write"] += timed(write, count // ROUNDS)

                def read(readers: Any = readers, ids: list[int] = ids) -> None:
                    with transaction(readers) as s:
                        queries.job_row(s, random.choice(ids))

                times[setting]["read"] += timed(read, count // ROUNDS)
    return times


def table(times: dict[str, dict[str, list[float]]]) -> str:
    """The figures as a markdown table."""
    lines = ["| `synchronous` | write median | write p99 | read median | read p99 |", "|---|---|---|---|---|"]
    for setting, t in times.items():
        w, r = t["write"], t["read"]
        lines.append(
            f"| {setting} | {statistics.median(w):.2f} ms | {p99(w):.2f} ms "
            f"| {statistics.median(r):.3f} ms | {p99(r):.3f} ms |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.durability", description=__doc__)
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT, help="writes and reads per setting")
    parser.add_argument("--dir", type=Path, default=Path("var/bench-durability"), help="where the databases go")
    args = parser.parse_args()
    random.seed(0)
    times = measure(args.dir, args.count)
    print(table(times))
    full, normal = (statistics.median(times[s]["write"]) for s in SETTINGS)
    print(f"\nFULL costs a write {full - normal:+.2f} ms at the median ({full / normal:.1f}× NORMAL).")


if __name__ == "__main__":
    main()
