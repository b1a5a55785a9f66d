"""`python -m bench.claim`: how long a worker's claim takes with 1,000 queued jobs from 30 people, on SQLite and
Postgres.

Each database is fresh and migrated by Alembic: SQLite a file in `--dir`, Postgres a schema of its own on
`--postgres` (dropped afterwards). 1,000 jobs are queued as `POST /jobs` stores them, their owners drawn from 30
people with a few heavy users (as a class with a sweep or two looks), and then `--claims` claims are made one after
another by as many workers, each timed from the start of its transaction to its commit, as `worker.loop` makes them:
the queue shrinks by one each time and the people running jobs pile up, which is the work the fair order does.

Run from another checkout, it measures that checkout's claim: the jobs get owners only where the table has them.
"""

import argparse
import random
import shutil
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text, update

from bench.processes import migrate
from service import jobs
from service.db import make_engine, make_sessionmaker, transaction
from service.models import Job
from service.spec import JobSpec

QUEUED, PEOPLE = 1000, 30
DEFAULT_CLAIMS = 200
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@contextmanager
def sqlite_url(folder: Path) -> Iterator[str]:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        url = f"sqlite:///{folder / 'claim.db'}"
        migrate(url)
        yield url
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def postgres_url(server: str) -> Iterator[str]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = f"{server}?options=-csearch_path%3D{schema}"
        migrate(url)
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def measure(url: str, claims: int, seed: int = 0) -> list[float]:
    """Seconds each of `claims` claims took over 1,000 queued jobs of 30 people."""
    rng = random.Random(seed)
    # A few people queue much more (a sweep), most a handful: weights 1…30 squared.
    owners = [f"student{i:02d}" for i in range(PEOPLE)]
    weights = [(i + 1) ** 2 for i in range(PEOPLE)]
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    try:
        with transaction(sessions) as s:
            ids = [jobs.create_job(s, JobSpec(dataset="synthetic")).id for _ in range(QUEUED)]
            if hasattr(Job, "owner"):
                for job_id in ids:
                    owner = rng.choices(owners, weights)[0]
                    s.execute(update(Job).where(Job.id == job_id).values(owner=owner))
        took = []
        for n in range(claims):
            start = time.perf_counter()
            with transaction(sessions) as s:
                claimed = jobs.claim_next(s, f"w{n}", has_cuda=False, lease_seconds=60, alive_seconds=30)
            took.append(time.perf_counter() - start)
            assert claimed is not None
        return took
    finally:
        engine.dispose()


def summary(name: str, took: list[float]) -> str:
    ms = sorted(t * 1000 for t in took)
    p95 = ms[int(0.95 * (len(ms) - 1))]
    return f"{name}: {len(ms)} claims, median {statistics.median(ms):.2f} ms, p95 {p95:.2f} ms, max {ms[-1]:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.claim", description=__doc__)
    parser.add_argument("--claims", type=int, default=DEFAULT_CLAIMS)
    parser.add_argument("--dir", type=Path, default=Path("var/bench-claim"))
    parser.add_argument("--postgres", default=POSTGRES, help="a server URL; empty: SQLite only")
    args = parser.parse_args()
    with sqlite_url(args.dir) as url:
        print(summary("SQLite", measure(url, args.claims)))
    if args.postgres:
        with postgres_url(args.postgres) as url:
            print(summary("Postgres", measure(url, args.claims)))


if __name__ == "__main__":
    main()
