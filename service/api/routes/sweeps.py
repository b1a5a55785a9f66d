"""Sweeps: queue a grid of specs as jobs, follow them on one leaderboard, cancel what is left."""

import math
from collections.abc import Iterable
from typing import Annotated

from fastapi import APIRouter, Body, Response
from sqlalchemy.orm import Session

from service import idempotency, queries, sweeps
from service.api import compare
from service.api.auth import PersonDep
from service.api.deps import (
    JSON_BODY,
    DatabaseDep,
    IdempotencyKey,
    PageLimit,
    PageOffset,
    ReadDatabaseDep,
    SettingsDep,
    SweepIdPath,
)
from service.api.presenter import BODY_ERRORS, OVER_QUOTA
from service.api.sweep_schemas import LeaderboardEntry, SweepJobOut, SweepList, SweepOut, SweepSummary
from service.config import Settings
from service.models import FINISHED, Status, Sweep
from service.spec import DEMO, JobSpec, label
from service.sweep_spec import SweepIn
from service.users import Person, access

router = APIRouter(prefix="/sweeps", tags=["sweeps"])

EXAMPLES = {
    "optimizers and learning rates": {
        "summary": "Adam and SGD at two learning rates each on the quick demo: 4 jobs",
        "value": {
            "name": "optimizers",
            "base": DEMO,
            "grid": {"optimizer": ["adam", "sgd"], "learning_rate": [0.001, 0.0001]},
        },
    },
}


def _counts(statuses: Iterable[str]) -> dict[str, int]:
    """How many of the statuses are each status (every status listed, with 0 for none)."""
    counts = dict.fromkeys(map(str, Status), 0)
    for status in statuses:
        counts[status] += 1
    return counts


def one(session: Session, sweep_id: int) -> SweepOut:
    """A sweep with its jobs, their latest test accuracy, and the leaderboard of those that have one; NotFound for
    an unknown id."""
    sweep = queries.sweep_row(session, sweep_id)
    jobs = queries.sweep_jobs(session, [sweep.id])[sweep.id]
    latest = queries.latest_epochs(session, [j.id for j in jobs])
    params = {j.id: {key: j.spec.get(key) for key in sweep.grid} for j in jobs}
    ranked = sorted(
        (j for j in jobs if j.id in latest),
        key=lambda j: (-latest[j.id].test_accuracy, latest[j.id].test_loss, j.id),
    )
    leaderboard = [
        LeaderboardEntry(
            rank=rank,
            job_id=j.id,
            status=Status(j.status),
            params=params[j.id],
            label=label(params[j.id]) or f"job {j.id}",
            epoch=latest[j.id].epoch,
            test_accuracy=latest[j.id].test_accuracy,
            test_loss=latest[j.id].test_loss,
        )
        for rank, j in enumerate(ranked, start=1)
    ]
    # A comparison shows at most compare.MAX_JOBS jobs: the best of them, then those with no epoch yet.
    shown = [j.id for j in ranked] + [j.id for j in jobs if j.id not in latest]
    return SweepOut(
        id=sweep.id,
        name=sweep.name,
        owner=sweep.owner,
        created_at=sweep.created_at,
        base=JobSpec.model_validate(sweep.base),
        grid=sweep.grid,
        counts=_counts(j.status for j in jobs),
        finished=all(j.status in FINISHED for j in jobs),
        jobs=[
            SweepJobOut(
                id=j.id,
                status=Status(j.status),
                params=params[j.id],
                label=label(params[j.id]) or f"job {j.id}",
                epochs_completed=j.epochs_completed,
                test_accuracy=latest[j.id].test_accuracy if j.id in latest else None,
                error=j.error,
                url=f"/jobs/{j.id}",
            )
            for j in jobs
        ],
        leaderboard=leaderboard,
        links={
            "self": f"/sweeps/{sweep.id}",
            "cancel": f"/sweeps/{sweep.id}/cancel",
            "jobs": f"/jobs?sweep_id={sweep.id}",
            **(compare.links(shown[: compare.MAX_JOBS]) if shown else {}),
        },
    )


def created(session: Session, body: SweepIn, idempotency_key: str | None, who: Person, settings: Settings) -> SweepOut:
    """The sweep queued for `body` (or the one an earlier request with the same key queued), within `who`'s quotas."""
    size = math.prod(len(values) for values in body.grid.values())
    if idempotency.earlier(session, Sweep, idempotency_key, idempotency.fingerprint(body)) is None:
        access.require_quota(session, who, size, settings.max_active_jobs, settings.max_sweep_jobs, sweep=True)
    return one(session, sweeps.create_sweep(session, body, idempotency_key, owner=who.name).id)


def page(session: Session, limit: int, offset: int) -> SweepList:
    """One page of sweeps, newest first, their jobs counted by status."""
    rows, total = queries.list_sweeps(session, limit, offset)
    jobs = queries.sweep_jobs(session, [r.id for r in rows])
    items = [
        SweepSummary(
            id=r.id,
            name=r.name,
            owner=r.owner,
            created_at=r.created_at,
            grid=r.grid,
            jobs_total=len(jobs[r.id]),
            counts=_counts(j.status for j in jobs[r.id]),
            finished=all(j.status in FINISHED for j in jobs[r.id]),
            url=f"/sweeps/{r.id}",
        )
        for r in rows
    ]
    return SweepList(items=items, total=total, limit=limit, offset=offset)


def cancelled(session: Session, sweep_id: int, who: Person) -> SweepOut:
    """The sweep once what was left of it is cancelled, by its owner or an admin."""
    access.require_owner(who, queries.sweep_row(session, sweep_id).owner, f"sweep {sweep_id}", "cancel")
    sweeps.cancel_sweep(session, sweep_id, by=who.name)
    return one(session, sweep_id)


@router.post("", status_code=201, responses={**BODY_ERRORS, **OVER_QUOTA}, dependencies=JSON_BODY)
async def submit_sweep(
    db: DatabaseDep,
    who: PersonDep,
    settings: SettingsDep,
    response: Response,
    body: Annotated[SweepIn, Body(openapi_examples=EXAMPLES)],
    idempotency_key: IdempotencyKey = None,
) -> SweepOut:
    """Queue one job per combination of the grid's values over the base spec (at most 64), all or none."""
    sweep = await db.run(created, body, idempotency_key, who, settings)
    response.headers["Location"] = f"/sweeps/{sweep.id}"
    return sweep


@router.get("")
async def list_sweeps(db: ReadDatabaseDep, limit: PageLimit = 20, offset: PageOffset = 0) -> SweepList:
    """List sweeps, newest first, with their jobs counted by status."""
    return await db.run(page, limit, offset)


@router.get("/{sweep_id}")
async def get_sweep(sweep_id: SweepIdPath, db: ReadDatabaseDep) -> SweepOut:
    """A sweep's jobs with their status and latest test accuracy, the leaderboard (best first), comparison links."""
    return await db.run(one, sweep_id)


@router.post("/{sweep_id}/cancel")
async def cancel_sweep(sweep_id: SweepIdPath, db: DatabaseDep, who: PersonDep) -> SweepOut:
    """Cancel what is left: queued jobs at once, running ones within a step; finished ones stay as they are. A member
    cancels only their own sweeps."""
    return await db.run(cancelled, sweep_id, who)
