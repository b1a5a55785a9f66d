"""The published OpenAPI document is valid for the version it declares, and the event streams keep the contract it
states: an unusable `Last-Event-ID` is ignored (a browser retries an error forever), errors come as declared.

Schemathesis fuzzes the header on a finished job's stream, which ends; the rest is read from a real uvicorn, since
in-process transports buffer a stream until it ends."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from bench.processes import API_COMMAND, STARTED, serving
from service import jobs
from service.api.app import create_app
from service.api.openapi import conform
from service.config import Settings
from service.db import make_engine, make_sessionmaker, transaction
from tests.helpers import Db, assert_error, make_settings, queue_jobs, sqlite_database

STREAMS = ("/events", "/jobs/{job_id}/events")
# Not an event id: negative, not a whole number, not ASCII digits (sent as UTF-8), past the largest id a table
# holds, empty.
UNUSABLE = ["-1", "abc", "1.5", "٣", str(2**63), str(10**30), ""]


# ---------------------------------------------------------------- the document


@pytest.mark.parametrize("token", ["", "a-token"], ids=["no token", "token"])
def test_the_published_document_is_valid_for_the_openapi_version_it_declares(
    tmp_path: Path, sqlite_url: str, token: str
) -> None:
    with TestClient(create_app(make_settings(tmp_path, sqlite_url, api_token=token))) as client:
        document = client.get("/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    validate(document)  # raises, naming the first offending field, on an invalid document


def test_fastapis_own_document_would_fail_the_validator(tmp_path: Path, sqlite_url: str) -> None:
    # What `conform` is for: without it, the streams' `itemSchema` (OpenAPI 3.2) makes the 3.1 document invalid.
    # Should a FastAPI release stop writing it, this fails and `service.api.openapi` can go.
    app = create_app(make_settings(tmp_path, sqlite_url))
    raw = type(app).openapi(app)  # the class's method: the document as FastAPI makes it
    with pytest.raises(OpenAPIValidationError, match="itemSchema"):
        validate(raw)


def test_the_streams_keep_their_event_schema_and_declare_their_errors_as_json(tmp_path: Path, sqlite_url: str) -> None:
    document = create_app(make_settings(tmp_path, sqlite_url)).openapi()
    for path in STREAMS:
        responses = document["paths"][path]["get"]["responses"]
        assert set(responses["200"]["content"]["text/event-stream"]["x-itemSchema"]["properties"]) >= {"data", "id"}
        errors = {status: set(r["content"]) for status, r in responses.items() if status[0] == "4"}
        assert errors and all(types == {"application/json"} for types in errors.values()), errors


def test_conforming_twice_changes_nothing(tmp_path: Path, sqlite_url: str) -> None:
    document = create_app(make_settings(tmp_path, sqlite_url)).openapi()
    before = repr(document)
    assert repr(conform(document)) == before


# ---------------------------------------------------------------- Schemathesis on a job's stream

# A finished job's stream ends after its `end`, whatever `Last-Event-ID` asks: in-process calls, which buffer a stream
# until it ends, can fuzz the header. (GET /events never ends: it is read over real HTTP below.)
FINISHED_JOB = 1
STREAM_CONFIG = schemathesis.Config.from_dict(
    {"generation": {"mode": "positive", "max-examples": 60, "deterministic": True, "database": "none"}}
)
stream_schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(Settings(database_url="sqlite://", allowed_hosts="testserver")), config=STREAM_CONFIG
).include(path="/jobs/{job_id}/events", method="GET")


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    """The API on a database whose job 1 was queued and cancelled: its stream holds status, status, end."""
    folder = tmp_path_factory.mktemp("stream")
    settings = make_settings(folder, sqlite_database(folder))
    engine = make_engine(settings.database_url)
    (job_id,) = queue_jobs(make_sessionmaker(engine))
    with transaction(make_sessionmaker(engine)) as s:
        jobs.cancel_job(s, job_id)
    engine.dispose()
    assert job_id == FINISHED_JOB
    app = create_app(settings)
    with TestClient(app):
        yield app


@stream_schema.parametrize()
def test_a_jobs_stream_answers_any_last_event_id_as_documented(case: schemathesis.Case, finished: FastAPI) -> None:
    case.path_parameters = {"job_id": FINISHED_JOB}
    response = case.call_and_validate(app=finished)
    assert response.status_code == 200  # whatever the header holds: the stream, never an error a browser retries


# ---------------------------------------------------------------- the streams over real HTTP


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder = tmp_path_factory.mktemp("openapi")
    return make_settings(folder, sqlite_database(folder))


@pytest.fixture(scope="module")
def base(settings: Settings) -> Iterator[str]:
    """The API under uvicorn for the module: off the list of processes each test's cleanup kills, stopped here."""
    with serving(API_COMMAND, settings, Path(settings.artifact_dir).parent / "api.log") as (process, url):
        STARTED.remove(process)
        yield url


