"""Jobs side by side: the comparison as JSON (both databases), as a chart drawn by the real drawing process, and the
chart itself with two and with twenty lines."""

import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from matplotlib.figure import Figure
from PIL import Image

from service import jobs, records
from service.config import Settings
from service.contracts import CompareSeries
from service.db import transaction
from service.spec import DEMO
from tests.helpers import Sessions, assert_error, make_settings
from worker.pictures.compare import draw_compare

SPECS = [
    {**DEMO, "optimizer": "adam", "learning_rate": 0.001},
    {**DEMO, "optimizer": "sgd", "learning_rate": 0.01},
    {**DEMO, "optimizer": "sgd", "learning_rate": 0.001, "name": "no epoch yet"},
]
EPOCHS = [
    {"epoch": 1, "train_loss": 1.6, "test_loss": 1.7, "test_accuracy": 0.4},
    {"epoch": 2, "train_loss": 1.2, "test_loss": 1.3, "test_accuracy": 0.8},
]


@pytest.fixture
def compared(client: TestClient, sessions: Sessions) -> list[int]:
    """Three jobs of different optimizers and rates: the first with two epochs, the second with one, the third none."""
    ids = [client.post("/jobs", json=spec).json()["id"] for spec in SPECS]
    with transaction(sessions) as s:
        claims = [jobs.claim_next(s, "w1", False, 30, 30) for _ in range(2)]
    for claim, epochs in zip(claims, (EPOCHS, EPOCHS[:1]), strict=True):
        assert claim is not None
        for metric in epochs:
            with transaction(sessions) as s:
                records.record_epoch(s, claim.job_id, claim.token, {**metric, "seconds": 1.0, "images_per_second": 9.0})
    return ids


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """The JSON comparison runs on SQLite and on Postgres."""
    return make_settings(tmp_path, database_url)


def test_compare_shows_each_jobs_spec_what_differs_and_its_series(client: TestClient, compared: list[int]) -> None:
    first, second, third = compared
    body = client.get("/compare", params={"ids": f"{second},{first},{third}"}).json()
    assert body["differing"] == ["optimizer", "learning_rate"]
    assert [j["id"] for j in body["jobs"]] == [second, first, third]  # in the order asked for
    by_id = {j["id"]: j for j in body["jobs"]}
    assert by_id[first]["differs"] == {"optimizer": "adam", "learning_rate": 0.001}
    assert [by_id[i]["label"] for i in compared] == ["adam lr 1e-3", "sgd lr 1e-2", "sgd lr 1e-3"]
    assert by_id[first]["spec"] == client.get(f"/jobs/{first}").json()["spec"]
    assert by_id[first]["epochs"] == EPOCHS
    assert [len(by_id[i]["epochs"]) for i in compared] == [2, 1, 0]
    assert (by_id[first]["status"], by_id[third]["name"]) == ("running", "no epoch yet")
    assert body["links"]["compare_test_loss_png"] == f"/compare.png?ids={second},{first},{third}&metric=test_loss"


def test_a_repeated_id_is_compared_once_and_alike_jobs_are_told_apart_by_id(client: TestClient) -> None:
    a, b = (client.post("/jobs", json=DEMO).json()["id"] for _ in range(2))
    body = client.get("/compare", params={"ids": f"{a}, {b},{a}"}).json()
    assert body["differing"] == []
    assert [(j["id"], j["label"]) for j in body["jobs"]] == [(a, f"job {a}"), (b, f"job {b}")]


def test_unknown_ids_are_404_naming_every_one(client: TestClient, compared: list[int]) -> None:
    error = assert_error(client.get("/compare", params={"ids": f"{compared[0]},98,99"}), 404, "not_found")
    assert error["message"] == "jobs 98, 99 do not exist"
    error = assert_error(client.get("/compare.png", params={"ids": f"{2**63},{compared[0]}"}), 404, "not_found")
    assert error["message"] == f"job {2**63} does not exist"


