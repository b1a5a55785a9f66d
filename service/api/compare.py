"""Comparing jobs: which ones (`?ids=1,2,3`), the spec fields that set them apart, and their per-epoch series."""

from collections.abc import Mapping, Sequence
from typing import Any, get_args

from sqlalchemy import Row
from sqlalchemy.orm import Session

from service import queries
from service.api.schemas import CompareJob, CompareOut, SeriesPoint
from service.contracts import CompareDraw, CompareMetric, CompareSeries
from service.errors import InvalidRequest, NotFound
from service.models import Status
from service.spec import LABEL_ORDER, JobSpec, differing_fields, label

# The most jobs one comparison shows: twenty lines are what a legend can still tell apart (ten colours × two styles).
MAX_JOBS = 20
METRICS: tuple[CompareMetric, ...] = get_args(CompareMetric)
# What every compared job shares is said once, in the chart's subtitle; these say nothing about how a run learns.
QUIET_FIELDS = {"device", "conv2_filter", "max_attempts", "max_runtime_seconds"}


def parse_ids(text: str) -> list[int]:
    """`"3,1,2"` → [3, 1, 2], each id once in the order given; InvalidRequest for anything else or too many."""
    parts = [p.strip() for p in text.split(",")]
    bad = [p for p in parts if not (p.isascii() and p.isdigit())]
    if bad:
        raise InvalidRequest(
            f"ids must be job ids separated by commas, e.g. ids=1,2,3; not {', '.join(map(repr, bad[:5]))}",
            [{"loc": ["query", "ids"], "msg": "not a list of job ids", "type": "value_error"}],
        )
    ids = list(dict.fromkeys(int(p) for p in parts))
    if len(ids) > MAX_JOBS:
        raise InvalidRequest(
            f"at most {MAX_JOBS} jobs can be compared at once; {len(ids)} were given",
            [{"loc": ["query", "ids"], "msg": f"more than {MAX_JOBS} ids", "type": "too_long"}],
        )
    return ids


def links(ids: Sequence[int]) -> dict[str, str]:
    """Where the comparison of `ids` is: as JSON, and as a chart of each metric."""
    query = ",".join(map(str, ids))
    return {"compare": f"/compare?ids={query}"} | {
        f"compare_{metric}_png": f"/compare.png?ids={query}&metric={metric}" for metric in METRICS
    }


def read(session: Session, ids: Sequence[int]) -> CompareOut:
    """The jobs `ids` side by side; NotFound naming every id that is no job."""
    rows = queries.jobs_rows(session, ids)
    missing = [i for i in ids if i not in rows]
    if missing:
        listed = ", ".join(map(str, missing))
        raise NotFound(f"job {listed} does not exist" if len(missing) == 1 else f"jobs {listed} do not exist")
    series = queries.epoch_series(session, ids)
    return compare_out([rows[i] for i in ids], series)


def compare_out(jobs: Sequence[Row[Any]], series: Mapping[int, Sequence[Row[Any]]]) -> CompareOut:
    """The comparison of `jobs` (rows) with their epochs."""
    differing = differing_fields([j.spec for j in jobs])
    out = []
    for job in jobs:
        differs = {f: job.spec.get(f) for f in differing}
        out.append(
            CompareJob(
                id=job.id,
                name=job.name,
                status=Status(job.status),
                spec=JobSpec.model_validate(job.spec),
                differs=differs,
                label=label(differs) or job.name or f"job {job.id}",
                epochs=[
                    SeriesPoint(
                        epoch=e.epoch, train_loss=e.train_loss, test_loss=e.test_loss, test_accuracy=e.test_accuracy
                    )
                    for e in series.get(job.id, ())
                ],
            )
        )
    return CompareOut(differing=differing, jobs=out, links=links([j.id for j in jobs]))


def chart_request(comparison: CompareOut, metric: CompareMetric) -> CompareDraw:
    """What the drawing process needs for the chart of one metric: a labelled series per job, and what they share."""
    shared = [f for f in LABEL_ORDER if f not in comparison.differing and f not in QUIET_FIELDS]
    first = comparison.jobs[0].spec.model_dump(mode="json") if comparison.jobs else {}
    return CompareDraw(
        metric=metric,
        series=[
            CompareSeries(
                label=f"{j.label} (job {j.id})" if j.label != f"job {j.id}" else j.label,
                status=j.status.value,
                epochs=[p.epoch for p in j.epochs],
                values=[getattr(p, metric) for p in j.epochs],
            )
            for j in comparison.jobs
        ],
        # Commas here: a dozen fields joined by spaces alone run together.
        shared=label({f: first[f] for f in shared}, separator=", ") if first else "",
    )
