"""Schemathesis against the app's own OpenAPI schema, then hostile inputs a schema cannot describe.

Every operation gets generated requests, valid and invalid (`mode: all`), checked by Schemathesis' default
checks: no 5xx, only documented status codes and content types, bodies that match the response schemas,
invalid data refused with 4xx, valid data accepted, auth enforced, 405s that list the allowed methods.
"""

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bench.processes import api_server
from service import jobs, records
from service.api.app import create_app
from service.config import Settings
from service.db import make_engine, make_sessionmaker, transaction
from service.models import Status
from service.spec import DEMO
from tests.helpers import (
    assert_error,
    make_settings,
    postgres_schema,
    publish_artifact,
    queue_jobs,
    sqlite_database,
    total_jobs,
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
# Enough examples per operation to reach the error paths, few enough that the whole file runs in well under
# a minute on two cores. Deterministic, so CI sees the same requests on every run.
MAX_EXAMPLES = 80

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


# ---------------------------------------------------------------- hostile inputs, one by one


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 10**30},
        {"limit": -(10**30)},
        {"limit": "1e3"},
        {"limit": ""},
        {"limit": "NaN"},
        {"offset": -1},
        {"offset": 10**30},
        {"offset": 2**63},
        {"status": "queued\x00"},
    ],
)
def test_absurd_paging_parameters_get_422(client: TestClient, params: dict[str, object]) -> None:
    assert_error(client.get("/jobs", params=params), 422, "invalid_request")


def test_the_largest_offset_is_an_empty_page_not_an_overflow(client: TestClient) -> None:
    client.post("/jobs", json=DEMO)
    page = client.get("/jobs", params={"offset": 2**63 - 1})
    assert page.status_code == 200
    assert page.json()["items"] == []
    assert page.json()["total"] == 1


def test_unicode_names_round_trip_exactly(client: TestClient) -> None:
    name = "ünïcødé ✓ 😀 \u202eright-to-left\u202c \u200b 日本語"
    job = client.post("/jobs", json={**DEMO, "name": name}).json()
    assert job["name"] == job["spec"]["name"] == name
    assert client.get(f"/jobs/{job['id']}").json()["name"] == name


@pytest.mark.parametrize(
    "raw",
    [
        '{"name": "a\\u0000b"}',  # NUL: PostgreSQL text cannot hold it
        '{"name": "\\ud800"}',  # a lone surrogate is not a string
        # Python's JSON parser takes NaN and Infinity, and reads 1e999 as inf: the bounds must refuse them.
        '{"learning_rate": NaN}',
        '{"max_runtime_seconds": Infinity}',
        '{"learning_rate": -Infinity}',
        '{"epochs": 1e999}',
        '{"seed": 9007199254740992}',  # one past the largest seed
        '{"name": {"nested": [[[[{"deeper": []}]]]]}}',
        '{"epochs": [2]}',
        '{"epochs": {"value": 2}}',
        '{"spec": {"epochs": 2}}',
    ],
)
def test_hostile_json_gets_422_and_creates_nothing(database_url: str, tmp_path: Path, raw: str) -> None:
    with TestClient(create_app(make_settings(tmp_path, database_url)), raise_server_exceptions=False) as client:
        response = client.post("/jobs", content=raw.encode(), headers={"content-type": "application/json"})
        assert_error(response, 422, "invalid_request")
        assert total_jobs(client) == 0


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        # Nesting too deep for Python's JSON parser, yet under the size limit.
        (b"[" * 30_000 + b"]" * 30_000, 400, "bad_request"),
        (b'{"name": "\xff\xfe"}', 400, "bad_request"),  # not UTF-8
        (b"\x00" * 100, 422, "invalid_request"),
    ],
)
def test_unparseable_bodies_get_4xx_not_500(client: TestClient, raw: bytes, status: int, code: str) -> None:
    response = client.post("/jobs", content=raw, headers={"content-type": "application/json"})
    assert_error(response, status, code)
    assert total_jobs(client) == 0


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml"],
)
def test_a_json_body_under_another_content_type_gets_415_saying_what_to_send(
    client: TestClient, content_type: str
) -> None:
    response = client.post("/jobs", content=b'{"epochs": 2}', headers={"content-type": content_type})
    error = assert_error(response, 415, "unsupported_media_type")
    assert "Content-Type: application/json" in error["message"]
    assert total_jobs(client) == 0