@pytest.mark.parametrize("path", ["/compare", "/compare.png"])
@pytest.mark.parametrize(
    ("ids", "words"), [(",".join(map(str, range(1, 22))), "at most 20"), ("1,x", "'x'"), ("", "''")]
)
def test_more_than_20_ids_or_no_ids_get_422(client: TestClient, path: str, ids: str, words: str) -> None:
    error = assert_error(client.get(path, params={"ids": ids}), 422, "invalid_request")
    assert words in error["message"]


def test_twenty_ids_are_compared(client: TestClient) -> None:
    ids = [client.post("/jobs", json={**DEMO, "seed": seed}).json()["id"] for seed in range(20)]
    body = client.get("/compare", params={"ids": ",".join(map(str, ids))}).json()
    assert [j["label"] for j in body["jobs"]] == [f"seed {seed}" for seed in range(20)]


def test_the_chart_is_drawn_by_the_drawing_process_and_cached(
    client: TestClient, compared: list[int], settings: Settings
) -> None:
    ids = ",".join(map(str, compared))
    response = client.get("/compare.png", params={"ids": ids, "metric": "test_loss"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.size == (1100, 560)
    assert len(list(settings.cache_dir.iterdir())) == 1
    assert client.get("/compare.png", params={"ids": ids, "metric": "test_loss"}).content == response.content
    assert len(list(settings.cache_dir.iterdir())) == 1  # the same numbers: drawn once
    accuracy = client.get("/compare.png", params={"ids": ids})  # test accuracy by default
    assert accuracy.status_code == 200 and accuracy.content != response.content
    assert_error(client.get("/compare.png", params={"ids": ids, "metric": "f1"}), 422, "invalid_request")


# ---------------------------------------------------------------- the chart itself


def series(n: int) -> list[CompareSeries]:
    return [
        CompareSeries(
            label=f"sgd lr {k}e-3 (job {k})", status="succeeded", epochs=[1, 2, 3], values=[0.2, 0.3, 0.1 * k]
        )
        for k in range(1, n + 1)
    ]


def test_two_lines_are_labelled_by_what_differs_over_what_they_share(tmp_path: Path, drawn: list[Figure]) -> None:
    two = series(2)
    two[1] = CompareSeries(label=two[1].label, status="running", epochs=[1], values=[0.5])
    draw_compare(two, "test_accuracy", tmp_path / "two.png", shared="synthetic batch 32 64 px")
    (fig,) = drawn
    ax = fig.axes[0]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["sgd lr 1e-3 (job 1)", "sgd lr 2e-3 (job 2) — running", "chance (10 %)"]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("epoch", "accuracy (%)", "Test accuracy, 2 jobs")
    assert "all: synthetic batch 32 64 px" in [t.get_text() for t in ax.texts]
    assert list(ax.lines[1].get_ydata()) == [50.0]  # accuracy is shown in percent
    assert ax.get_ylim() == (0, 100)


def test_twenty_lines_each_have_their_own_colour_and_style(tmp_path: Path, drawn: list[Figure]) -> None:
    draw_compare(series(20), "train_loss", tmp_path / "twenty.png")
    (fig,) = drawn
    lines = fig.axes[0].lines[:20]
    assert len({(line.get_color(), line.get_linestyle(), line.get_marker()) for line in lines}) == 20
    assert len(fig.legends[0].get_texts()) == 21  # and the chance line
    assert fig.axes[0].get_ylabel() == "loss (NLL, nats)"
    with Image.open(tmp_path / "twenty.png") as image:
        assert image.size == (1100, 560)


def test_a_job_with_no_epoch_yet_is_named_in_the_legend(tmp_path: Path, drawn: list[Figure]) -> None:
    draw_compare([CompareSeries(label="job 3", status="queued", epochs=[], values=[])], "test_loss", tmp_path / "x.png")
    assert fig_texts(drawn[0])[:1] == ["job 3 — no epoch yet"]


def fig_texts(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.legends[0].get_texts()]