@pytest.fixture
def api(base: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base, timeout=30) as client:
        yield client


def blocks(response: httpx.Response) -> Iterator[dict[str, str]]:
    """A text/event-stream's blocks as a browser splits them: each event's fields, or a comment's text."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line.startswith(":"):
            yield {"comment": line[1:].strip()}
        elif line:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        elif fields:
            yield fields
            fields = {}


def first_event(response: httpx.Response) -> tuple[int, Any]:
    """The first event's id and data."""
    return next((int(b["id"]), json.loads(b["data"])) for b in blocks(response) if "event" in b)


@pytest.mark.parametrize("value", UNUSABLE)
def test_a_job_stream_ignores_an_unusable_last_event_id_and_starts_from_the_beginning(
    api: httpx.Client, settings: Settings, value: str
) -> None:
    job_id = Db(settings).submit()
    with api.stream("GET", f"/jobs/{job_id}/events", headers={"Last-Event-ID": value.encode()}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        _, data = first_event(response)
    assert (data["job_id"], data["status"]) == (job_id, "queued")


def test_a_usable_last_event_id_still_resumes_after_that_event(api: httpx.Client, settings: Settings) -> None:
    db = Db(settings)
    job_id = db.submit()
    with api.stream("GET", f"/jobs/{job_id}/events") as response:
        queued, _ = first_event(response)
    api.post(f"/jobs/{job_id}/cancel").raise_for_status()
    with api.stream("GET", f"/jobs/{job_id}/events", headers={"Last-Event-ID": str(queued)}) as response:
        _, data = first_event(response)
    assert data["status"] == "cancelled"


@pytest.mark.parametrize("value", ["-1", str(2**63)])
def test_the_all_jobs_stream_treats_an_unusable_last_event_id_as_none_sent(
    api: httpx.Client, settings: Settings, value: str
) -> None:
    # Absent means "from now on"; were the value read as 0 (or an error), the older job's event would come first.
    db = Db(settings)
    older = db.submit()
    with api.stream("GET", "/events", headers={"Last-Event-ID": value}) as response:
        assert response.status_code == 200
        stream = blocks(response)
        assert next(stream) == {"comment": "connected"}  # the stream's cursor is fixed before this is sent
        newer = db.submit()
        data = json.loads(next(b for b in stream if "event" in b)["data"])
    assert older != newer
    assert (data["job_id"], data["status"]) == (newer, "queued")


@pytest.mark.parametrize(("path", "status"), [("/jobs/999999/events", 404), ("/jobs/x/events", 422)])
def test_a_streams_error_comes_as_the_json_its_document_declares(
    api: httpx.Client, path: str, status: int, settings: Settings
) -> None:
    response = api.get(path)
    assert_error(response, status, "not_found" if status == 404 else "invalid_request")
    declared = create_app(settings).openapi()["paths"]["/jobs/{job_id}/events"]["get"]["responses"][str(status)]
    assert response.headers["content-type"].split(";")[0] in declared["content"]
