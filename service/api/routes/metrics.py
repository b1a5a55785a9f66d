"""What a job measured: per-epoch metrics, the per-step loss, and the test set's confusion matrix."""

import math
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from sqlalchemy import Row
from sqlalchemy.orm import Session

from service import artifacts, queries
from service.api.deps import JobIdPath, ReadDatabaseDep
from service.api.presenter import Responses, epoch_out, epoch_record, json_response
from service.api.schemas import ConfusionOut, MetricsOut, StepPoint, StepsOut
from service.contracts import EpochRecord
from service.models import Status

# The most points GET /jobs/{id}/metrics/steps returns: enough for a chart as wide as a screen, many times over.
MAX_STEP_POINTS = 10_000
CSV: Responses = {200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with ?format=csv"}}

router = APIRouter(prefix="/jobs/{job_id}", tags=["metrics"])


@router.get("/metrics", response_model=MetricsOut, responses=CSV)
async def get_metrics(job_id: JobIdPath, db: ReadDatabaseDep, format: Literal["json", "csv"] = "json") -> Response:
    """Per epoch: losses, test accuracy (overall and per class), speed, and how far each layer's weights moved."""

    def read(session: Session) -> tuple[Row[Any], list[EpochRecord]]:
        return queries.job_row(session, job_id), [epoch_record(r) for r in queries.epoch_rows(session, job_id)]

    job, records = await db.run(read)
    if format == "csv":
        return Response(artifacts.metrics_csv(records), media_type="text/csv")
    return json_response(MetricsOut(job_id=job.id, status=Status(job.status), epochs=[epoch_out(r) for r in records]))


@router.get("/metrics/steps", response_model=StepsOut, responses=CSV)
async def get_step_losses(
    job_id: JobIdPath,
    db: ReadDatabaseDep,
    max_points: Annotated[int, Query(ge=1, le=MAX_STEP_POINTS)] = 1000,
    format: Literal["json", "csv"] = "json",
) -> Response:
    """The training loss of every step of the epochs finished so far; with more steps than `max_points`, the mean of
    each of at most `max_points` equal runs of steps."""

    def read(session: Session) -> tuple[Row[Any], list[EpochRecord]]:
        return queries.job_row(session, job_id), [epoch_record(r) for r in queries.epoch_rows(session, job_id)]

    job, records = await db.run(read)
    points = bucketed([(r.epoch, loss) for r in records for loss in r.step_losses], max_points)
    if format == "csv":
        lines = ["step,epoch,train_loss", *(f"{p.step},{p.epoch},{p.train_loss!r}" for p in points)]
        return Response("\n".join(lines) + "\n", media_type="text/csv")
    return json_response(StepsOut(job_id=job.id, steps_total=job.steps_total, points=points))


def bucketed(losses: Sequence[tuple[int, float]], max_points: int) -> list[StepPoint]:
    """(epoch, loss) per step, in order → at most `max_points` points, each the mean of an equal run of steps."""
    size = max(1, math.ceil(len(losses) / max_points))
    points = []
    for start in range(0, len(losses), size):
        run = losses[start : start + size]
        step = start + len(run)
        points.append(StepPoint(step=step, epoch=run[-1][0], train_loss=sum(loss for _, loss in run) / len(run)))
    return points


@router.get("/confusion", response_model=ConfusionOut)
async def get_confusion(
    job_id: JobIdPath, db: ReadDatabaseDep, epoch: Annotated[int | None, Query(ge=0, le=queries.MAX_ID)] = None
) -> Response:
    """The test set's confusion matrix after epoch `epoch` (the latest by default): rows are true classes, columns
    the predicted ones."""

    def read(session: Session) -> ConfusionOut:
        chosen = epoch_record(queries.evaluated_epoch(session, job_id, epoch)[1])
        return ConfusionOut(job_id=job_id, epoch=chosen.epoch, classes=chosen.classes, matrix=chosen.confusion)

    return json_response(await db.run(read))
