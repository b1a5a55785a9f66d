"""Sweeps: a base spec and a grid of values queued as the cartesian product of jobs, and cancelled together.

Each combination is validated as POST /jobs validates a spec, all of them before anything is written: a sweep is
queued whole or not at all. The jobs are made by `jobs.create_job`; cancelling one is `jobs.cancel_job`.
"""

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from difflib import get_close_matches
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from service import idempotency, jobs
from service.errors import Conflict, Detail, InvalidRequest
from service.models import Job, Status, Sweep, utcnow
from service.queries import sweep_row
from service.spec import JobSpec, label
from service.sweep_spec import MAX_JOBS, SweepIn

# A job's name is at most this long (JobSpec.name's bound).
NAME_LENGTH = 200
# How much of an invalid combination a message quotes: enough to recognise it, short enough to read.
MAX_QUOTED = 300


def expand(base: JobSpec, grid: Mapping[str, Sequence[Any]]) -> list[tuple[dict[str, Any], JobSpec]]:
    """Every combination of the grid's values over `base` (the first key varying slowest), with its validated spec.

    InvalidRequest for a key that is no spec field, an empty list, a repeated value, more than MAX_JOBS jobs, or a
    combination that is not a valid spec (the first, named).
    """
    unknown = {key: _meant(key) for key in grid if key not in JobSpec.model_fields}
    if unknown:
        verb = "is" if len(unknown) == 1 else "are"
        guesses = [f'"{meant}" for {key!r}' for key, meant in unknown.items() if meant]
        hint = f" (did you mean {', '.join(guesses)}?)" if guesses else ""
        raise InvalidRequest(
            f"grid keys must be job spec fields; {', '.join(map(repr, unknown))} {verb} not{hint}",
            [
                Detail(
                    loc=["body", "grid", key],
                    msg=f'not a job spec field; did you mean "{meant}"?' if meant else "not a job spec field",
                    type="unknown_field",
                )
                for key, meant in unknown.items()
            ],
        )
    for key, values in grid.items():
        if not values:
            raise InvalidRequest(f"grid.{key} is empty; give it at least one value")
        if any(a == b for a, b in itertools.combinations(values, 2)):
            raise InvalidRequest(f"grid.{key} repeats a value; each value makes its own jobs")
    count = math.prod(len(values) for values in grid.values())
    if count > MAX_JOBS:
        sizes = " × ".join(str(len(values)) for values in grid.values())
        raise InvalidRequest(f"the grid makes {sizes} = {count} jobs; a sweep queues at most {MAX_JOBS}")
    start = base.model_dump(mode="json")
    combinations = []
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values, strict=True))
        try:
            spec = JobSpec.model_validate({**start, **params})
        except ValidationError as exc:
            raise _invalid_combination(params, exc) from None
        resolved = spec.model_dump(mode="json")
        combinations.append(({key: resolved[key] for key in grid}, spec))
    return combinations


def _meant(key: str) -> str | None:
    """The spec field a misspelt grid key is close to (as a misspelt top-level field gets), if one is."""
    close = get_close_matches(key, JobSpec.model_fields, n=1)
    return close[0] if close else None


def _invalid_combination(params: dict[str, Any], exc: ValidationError) -> InvalidRequest:
    shown = ", ".join(f"{key}={json.dumps(value)}" for key, value in params.items())
    if len(shown) > MAX_QUOTED:
        shown = shown[: MAX_QUOTED - 1] + "…"
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    details = [
        Detail(loc=["body", "grid" if e["loc"][0] in params else "base", *e["loc"]], msg=e["msg"], type=e["type"])
        for e in errors
    ]
    reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
    return InvalidRequest(f"the combination {{{shown}}} is not a valid job spec ({reasons})", details)


def create_sweep(
    session: Session, body: SweepIn, idempotency_key: str | None = None, owner: str | None = None
) -> Sweep:
    """Queue a sweep's jobs, or return the sweep already created under the same idempotency key and body (Conflict
    for the same key with another body)."""
    combinations = expand(body.base, body.grid)
    fingerprint = idempotency.fingerprint(body)
    existing = idempotency.earlier(session, Sweep, idempotency_key, fingerprint)
    if existing is not None:
        return existing
    # The grid as the specs resolved it (2.0 epochs is 2), each value once, in the order given.
    grid: dict[str, list[Any]] = {key: [] for key in body.grid}
    for params, _ in combinations:
        for key, value in params.items():
            if value not in grid[key]:
                grid[key].append(value)
    sweep = Sweep(
        name=body.name,
        base=body.base.model_dump(mode="json"),
        grid=grid,
        created_at=utcnow(),
        idempotency_key=idempotency_key,
        request_hash=fingerprint if idempotency_key is not None else None,
        owner=owner,
    )
    stored = idempotency.insert(session, sweep)
    if stored is not sweep:  # a concurrent request with the same key created it first
        return stored
    # Each job named by its sweep and its grid values ("optimizers · sgd lr 1e-3"), wherever jobs are listed.
    prefix = body.base.name or body.name or f"sweep {sweep.id}"
    for params, spec in combinations:
        name = f"{prefix} · {label(params)}"[:NAME_LENGTH]
        jobs.create_job(session, spec.model_copy(update={"name": name}), sweep_id=sweep.id, owner=owner)
    return sweep


def cancel_sweep(session: Session, sweep_id: int, by: str | None = None) -> None:
    """Cancel what is left of a sweep: its queued jobs at once, its running ones by asking their workers."""
    sweep_row(session, sweep_id)  # NotFound first
    unfinished = session.scalars(
        select(Job.id).where(Job.sweep_id == sweep_id, Job.status.in_((Status.QUEUED, Status.RUNNING)))
    )
    for job_id in unfinished.all():
        try:
            jobs.cancel_job(session, job_id, by)
        except Conflict:  # it finished in the meantime: nothing left to cancel
            continue
