"""Job names are drawn as the text they are: a name with `$…$` (matplotlib's mathtext) or a line break draws the
comparison chart and the kernels' GIF like any other name, over HTTP."""

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service import artifacts, jobs
from service.config import Settings
from service.db import transaction
from service.spec import DEMO
from tests.helpers import Sessions, assert_error, publish_artifact

NAMES = ["$\\foo$", "a$b$c", "line\nbreak", "$x$ and\ttab $"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_names_with_dollars_and_line_breaks_draw_the_comparison(client: TestClient) -> None:
    # The same spec under each name: the chart's legend then says each job by its name.
    ids = [client.post("/jobs", json={**DEMO, "name": name}).json()["id"] for name in NAMES]
    response = client.get("/compare.png", params={"ids": ",".join(map(str, ids))})
    assert response.status_code == 200, response.text
    assert response.content.startswith(PNG_SIGNATURE)


@pytest.mark.parametrize("name", NAMES)
def test_a_name_with_dollars_or_a_line_break_draws_the_kernels_gif(
    client: TestClient, settings: Settings, sessions: Sessions, name: str
) -> None:
    job_id = client.post("/jobs", json={**DEMO, "name": name}).json()["id"]
    with transaction(sessions) as s:
        claim = jobs.claim_next(s, "w1", False, 30, 30)
    assert claim is not None and claim.job_id == job_id
    rng = np.random.default_rng(0)
    for epoch in (0, 1):
        numbers = io.BytesIO()
        np.savez(numbers, conv1=rng.normal(size=(64, 3, 11, 11)), conv2=rng.normal(size=(192, 64, 5, 5)))
        publish_artifact(settings, sessions, claim, artifacts.kernel_history(epoch), numbers.getvalue())
    response = client.get(f"/jobs/{job_id}/kernels/conv1/evolution.gif")
    assert response.status_code == 200, response.text
    assert response.content.startswith(b"GIF89a")


def test_a_picture_that_can_never_be_drawn_is_422_not_try_again(
    client: TestClient, settings: Settings, sessions: Sessions
) -> None:
    job_id = client.post("/jobs", json=DEMO).json()["id"]
    with transaction(sessions) as s:
        claim = jobs.claim_next(s, "w1", False, 30, 30)
    assert claim is not None
    # Numbers that are no .npz at all: drawing them again would fail again, so 503 "try again" would be a lie.
    publish_artifact(settings, sessions, claim, artifacts.kernel_history(0), b"not numbers")
    response = client.get(f"/jobs/{job_id}/kernels/conv1/evolution.gif")
    error = assert_error(response, 422, "undrawable")
    assert str(settings.artifact_dir) not in error["message"]
