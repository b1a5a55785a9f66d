"""Swagger UI and ReDoc load everything from the service itself, and pictures open in the browser."""

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service import jobs
from service.api.app import create_app
from service.config import Settings
from service.db import transaction
from service.spec import DEMO
from tests.helpers import Sessions, make_settings, publish_artifact

ASSET_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_every_asset_from_the_service_itself(client: TestClient, page: str) -> None:
    html = client.get(page).text
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert urls, html
    assert not [u for u in urls if "://" in u or u.startswith("//")], "an asset from another origin"
    assert "fonts.googleapis" not in html
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert ASSET_TYPES[url[url.rindex(".") :]] in response.headers["content-type"], url
        assert len(response.content) > 500, url  # the real file, not an error page


def test_swagger_ui_is_pointed_at_the_services_own_schema(client: TestClient) -> None:
    assert "url: '/openapi.json'" in client.get("/docs").text
    assert client.get("/docs/oauth2-redirect").status_code == 200


def test_the_docs_need_no_token(tmp_path: Path, sqlite_url: str) -> None:
    with TestClient(create_app(make_settings(tmp_path, sqlite_url, api_token="secret"))) as c:
        for path in ("/docs", "/redoc", "/static/docs/swagger-ui.css"):
            assert c.get(path).status_code == 200, path


def test_pictures_are_shown_inline_and_other_files_download(
    client: TestClient, settings: Settings, sessions: Sessions
) -> None:
    job_id = client.post("/jobs", json=DEMO).json()["id"]
    with transaction(sessions) as s:
        claim = jobs.claim_next(s, "w1", False, 30, 30)
    assert claim is not None and claim.job_id == job_id
    publish_artifact(settings, sessions, claim, "curves.png", b"a picture")
    publish_artifact(settings, sessions, claim, "weights.pt", b"weights")
    picture = client.get(f"/jobs/{job_id}/curves.png").headers["content-disposition"]
    assert picture.startswith("inline") and 'filename="curves.png"' in picture
    download = client.get(f"/jobs/{job_id}/artifacts/weights.pt").headers["content-disposition"]
    assert download.startswith("attachment") and 'filename="weights.pt"' in download


def test_swagger_groups_every_operation_under_a_described_tag(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    described = [t["name"] for t in document["tags"]]
    untagged = [
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if len(operation.get("tags", [])) != 1 or operation["tags"][0] not in described
    ]
    assert untagged == []
    used = {op["tags"][0] for ops in document["paths"].values() for op in ops.values()}
    assert used == set(described)  # no tag described for nothing


def test_job_ids_are_documented_path_parameters(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    job_ids = [
        p
        for path, operations in document["paths"].items()
        if "{job_id}" in path
        for op in operations.values()
        for p in op.get("parameters", [])
        if p["name"] == "job_id"
    ]
    assert job_ids and all(p["in"] == "path" and p.get("description") for p in job_ids)
