"""Requests other web pages could make a browser send, against a real uvicorn (`service.api.guard`): unknown hosts
(DNS rebinding), state-changing requests from another origin, bodies that are not JSON where JSON is meant, and
redirects that would echo the Host header. What a browser itself does is in tests/test_other_origin.py."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.processes import API_COMMAND, STARTED, serving
from service.config import Settings
from tests.helpers import assert_error, make_settings, sqlite_database, total_jobs

pytestmark = pytest.mark.slow

EXTRA_HOSTS = "jobs.example.com, *.lab.example"
# What a browser sends for a page of this service, and for pages elsewhere (another port is another origin).
OWN_PAGE = {"sec-fetch-site": "same-origin"}
OTHER_PAGES = {
    "another site": {"sec-fetch-site": "cross-site", "origin": "http://evil.example"},
    "another port of the same host": {"sec-fetch-site": "same-site", "origin": "http://127.0.0.1:1"},
    "an old browser on another origin": {"origin": "http://evil.example"},
    "an old browser on another port": {"origin": "http://127.0.0.1:1"},
    "a sandboxed frame": {"origin": "null"},
}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder = tmp_path_factory.mktemp("guard")
    return make_settings(folder, sqlite_database(folder))


@pytest.fixture(scope="module")
def base(settings: Settings) -> Iterator[str]:
    """The API under uvicorn for the module, with two more host names: stopped here, not by each test's cleanup."""
    log = Path(settings.artifact_dir).parent / "api.log"
    with serving(API_COMMAND, settings, log, ALLOWED_HOSTS=EXTRA_HOSTS) as (process, url):
        STARTED.remove(process)
        yield url


@pytest.fixture
def api(base: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base, timeout=30) as client:
        yield client


def port_of(api: httpx.Client) -> int:
    port = api.base_url.port
    assert port is not None
    return port


# ---------------------------------------------------------------- host names


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]", "jobs.example.com", "gpu1.lab.example"])
def test_loopback_and_the_configured_host_names_are_served(api: httpx.Client, host: str) -> None:
    assert api.get("/jobs", headers={"host": f"{host}:{port_of(api)}"}).status_code == 200
    assert api.get("/health", headers={"host": host}).status_code == 200


# A rebinding name, a parent of an allowed name, other addresses (loopback too), a broken one, a name that merely starts
# like an allowed one.
FOREIGN_HOSTS = ["rebound.evil.example", "lab.example", "127.0.0.2", "[::2]", "[::1", "jobs.example.com.evil"]


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
def test_any_other_host_name_is_refused_in_the_error_shape_and_changes_nothing(api: httpx.Client, host: str) -> None:
    before = total_jobs(api)
    for request in (api.build_request("GET", "/jobs"), api.build_request("POST", "/jobs", json={})):
        request.headers["host"] = host
        error = assert_error(api.send(request), 400, "unknown_host")
        assert host not in error["message"]  # the client's own text is not echoed back
    assert total_jobs(api) == before


# ---------------------------------------------------------------- other origins


@pytest.mark.parametrize("page", OTHER_PAGES)
def test_a_page_of_another_origin_cannot_queue_cancel_or_delete(api: httpx.Client, page: str) -> None:
    headers = OTHER_PAGES[page]
    job_id = api.post("/jobs", json={"name": "kept"}).json()["id"]
    before = total_jobs(api)
    attempts = [
        ("POST", "/jobs", {"json": {}}),
        ("POST", "/jobs", {"content": b""}),  # an empty form: queues the default job unless refused
        ("POST", f"/jobs/{job_id}/rerun", {"json": {}}),
        ("POST", "/sweeps", {"json": {"base": {}, "grid": {"seed": [1, 2]}}}),
        ("POST", f"/jobs/{job_id}/cancel", {}),
        ("DELETE", f"/jobs/{job_id}", {}),
        ("POST", "/session", {"json": {"token": "x"}}),
        ("DELETE", "/session", {}),
    ]
    for method, path, body in attempts:
        assert_error(api.request(method, path, headers=headers, **body), 403, "cross_origin")
    assert total_jobs(api) == before
    assert api.get(f"/jobs/{job_id}").json()["status"] == "queued"


@pytest.mark.parametrize("page", OTHER_PAGES)
def test_reading_is_left_to_the_browser_which_shows_another_origin_nothing(api: httpx.Client, page: str) -> None:
    # A GET changes nothing; without CORS headers the browser keeps the answer from the other page's scripts.
    response = api.get("/jobs", headers=OTHER_PAGES[page])
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


def test_the_services_own_pages_and_clients_without_a_browser_may_write(api: httpx.Client) -> None:
    own_origin = {"origin": f"http://127.0.0.1:{port_of(api)}"}
    for headers in (OWN_PAGE | own_origin, own_origin, {"sec-fetch-site": "none"}, {}):  # the last one: curl
        assert api.post("/jobs", json={}, headers=headers).status_code == 201, headers
    # The browser's word wins over an Origin a proxy in front may have made look foreign.
    assert api.post("/jobs", json={}, headers=OWN_PAGE | {"origin": "https://jobs.example.com"}).status_code == 201


# ---------------------------------------------------------------- JSON only


def json_operations(api: httpx.Client, job_id: int) -> list[tuple[str, str]]:
    """Every operation whose body the OpenAPI document declares as JSON, with `job_id` in its path."""
    document = api.get("/openapi.json").json()
    return [
        (method.upper(), path.replace("{job_id}", str(job_id)))
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"data": {"name": "form"}},
        {"files": {"name": (None, "form")}},
        {"content": b'{"name": "text"}', "headers": {"content-type": "text/plain"}},
        {"content": b'{"name": "none"}', "headers": {"content-type": ""}},
    ],
    ids=["urlencoded form", "multipart form", "text/plain", "no type"],
)
def test_every_json_operation_refuses_a_body_of_another_type(api: httpx.Client, body: dict) -> None:
    job_id = api.post("/jobs", json={}).json()["id"]
    operations = json_operations(api, job_id)
    assert {path for _, path in operations} >= {"/jobs", f"/jobs/{job_id}/rerun", "/sweeps", "/session"}
    before = total_jobs(api)
    for method, path in operations:
        assert_error(api.request(method, path, **body), 415, "unsupported_media_type")
    assert total_jobs(api) == before


# ---------------------------------------------------------------- redirects


@pytest.mark.parametrize("host", ["localhost", "jobs.example.com"])
def test_a_trailing_slash_redirect_names_no_host(api: httpx.Client, host: str) -> None:
    response = api.get("/jobs/", headers={"host": host}, params={"limit": 5})
    assert response.status_code == 307
    assert response.headers["location"] == "/jobs?limit=5"
    assert api.get("/", headers={"host": host}).headers["location"].startswith("/")