def test_json_as_a_json_subtype_or_in_capitals_is_taken_and_no_body_needs_no_header(client: TestClient) -> None:
    for content_type in ("application/merge-patch+json", "Application/JSON; charset=utf-8"):
        response = client.post("/jobs", content=json.dumps(DEMO).encode(), headers={"content-type": content_type})
        assert response.status_code == 201, (content_type, response.text)
    assert client.post("/jobs").status_code == 201  # no body: the defaults
    assert_error(client.post("/jobs", content=json.dumps(DEMO).encode()), 415, "unsupported_media_type")


@pytest.mark.parametrize("key", ["", "k" * 201])
def test_an_empty_or_overlong_idempotency_key_gets_422(client: TestClient, key: str) -> None:
    assert_error(client.post("/jobs", json=DEMO, headers={"Idempotency-Key": key}), 422, "invalid_request")
    assert total_jobs(client) == 0


def test_unsupported_methods_get_405_listing_every_allowed_method(client: TestClient) -> None:
    response = client.put("/jobs")
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, POST"
    assert client.patch("/jobs/1").headers["allow"] == "DELETE, GET"
    assert client.post("/openapi.json").headers["allow"] == "GET, HEAD"


def test_a_wrong_token_changes_nothing(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, api_token=TOKEN)
    with TestClient(create_app(settings)) as client:
        job_id = client.post("/jobs", json=DEMO, headers=AUTH).json()["id"]
        for headers in ({"Authorization": "Bearer " + "x" * 10_000}, {"Authorization": "Basic Zm9vOmJhcg=="}):
            assert_error(client.post("/jobs", json=DEMO, headers=headers), 401, "unauthorized")
            assert_error(client.post(f"/jobs/{job_id}/cancel", headers=headers), 401, "unauthorized")
        assert client.get(f"/jobs/{job_id}", headers=AUTH).json()["status"] == "queued"
        assert client.get("/jobs", headers=AUTH).json()["total"] == 1


@pytest.mark.slow
def test_an_oversized_chunked_body_without_content_length_gets_413_from_the_real_server(
    settings: Settings, tmp_path: Path
) -> None:
    """Through uvicorn, so the body really arrives as chunks that never declared their size."""

    def chunks(total: int) -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(total // 1000):
            yield b"x" * 1000
        yield b'"}'

    with api_server(settings, tmp_path / "api.log") as base, httpx.Client(base_url=base, timeout=30) as http:
        headers = {"content-type": "application/json"}
        response = http.post("/jobs", content=chunks(settings.max_body_bytes + 10_000), headers=headers)
        assert response.request.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in response.request.headers
        assert_error(response, 413, "payload_too_large")
        assert total_jobs(http) == 0
        # A small chunked body still goes through whole: the limit reads the stream, it does not cut it short.
        small = http.post("/jobs", content=iter([b'{"epochs": ', b"2}"]), headers=headers)
        assert small.status_code == 201, small.text
        assert small.json()["spec"]["epochs"] == 2
        assert total_jobs(http) == 1


@pytest.mark.slow
def test_a_job_is_readable_as_soon_as_its_201_arrives(database_url: str, tmp_path: Path) -> None:
    """The session commits before the response is sent; on Postgres 13 of 300 reads missed when it did not."""
    settings = make_settings(tmp_path, database_url)
    with api_server(settings, tmp_path / "api.log") as base, httpx.Client(base_url=base, timeout=30) as http:
        for _ in range(100):
            created = http.post("/jobs", json=DEMO)
            assert created.status_code == 201, created.text
            read = http.get(created.headers["location"])
            assert read.status_code == 200, read.text
