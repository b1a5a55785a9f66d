"""Broken uploads to `POST /jobs/{id}/predict` over real HTTP on a real uvicorn: every file of a generated corpus
(tests/broken_images.py) gets the 4xx it owes in the one error shape, on the same kept-alive connection, and the
server logs no traceback. Each is refused while it is checked and reduced, before the inference process is needed."""

import re
from pathlib import Path

import httpx
import pytest

from bench.processes import api_server
from service import jobs, records
from service.config import Settings
from service.db import make_engine, make_sessionmaker, transaction
from service.models import Status
from tests.broken_images import Broken, corpus
from tests.helpers import make_settings, publish_artifact, queue_jobs, sqlite_database

pytestmark = pytest.mark.slow

CLASSES = [f"class {k}" for k in range(10)]


def succeeded_job(settings: Settings) -> int:
    """A job that succeeded with one evaluated epoch and a `weights.pt`, made directly: predict decodes an upload
    only for such a job. The weights are never loaded: no file of the corpus gets that far."""
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    (job_id,) = queue_jobs(sessions)
    with transaction(sessions) as s:
        claim = jobs.claim_next(s, "test-worker", False, 3600, 30)
    assert claim is not None and claim.job_id == job_id
    with transaction(sessions) as s:
        scalars = {"train_loss": 2.3, "test_loss": 2.2, "test_accuracy": 0.1, "seconds": 1.0, "images_per_second": 1.0}
        confusion = [[0] * len(CLASSES) for _ in CLASSES]
        metric = {"epoch": 1, **scalars, "classes": CLASSES, "confusion": confusion}
        records.record_epoch(s, job_id, claim.token, metric)
    publish_artifact(settings, sessions, claim, "weights.pt", b"never loaded")
    with transaction(sessions) as s:
        jobs.finish(s, job_id, claim.token, Status.SUCCEEDED)
    engine.dispose()
    return job_id


def answer_shape(response: httpx.Response) -> str | None:
    """What is wrong with the response as an error of the one shape, or None."""
    try:
        body = response.json()
    except ValueError:
        return f"not JSON: {response.text[:80]!r}"
    error = body.get("error") if isinstance(body, dict) else None
    if set(body) != {"error"} or not isinstance(error, dict) or not error.get("message"):
        return f"not the error shape: {body!r:.120}"
    return None


def test_every_broken_file_of_the_corpus_gets_its_4xx_and_no_traceback(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, sqlite_database(tmp_path), access_log=False)
    job_id = succeeded_job(settings)
    files = corpus()
    assert len(files) > 1000 and {f.status for f in files} == {415, 422}
    wrong: list[str] = []
    log = tmp_path / "api.log"
    with api_server(settings, log) as base, httpx.Client(base_url=base, timeout=30) as client:
        for broken in files:
            response = client.post(f"/jobs/{job_id}/predict", files={"image": ("upload", broken.data)})
            problem = answer_shape(response) or mismatch(broken, response)
            if problem:
                wrong.append(f"{broken.name}: {response.status_code} {problem}")
        assert client.get("/health").status_code == 200  # and still serving after all of them
    assert wrong == [], f"{len(wrong)} of {len(files)} answered wrongly:\n" + "\n".join(wrong[:40])
    text = log.read_text()
    assert "Traceback" not in text and "unhandled error" not in text, text[-4000:]


def mismatch(broken: Broken, response: httpx.Response) -> str | None:
    """How the answer differs from the status and code the file is owed, or None."""
    code = response.json()["error"]["code"]
    if (response.status_code, code) != (broken.status, broken.code):
        return f"owed {broken.status} {broken.code}, got {code}: {response.json()['error']['message']}"
    if re.search(r"0x[0-9a-f]{6,}|/[a-z]+/", response.json()["error"]["message"]):  # no object address, no path
        return f"the message names a server detail: {response.json()['error']['message']}"
    return None
