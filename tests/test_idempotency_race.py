"""Many requests with one `Idempotency-Key` at the same moment, to a real API over HTTP: every one is answered with
the one job (or sweep) stored, never a 500. On PostgreSQL the inserts really race (SQLite's writers queue)."""

import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from bench.processes import api_server
from service.config import Settings
from tests.helpers import LIGHT_JOB, make_settings

pytestmark = pytest.mark.slow

REQUESTS = 40
SWEEP = {"name": "race", "base": LIGHT_JOB, "grid": {"learning_rate": [0.001, 0.0001]}}


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, access_log=False)


def all_at_once(send: Callable[[httpx.Client], httpx.Response]) -> list[httpx.Response]:
    """`send` from REQUESTS threads, each on its own connection, released together."""
    start = threading.Barrier(REQUESTS)
    answers: list[httpx.Response] = []

    def one() -> None:
        with httpx.Client(timeout=60) as client:
            start.wait()
            answers.append(send(client))

    threads = [threading.Thread(target=one) for _ in range(REQUESTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_concurrent_posts_with_one_key_all_get_the_one_job(settings: Settings, tmp_path: Path) -> None:
    with api_server(settings, tmp_path / "api.log") as base:
        key = {"Idempotency-Key": "one-job"}
        answers = all_at_once(lambda c: c.post(f"{base}/jobs", json=LIGHT_JOB, headers=key))
        assert sorted({a.status_code for a in answers}) == [201], [a.text for a in answers if a.status_code != 201]
        assert len({a.json()["id"] for a in answers}) == 1
        assert httpx.get(f"{base}/jobs").json()["total"] == 1
        # The key still refuses another body, and a repeat still gets the job.
        assert httpx.post(f"{base}/jobs", json={**LIGHT_JOB, "epochs": 2}, headers=key).status_code == 409
        assert httpx.post(f"{base}/jobs", json=LIGHT_JOB, headers=key).json()["id"] == answers[0].json()["id"]
    assert "Traceback" not in (tmp_path / "api.log").read_text()


def test_concurrent_sweeps_with_one_key_all_get_the_one_sweep(settings: Settings, tmp_path: Path) -> None:
    with api_server(settings, tmp_path / "api.log") as base:
        key = {"Idempotency-Key": "one-sweep"}
        answers = all_at_once(lambda c: c.post(f"{base}/sweeps", json=SWEEP, headers=key))
        assert sorted({a.status_code for a in answers}) == [201], [a.text for a in answers if a.status_code != 201]
        assert len({a.json()["id"] for a in answers}) == 1
        assert httpx.get(f"{base}/sweeps").json()["total"] == 1
        assert httpx.get(f"{base}/jobs").json()["total"] == 2  # the sweep's two jobs, queued once
    assert "Traceback" not in (tmp_path / "api.log").read_text()
