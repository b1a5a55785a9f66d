"""Event streams and job logs, against real uvicorn and a real worker (in-process transports buffer streams)."""

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from bench.processes import API_COMMAND, api_server, env_for, free_port, start, start_worker, stop, wait_for
from service.api.app import create_app
from service.config import Settings
from tests.helpers import SMALL_JOB, assert_error, make_settings, sqlite_database

pytestmark = pytest.mark.slow

SPEC = {**SMALL_JOB, "train_samples": 128, "epochs": 2}


@dataclass
class Event:
    id: int
    kind: str
    data: Any


def events_of(
    response: httpx.Response, until: Callable[[Event], bool] | None = None, limit: float = 120
) -> list[Event]:
    """Parse a text/event-stream as a browser would, until an event `until` picks (or the stream's end)."""
    found: list[Event] = []
    fields: dict[str, str] = {}
    started = time.monotonic()
    for line in response.iter_lines():
        assert time.monotonic() - started < limit, f"no {until!r} within {limit} s; got {[e.kind for e in found]}"
        if line.startswith(":"):
            continue
        if line:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
            continue
        if "event" in fields:
            found.append(Event(int(fields["id"]), fields["event"], json.loads(fields["data"])))
            if until is not None and until(found[-1]):
                break
        fields = {}
    return found


@dataclass
class Trained:
    settings: Settings
    folder: Path
    job_id: int
    events: list[Event]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """One job trained by a real worker while a client watched its event stream from the start."""
    tmp_path = tmp_path_factory.mktemp("events")
    settings = make_settings(tmp_path, sqlite_database(tmp_path))
    with api_server(settings, tmp_path / "api.log") as base, httpx.Client(base_url=base, timeout=30) as client:
        job_id = client.post("/jobs", json=SPEC).json()["id"]
        worker = start_worker(settings, tmp_path / "worker.log")
        try:
            with client.stream("GET", f"/jobs/{job_id}/events", timeout=180) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                seen = events_of(response, limit=180)  # to the stream's own end
        finally:
            assert stop(worker) == 0
    # The API is stopped after each test (see conftest): each test serves the trained job's database anew.
    return Trained(settings, tmp_path, job_id, seen)


