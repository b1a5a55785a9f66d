"""The worker registry: who is alive, on which device, running what; `/health` reads it, claims consult it."""

from sqlalchemy import update
from sqlalchemy.orm import Session

from service.models import Worker, utcnow


def register_worker(
    session: Session, worker_id: str, hostname: str, pid: int, device: str, bf16_native: bool = False
) -> None:
    """Announce a worker (or refresh it after a restart under the same id)."""
    now = utcnow()
    worker = session.get(Worker, worker_id)
    if worker is None:
        session.add(
            Worker(
                id=worker_id,
                hostname=hostname,
                pid=pid,
                device=device,
                bf16_native=bf16_native,
                started_at=now,
                last_seen_at=now,
            )
        )
    else:
        worker.hostname, worker.pid, worker.device, worker.bf16_native = hostname, pid, device, bf16_native
        worker.started_at = worker.last_seen_at = now
        worker.stopped_at = worker.job_id = worker.problem = None


def touch_worker(session: Session, worker_id: str, job_id: int | None) -> None:
    """A worker's own heartbeat: it is alive, and running `job_id`."""
    session.execute(update(Worker).where(Worker.id == worker_id).values(last_seen_at=utcnow(), job_id=job_id))


def worker_stopped(session: Session, worker_id: str) -> None:
    """A worker's goodbye, so /health stops listing it at once."""
    session.execute(update(Worker).where(Worker.id == worker_id).values(stopped_at=utcnow(), job_id=None))


def set_problem(session: Session, worker_id: str, problem: str | None) -> None:
    """Why a live worker takes no jobs (shown by /health, which then says `degraded`), or None once it does again."""
    session.execute(update(Worker).where(Worker.id == worker_id).values(problem=problem))
