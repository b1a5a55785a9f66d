"""Prometheus metrics for operators: the API's requests, the queue and the workers, in the text exposition format."""

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.orm import Session

from service import queries
from service.api.deps import MonitorDep, ReadDatabaseDep, SettingsDep
from service.api.monitoring import Snapshot

router = APIRouter(tags=["monitoring"])


def snapshot(session: Session, alive_seconds: float) -> Snapshot:
    """The queue and the workers as the database has them now."""
    return Snapshot(
        queries.queue_counts(session),
        len(queries.live_workers(session, alive_seconds)),
        queries.epochs_recorded(session),
        queries.worker_speeds(session, alive_seconds),
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus' text format"}},
)
async def prometheus_metrics(db: ReadDatabaseDep, settings: SettingsDep, monitor: MonitorDep) -> Response:
    """Prometheus metrics: HTTP requests and latencies, jobs by status, live workers, epochs, images/s per worker."""
    database = await db.run(snapshot, settings.worker_alive_seconds)
    return Response(monitor.exposition(database), media_type=CONTENT_TYPE_LATEST)