@contextmanager
def serving(trained: Trained) -> Iterator[httpx.Client]:
    with (
        api_server(trained.settings, trained.folder / "api.log") as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        yield client


def test_a_job_stream_tells_the_whole_run_in_order_and_closes_after_end(trained: Trained) -> None:
    seen = trained.events
    ids = [e.id for e in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    statuses = [e.data["status"] for e in seen if e.kind == "status"]
    assert statuses == ["queued", "running", "succeeded"]
    assert seen[-1].kind == "end" and seen[-1].data == {"job_id": trained.job_id, "status": "succeeded"}
    epochs = [e.data for e in seen if e.kind == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert all(0 <= e["test_accuracy"] <= 1 and e["per_class_accuracy"] for e in epochs)
    files = {e.data["name"]: e.data["url"] for e in seen if e.kind == "artifact"}
    assert files["curves.png"] == f"/jobs/{trained.job_id}/artifacts/curves.png"
    assert "weights.pt" in files
    progress = [e.data["progress"] for e in seen if e.kind == "progress"]
    assert progress and progress[-1]["epochs_total"] == 2 and progress[-1]["steps_total"] == 8
    lines = [e.data["line"] for e in seen if e.kind == "log"]
    assert any(f"job {trained.job_id}: epoch 2/2 " in line for line in lines)
    # The stream closed itself after `end` (events_of read to the end of the body).


def test_reconnecting_with_last_event_id_gets_exactly_the_events_after_it(trained: Trained) -> None:
    middle = trained.events[len(trained.events) // 2]
    # Once the job has finished, of its progress events only the last is kept (`events.compact`): a replay holds
    # every other event seen live, and the progress it ended on.
    last_progress = max(e.id for e in trained.events if e.kind == "progress")
    after = [e for e in trained.events if e.id > middle.id and (e.kind != "progress" or e.id == last_progress)]
    url = f"/jobs/{trained.job_id}/events"
    with serving(trained) as client:
        with client.stream("GET", url, headers={"Last-Event-ID": str(middle.id)}) as response:
            resumed = events_of(response)
        assert [(e.id, e.kind, e.data) for e in resumed] == [(e.id, e.kind, e.data) for e in after]
        with client.stream("GET", url, headers={"Last-Event-ID": str(after[-1].id)}) as done:
            assert events_of(done) == []  # after its end: closed at once, nothing repeated


def test_the_log_endpoint_tails_the_workers_lines_for_the_job(trained: Trained) -> None:
    with serving(trained) as client:
        whole = client.get(f"/jobs/{trained.job_id}/logs")
        assert whole.status_code == 200 and whole.headers["content-type"].startswith("text/plain")
        lines = whole.text.splitlines()
        assert f"job {trained.job_id}: claimed by worker" in lines[0]
        assert lines[-1].endswith(f"job {trained.job_id}: succeeded")
        assert client.get(f"/jobs/{trained.job_id}/logs", params={"tail": 2}).text.splitlines() == lines[-2:]
        assert_error(client.get("/jobs/999/logs"), 404, "not_found")
        assert_error(client.get("/jobs/999/events"), 404, "not_found")


def test_the_all_jobs_stream_sends_status_changes_from_now_on(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url)
    with api_server(settings, tmp_path / "api.log") as base, httpx.Client(base_url=base, timeout=30) as client:
        old = client.post("/jobs", json=SPEC).json()["id"]
        got: list[Event] = []

        def listen() -> None:
            with client.stream("GET", "/events") as response:
                got.extend(events_of(response, until=lambda e: e.data.get("status") == "cancelled"))

        listener = threading.Thread(target=listen)
        listener.start()
        time.sleep(1.0)  # connected: what follows is news
        new = client.post("/jobs", json=SPEC).json()["id"]
        client.post(f"/jobs/{new}/cancel")
        listener.join(30)
    assert [(e.data["job_id"], e.kind, e.data.get("status")) for e in got] == [
        (new, "status", "queued"),
        (new, "status", "cancelled"),
    ]
    assert old not in {e.data["job_id"] for e in got}


def test_an_open_stream_does_not_hold_the_api_up_at_shutdown(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url)
    port = free_port()
    api = start(API_COMMAND, env_for(settings, HOST="127.0.0.1", PORT=str(port)), tmp_path / "api.log")
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: _answers(base), 30, "the API to start")
    with httpx.Client(base_url=base, timeout=30) as client, client.stream("GET", "/events") as response:
        assert response.status_code == 200
        started = time.monotonic()
        stop(api)
        assert time.monotonic() - started < 6  # uvicorn's 3 s graceful shutdown, then the stream is cut
    assert api.poll() is not None  # gone (uvicorn re-raises the SIGTERM it handled, so it exits -15)


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_signing_in_trades_the_token_for_a_cookie_that_opens_the_api_and_its_streams(
    tmp_path: Path, sqlite_url: str
) -> None:
    settings = make_settings(tmp_path, sqlite_url, api_token="s3cret")
    with TestClient(create_app(settings)) as client:
        assert client.get("/session").json() == {"signed_in": False, "token_required": True, "name": None, "role": None}
        assert_error(client.post("/session", json={"token": "wrong"}), 401, "unauthorized")
        assert_error(client.get("/jobs"), 401, "unauthorized")
        signed = client.post("/session", json={"token": "s3cret"})
        assert signed.status_code == 204
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "s3cret" not in cookie
        assert client.get("/jobs").status_code == 200
        assert client.get("/session").json() == {
            "signed_in": True,
            "token_required": True,
            "name": "admin",
            "role": "admin",
        }
        assert client.delete("/session").status_code == 204
        assert_error(client.get("/jobs"), 401, "unauthorized")
