"""Schemathesis against the app's own OpenAPI schema (hostile inputs a schema cannot describe: test_hostile_inputs.py).

Every operation gets generated requests, valid and invalid (`mode: all`), checked by Schemathesis' default
checks: no 5xx, only documented status codes and content types, bodies that match the response schemas,
invalid data refused with 4xx, valid data accepted, auth enforced, 405s that list the allowed methods.
"""

from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service import jobs, records
from service.api.app import create_app
from service.api.throttle import Throttle
from service.config import Settings
from service.db import make_engine, make_sessionmaker, transaction
from service.models import Status
from service.spec import DEMO
from tests.helpers import (
    make_settings,
    postgres_schema,
    publish_artifact,
    queue_jobs,
    sqlite_database,
)

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# The files a worker records, by content type; job 1 has each of them.
ARTIFACTS = {
    "curves.png": "image/png",
    "kernels/conv1/initial.png": "image/png",
    "kernels/conv2/diff.png": "image/png",
    "metrics.csv": "text/csv",
    "weights.pt": "application/octet-stream",
}
# Enough examples per operation to reach the error paths, few enough that each backend's run stays under a minute
# of one core (80 took 66 s a backend, 50 about 40 s). Deterministic, so CI sees the same requests on every run.
MAX_EXAMPLES = 50

CONFIG = schemathesis.Config.from_dict(
    {
        "auth": {"openapi": {"HTTPBearer": {"bearer": TOKEN}}},
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        # A grid the schema allows can still make more than 64 jobs (a product JSON Schema cannot bound): 422 then.
        "operations": [
            # Event streams stay open while their job runs (GET /events, always): tested against uvicorn instead.
            {"include-path-regex": "/events$", "enabled": False},
            # `wait` holds the answer until the job finishes: the seeded running and queued jobs never do.
            {"include-path": "/jobs/{job_id}", "include-method": "GET", "parameters": {"wait": 0}},
            {
                "include-path": "/sweeps",
                "include-method": "POST",
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": ["2xx", "401", "404", "409", "422"]},
                },
            },
        ],
    }
)
# The schema depends on the settings only in declaring bearer auth, which the app below needs; this app only serves
# it, the requests go to `app`.
# (Not `schemathesis.pytest.from_fixture`: with pytest 9.2 it fails, setting `Function._nodeid`, now gone.)
schema = schemathesis.openapi.from_asgi(
    "/openapi.json",
    create_app(Settings(database_url="sqlite://", api_token=TOKEN, allowed_hosts="testserver")),
    config=CONFIG,
)


def seed(settings: Settings) -> None:
    """Job 1 running with an epoch of metrics and every kind of artifact, job 2 succeeded, job 3 queued."""
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    queue_jobs(sessions, 3, **DEMO)
    with transaction(sessions) as s:
        first = jobs.claim_next(s, "fuzz-worker", False, 3600, 30)
        second = jobs.claim_next(s, "fuzz-worker", False, 3600, 30)
    assert first is not None and second is not None
    with transaction(sessions) as s:
        metric = {"epoch": 1, "train_loss": 2.3, "test_loss": 2.2, "test_accuracy": 0.1, "seconds": 3.0}
        records.record_epoch(s, first.job_id, first.token, {**metric, "images_per_second": 170.0})
    for name, content_type in ARTIFACTS.items():
        data = b"\x89PNG\r\n\x1a\n" if content_type == "image/png" else b"epoch\n1\n"
        publish_artifact(settings, sessions, first, name, data)
    with transaction(sessions) as s:
        jobs.finish(s, second.job_id, second.token, Status.SUCCEEDED)
    engine.dispose()


class NoWaits(Throttle):
    """Schemathesis signs in wrongly again and again from one address: the real throttle would make each answer wait
    up to 8 s (~4 minutes a backend for `POST /session` alone). The waits themselves are tested in test_users.py."""

    def delay(self, address: str, now: float | None = None) -> float:
        return 0.0


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    """One seeded database per backend for the whole module: Hypothesis sends many requests to one fixture."""
    tmp_path = tmp_path_factory.mktemp("fuzz")
    database: AbstractContextManager[str]
    if request.param == "sqlite":
        database = nullcontext(sqlite_database(tmp_path))
    else:
        database = postgres_schema(str(request.getfixturevalue("postgres")))
    with database as url:
        settings = make_settings(tmp_path, url, api_token=TOKEN)
        seed(settings)
        app = create_app(settings)
        with TestClient(app):  # runs the lifespan, whose end disposes of the engine before the schema is dropped
            app.state.throttle = NoWaits()
            yield app


@schema.parametrize()
def test_every_operation_conforms_to_the_schema(case: schemathesis.Case, app: FastAPI) -> None:
    case.call_and_validate(app=app)


# Responses the generated requests rarely reach (they need a seeded id and an existing file), checked the same way.
REACHED_BY_HAND = [
    ("GET", "/jobs/{job_id}/curves.png", {"job_id": 1}, {}, 200),
    ("GET", "/jobs/{job_id}/kernels/{layer}/{stage}.png", {"job_id": 1, "layer": "conv2", "stage": "diff"}, {}, 200),
    ("GET", "/jobs/{job_id}/metrics", {"job_id": 1}, {"format": "csv"}, 200),
    ("GET", "/jobs/{job_id}/metrics", {"job_id": 1}, {}, 200),
    ("GET", "/jobs/{job_id}/kernels", {"job_id": 1}, {}, 200),
    ("POST", "/jobs/{job_id}/cancel", {"job_id": 2}, {}, 409),
    *[("GET", "/jobs/{job_id}/artifacts/{name}", {"job_id": 1, "name": name}, {}, 200) for name in ARTIFACTS],
]


@pytest.mark.parametrize(("method", "path", "path_parameters", "query", "status"), REACHED_BY_HAND)
def test_seeded_resources_are_served_as_documented(
    app: FastAPI, method: str, path: str, path_parameters: dict[str, object], query: dict[str, str], status: int
) -> None:
    case = schema[path][method].Case(path_parameters=path_parameters, query=query)
    response = case.call_and_validate(app=app, headers=AUTH)
    assert response.status_code == status
