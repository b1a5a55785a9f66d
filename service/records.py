"""What a run records as it goes: its device, each epoch's measurements, its checkpoint, its files.

Each write is fenced like the state transitions in `service.jobs`: it names the claim's lease token and raises
LeaseLost, changing nothing, once another worker holds the job.
"""

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Row, delete
from sqlalchemy.orm import Session

from service import events
from service.contracts import EPOCH_SCALARS, EpochRecord
from service.jobs import fenced_update
from service.models import Artifact, EpochMetric, utcnow

# The measurements that have columns of their own (the table's); everything else an epoch measures goes in `details`.
EPOCH_COLUMNS = tuple(name for name in EPOCH_SCALARS if name != "epoch" and name in EpochMetric.__table__.c)


def training_started(
    session: Session, job_id: int, token: str, device: str, parameter_count: int, steps_total: int
) -> None:
    """Record what the worker is training on, once the model is built."""
    fenced_update(session, job_id, token, device=device, parameter_count=parameter_count, steps_total=steps_total)


def record_epoch(session: Session, job_id: int, token: str, record: EpochRecord | Mapping[str, Any]) -> None:
    """Store one epoch's measurements (replacing any rows a previous attempt left from this epoch on).

    A mapping (as the tests and benchmarks write one) is validated into an `EpochRecord` first.
    """
    record = EpochRecord.model_validate(record)
    fenced_update(session, job_id, token, epochs_completed=record.epoch)
    session.execute(delete(EpochMetric).where(EpochMetric.job_id == job_id, EpochMetric.epoch >= record.epoch))
    # Defaults are left out: a row keeps only what was measured, and reads back the same (see `epoch_record`).
    details = record.model_dump(exclude={"epoch", *EPOCH_COLUMNS}, exclude_defaults=True)
    session.add(
        EpochMetric(
            job_id=job_id,
            epoch=record.epoch,
            **{k: getattr(record, k) for k in EPOCH_COLUMNS},
            details=details,
            created_at=utcnow(),
        )
    )
    events.emit(session, job_id, events.Kind.EPOCH, {"epoch": record.epoch})


def epoch_record(row: EpochMetric | Row[Any]) -> EpochRecord:
    """An epoch_metrics row (its ORM object or its row) read back as the record that was stored.

    A measurement this version does not know (written by a newer worker while the API is not yet upgraded) is left
    out rather than refused: the rest of the epoch still shows."""
    details = {k: v for k, v in (row.details or {}).items() if k in EpochRecord.model_fields}
    return EpochRecord.model_validate({"epoch": row.epoch, **{k: getattr(row, k) for k in EPOCH_COLUMNS}, **details})


def set_checkpoint(session: Session, job_id: int, token: str, checkpoint: str) -> None:
    """Point retries at a checkpoint file that is now safely on disk: the run made progress."""
    fenced_update(session, job_id, token, checkpoint=checkpoint, runs_without_progress=0)


def record_artifact(
    session: Session, job_id: int, token: str, name: str, content_type: str, size: int, publish: Callable[[], str]
) -> str | None:
    """Make a file the job's artifact `name` and record (or refresh) its row; returns the key it replaced, if any.

    `publish` makes the file current in the store and returns its key. It is called only once the lease is
    checked and the job's row locked until this transaction commits, so a worker that lost its lease never
    replaces the file its successor published.
    """
    fenced_update(session, job_id, token, lease_token=token)  # a no-op write: checks the lease and locks the row
    key = publish()
    events.emit(session, job_id, events.Kind.ARTIFACT, {"name": name})
    row = session.get(Artifact, (job_id, name))
    if row is None:
        session.add(
            Artifact(job_id=job_id, name=name, key=key, content_type=content_type, size=size, updated_at=utcnow())
        )
        return None
    replaced = row.key
    row.key, row.content_type, row.size, row.updated_at = key, content_type, size, utcnow()
    return replaced
