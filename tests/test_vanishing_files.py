"""A job's files deleted while they are asked for (the job deleted, a cache pruned): a 404 in the error shape, never
a 500, a body cut short, or an error that names a path on the server."""

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service import artifacts, jobs
from service.api import files
from service.api.routes import history
from service.config import Settings
from service.db import transaction
from service.spec import DEMO
from tests.helpers import Sessions, assert_error, publish_artifact


def claimed_job(client: TestClient, sessions: Sessions) -> jobs.Claim:
    """A queued job, claimed as a worker would claim it."""
    client.post("/jobs", json=DEMO)
    with transaction(sessions) as s:
        claim = jobs.claim_next(s, "w1", False, 30, 30)
    assert claim is not None
    return claim


def assert_no_server_path(response: Any, settings: Settings) -> None:
    """The body names neither the artifact folder nor the cache folder."""
    for folder in (settings.artifact_dir, settings.cache_dir):
        assert str(Path(folder).resolve()) not in response.text and str(folder) not in response.text


def test_a_file_gone_from_disk_behind_its_row_is_404(
    client: TestClient, settings: Settings, sessions: Sessions
) -> None:
    claim = claimed_job(client, sessions)
    publish_artifact(settings, sessions, claim, "metrics.csv", b"epoch\n").unlink()
    response = client.get(f"/jobs/{claim.job_id}/artifacts/metrics.csv")
    assert_error(response, 404, "not_found")
    assert_no_server_path(response, settings)


def test_a_file_deleted_between_lookup_and_send_is_404(
    client: TestClient, settings: Settings, sessions: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    claim = claimed_job(client, sessions)
    path = publish_artifact(settings, sessions, claim, "curves.png", b"\x89PNG fake")
    looked_up = files._stored

    def then_deleted(*args: Any) -> tuple[str, str, int, Path | None]:
        found = looked_up(*args)
        path.unlink()  # the job deleted right after its row was read
        return found

    monkeypatch.setattr(files, "_stored", then_deleted)
    response = client.get(f"/jobs/{claim.job_id}/curves.png")
    assert_error(response, 404, "not_found")
    assert_no_server_path(response, settings)


def test_a_file_deleted_once_opened_is_sent_whole(
    client: TestClient, settings: Settings, sessions: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    claim = claimed_job(client, sessions)
    data = b"\x89PNG " + bytes(range(256)) * 40
    path = publish_artifact(settings, sessions, claim, "curves.png", data)
    opened = files._chunks

    def deleted_while_sending(stream: Any) -> Any:
        path.unlink()  # the job deleted as the body starts to go out
        yield from opened(stream)

    monkeypatch.setattr(files, "_chunks", deleted_while_sending)
    response = client.get(f"/jobs/{claim.job_id}/curves.png")
    assert response.status_code == 200
    assert response.content == data
    assert int(response.headers["content-length"]) == len(data)


def test_a_picture_whose_numbers_vanished_is_404_naming_no_path(
    client: TestClient, settings: Settings, sessions: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    claim = claimed_job(client, sessions)
    numbers = io.BytesIO()
    np.savez(numbers, conv1=np.zeros((64, 3, 11, 11)), conv2=np.zeros((192, 64, 5, 5)))
    kept = publish_artifact(settings, sessions, claim, artifacts.kernel_history(0), numbers.getvalue())
    found = history._sources

    async def then_deleted(*args: Any) -> list[str]:
        paths = await found(*args)
        kept.unlink()  # the job deleted while its picture waited to be drawn
        return paths

    monkeypatch.setattr(history, "_sources", then_deleted)
    response = client.get(f"/jobs/{claim.job_id}/kernels/conv1/trained.png", params={"epoch": 0})
    assert_error(response, 404, "not_found")
    assert_no_server_path(response, settings)
