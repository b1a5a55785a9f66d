"""What every route shares: the error shape (404, 405, 413, 422), the token, the OpenAPI document, /health."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service import workers
from service.api.app import create_app
from service.config import Settings
from service.db import transaction
from service.spec import DEMO
from tests.helpers import Sessions, assert_error, make_settings, total_jobs


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """The API tests run on SQLite and on Postgres."""
    return make_settings(tmp_path, database_url)


def test_a_body_over_the_limit_gets_413(client: TestClient) -> None:
    response = client.post("/jobs", content=b"{" + b" " * 70_000 + b"}", headers={"content-type": "application/json"})
    assert_error(response, 413, "payload_too_large")
    assert total_jobs(client) == 0


@pytest.mark.parametrize("path", ["/jobs/999", "/jobs/99999999999999999999", "/jobs/0", "/jobs/-3"])
def test_unknown_or_impossible_job_ids_get_404(client: TestClient, path: str) -> None:
    for suffix in ("", "/metrics", "/kernels", "/artifacts", "/curves.png"):
        assert_error(client.get(path + suffix), 404, "not_found")
    assert_error(client.post(path + "/cancel"), 404, "not_found")


def test_a_non_numeric_job_id_gets_422(client: TestClient) -> None:
    assert_error(client.get("/jobs/abc"), 422, "invalid_request")


def test_unknown_routes_and_methods_use_the_error_shape(client: TestClient) -> None:
    assert_error(client.get("/nothing-here"), 404, "not_found")
    assert_error(client.delete("/jobs"), 405, "method_not_allowed")


def test_api_token_guards_everything_but_health_and_docs(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, api_token="s3cret")
    with TestClient(create_app(settings)) as c:
        assert_error(c.get("/jobs"), 401, "unauthorized")
        assert_error(c.post("/jobs", json=DEMO), 401, "unauthorized")
        assert_error(c.get("/jobs", headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")
        assert c.get("/jobs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/health").status_code == 200
        assert c.get("/docs").status_code == 200
        assert c.get("/openapi.json").status_code == 200
        assert c.get("/jobs").json()["error"]["code"] == "unauthorized"


def test_the_openapi_document_declares_bearer_auth_with_or_without_api_token(tmp_path: Path, sqlite_url: str) -> None:
    """Users can be added while the API runs, and from then on everyone must sign in: the document says so always."""

    def schema(token: str) -> dict:
        with TestClient(create_app(make_settings(tmp_path, sqlite_url, api_token=token))) as c:
            return c.get("/openapi.json").json()

    open_, guarded = schema(""), schema("s3cret")
    for document in (open_, guarded):
        assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
        assert {"401", "403", "429"} <= set(document["paths"]["/jobs"]["post"]["responses"])
        assert "security" not in document["paths"]["/health"]["get"]
    # Without API_TOKEN, nobody needs a token until the first user is added.
    assert open_["paths"]["/jobs"]["post"]["security"] == [{"HTTPBearer": []}, {}]
    assert guarded["paths"]["/jobs"]["post"]["security"] == [{"HTTPBearer": []}]


def test_health_reports_database_queue_and_live_workers(client: TestClient, sessions: Sessions) -> None:
    client.post("/jobs", json=DEMO)
    client.post("/jobs", json=DEMO)
    with transaction(sessions) as s:
        workers.register_worker(s, "w-gpu", "host-a", 123, "cuda (test)", bf16_native=True)
        workers.register_worker(s, "w-gone", "host-b", 456, "cpu")
        workers.worker_stopped(s, "w-gone")
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["database"] == "ok"
    assert health["queue"]["queued"] == 2
    assert [(w["id"], w["device"], w["bf16_native"]) for w in health["workers"]] == [("w-gpu", "cuda (test)", True)]


def test_a_declared_body_over_the_limit_is_refused_in_the_error_shape_whatever_the_path(client: TestClient) -> None:
    """Before any route runs: on a route that reads no body, and on no route at all."""
    body = b"x" * 70_000
    for method, path in (("GET", "/health"), ("POST", "/no-such-path"), ("POST", "/session")):
        response = client.request(method, path, content=body, headers={"content-type": "application/json"})
        error = assert_error(response, 413, "payload_too_large")
        assert "65536 bytes" in error["message"], (method, path)


def test_an_image_upload_may_be_larger_than_a_json_body_but_not_without_bound(client: TestClient) -> None:
    job_id = client.post("/jobs", json=DEMO).json()["id"]
    image = {"image": ("cat.png", b"\x89PNG\r\n\x1a\n" + bytes(200_000), "image/png")}
    # Three times the JSON limit gets through to the route, which finds the job has no weights to predict with.
    assert_error(client.post(f"/jobs/{job_id}/predict", files=image), 409, "conflict")
    huge = {"image": ("cat.png", bytes(8 * 1024 * 1024), "image/png")}
    assert_error(client.post(f"/jobs/{job_id}/predict", files=huge), 413, "payload_too_large")
