"""Each role against each route, over real HTTP against real uvicorn, on SQLite and Postgres.

The table is the published OpenAPI document itself: every operation it lists is tried as an admin, as the member who
owns the job or sweep, as another member, as a viewer and with no token. A new route is in the table by being
served; a new write route on a job or sweep must also be classed below (owner only, or any member), or this fails.
"""

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.processes import api_server
from service import jobs, sweeps, users
from service.db import make_engine, make_sessionmaker, transaction
from service.spec import JobSpec
from service.sweep_spec import SweepIn
from service.users import Role
from tests.helpers import make_settings

BOOTSTRAP = "bootstrap-token"
# Write routes on one job or sweep that only its owner (or an admin) may use, and those any member may use.
OWNER_ONLY = {
    ("post", "/jobs/{job_id}/rerun"),
    ("post", "/jobs/{job_id}/cancel"),
    ("post", "/jobs/{job_id}/resume"),
    ("post", "/jobs/{job_id}/continue"),
    ("delete", "/jobs/{job_id}"),
    ("post", "/sweeps/{sweep_id}/cancel"),
}
ANY_MEMBER = {
    ("post", f"/jobs/{{job_id}}/{what}")
    for what in ("predict", "activations", "activations.png", "explain", "explain.png")
}
# Sign-in and sign-out take no token by design; GET /session and /health answer everyone.
SIGN_IN = {("post", "/session")}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)
ROLES = ("admin", "owner", "other member", "viewer", "no token")


class Service:
    """The API under uvicorn, its database, and a token for each role."""

    def __init__(self, base: str, url: str, tokens: dict[str, str]) -> None:
        self.base, self.url, self.tokens = base, url, tokens
        self.sessions = make_sessionmaker(make_engine(url))
        self.counter = itertools.count()

    def job(self) -> int:
        with transaction(self.sessions) as s:
            return jobs.create_job(s, JobSpec(dataset="synthetic"), owner="ann").id

    def sweep(self) -> int:
        body = SweepIn.model_validate({"base": {"dataset": "synthetic"}, "grid": {"seed": [1]}})
        with transaction(self.sessions) as s:
            return sweeps.create_sweep(s, body, owner="ann").id

    def user(self) -> str:
        name = f"someone{next(self.counter)}"
        with transaction(self.sessions) as s:
            users.add_user(s, name, Role.MEMBER)
        return name

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"} if role in self.tokens else {}


@pytest.fixture
def service(tmp_path: Path, database_url: str) -> Iterator[Service]:
    settings = make_settings(tmp_path, database_url, api_token=BOOTSTRAP)
    tokens = {"admin": BOOTSTRAP}
    engine = make_engine(database_url)
    with transaction(make_sessionmaker(engine)) as s:
        for role, name, kind in (("owner", "ann", Role.MEMBER), ("other member", "bob", Role.MEMBER)):
            tokens[role] = users.add_user(s, name, kind)[1]
        tokens["viewer"] = users.add_user(s, "val", Role.VIEWER)[1]
        tokens["teacher"] = users.add_user(s, "teach", Role.ADMIN)[1]
    engine.dispose()
    with api_server(settings, tmp_path / "api.log") as base:
        yield Service(base, database_url, tokens)


def _request(service: Service, method: str, path: str, operation: dict[str, Any], role: str) -> httpx.Response:
    """One request of the operation as `role`, on objects of its own (owned by ann), with what it requires."""
    values = {"layer": "conv1", "stage": "trained", "channel": "0", "name": "weights.pt"}
    if "{job_id}" in path:
        values["job_id"] = str(service.job())
    if "{sweep_id}" in path:
        values["sweep_id"] = str(service.sweep())
    if path.startswith("/users/"):
        values["name"] = service.user()
    url = service.base + path.format(**values)
    query = {p["name"]: "1" for p in operation.get("parameters", []) if p.get("required") and p["in"] == "query"}
    query = {k: values.get("job_id", "1") if k == "ids" else v for k, v in query.items()}
    content = operation.get("requestBody", {}).get("content", {})
    body: dict[str, Any] = {}
    if "multipart/form-data" in content:
        body["files"] = {"image": ("x.png", PNG, "image/png")}
    elif path == "/users":
        body["json"] = {"name": f"new{next(service.counter)}"}
    elif path == "/sweeps":
        body["json"] = {"base": {"dataset": "synthetic"}, "grid": {"seed": [1]}}
    elif path.endswith("/continue"):
        body["json"] = {"epochs": 1}
    elif content:
        body["json"] = {}
    with httpx.Client(timeout=60) as client:
        request = client.build_request(method, url, params=query, headers=service.headers(role), **body)
        response = client.send(request, stream=True)  # the event streams answer their status, then go on
        try:
            if response.status_code >= 400:
                response.read()
        finally:
            response.close()
    return response


def expected(method: str, path: str, role: str) -> str:
    """`allowed`, `401` or `403`: what `role` should get from the operation."""
    if role == "no token":
        return "401"
    if role == "admin":
        return "allowed"
    if path.startswith("/users"):
        return "403"
    if role == "viewer":
        return "allowed" if method == "get" else "403"
    if role == "other member" and (method, path) in OWNER_ONLY:
        return "403"
    return "allowed"


def test_every_operation_answers_each_role_as_its_role_allows(service: Service) -> None:
    document = httpx.get(f"{service.base}/openapi.json", headers=service.headers("admin")).json()
    wrong = []
    tried = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if "security" not in operation:
                assert (method, path) in SIGN_IN or method in ("get", "delete"), (method, path)
                continue
            if method != "get" and ("{job_id}" in path or "{sweep_id}" in path):
                assert (method, path) in OWNER_ONLY | ANY_MEMBER, f"class {method.upper()} {path} in this test"
            for role in ROLES:
                answer = _request(service, method, path, operation, role)
                tried += 1
                want = expected(method, path, role)
                got = str(answer.status_code) if answer.status_code in (401, 403) else "allowed"
                if got != want:
                    wrong.append(f"{method.upper()} {path} as {role}: {answer.status_code} {answer.text[:200]}")
                elif got != "allowed":
                    error = answer.json()["error"]
                    assert error["code"] == {"401": "unauthorized", "403": "forbidden"}[got]
                    assert error["message"]
    assert wrong == []
    assert tried >= 5 * 45


def test_another_members_cancel_delete_and_rerun_are_refused_naming_what_is_missing(service: Service) -> None:
    job = service.job()
    for method, path in (("POST", f"/jobs/{job}/cancel"), ("DELETE", f"/jobs/{job}"), ("POST", f"/jobs/{job}/rerun")):
        answer = httpx.request(method, service.base + path, headers=service.headers("other member"))
        assert answer.status_code == 403
        message = answer.json()["error"]["message"]
        assert "belongs to ann" in message and "signed in as bob (member)" in message
    viewer = httpx.post(f"{service.base}/jobs", json={}, headers=service.headers("viewer"))
    assert viewer.status_code == 403 and "member or admin role" in viewer.json()["error"]["message"]
    # Nothing changed: the job is still queued, and nobody's job was added.
    owner = service.headers("owner")
    assert httpx.get(f"{service.base}/jobs/{job}", headers=owner).json()["status"] == "queued"
    assert httpx.post(f"{service.base}/jobs/{job}/cancel", headers=owner).json()["status"] == "cancelled"
    assert "cancel asked by ann" in httpx.get(f"{service.base}/jobs/{job}/logs", headers=owner).text
    assert httpx.delete(f"{service.base}/jobs/{job}", headers=owner).status_code == 204


def test_an_unknown_job_is_404_for_everyone_signed_in(service: Service) -> None:
    for role in ("admin", "owner", "other member", "viewer"):
        answer = httpx.get(f"{service.base}/jobs/987654", headers=service.headers(role))
        assert answer.status_code == 404, role
    unknown = (("POST", "/jobs/987654/cancel"), ("DELETE", "/jobs/987654"), ("POST", "/sweeps/987/cancel"))
    for role in ("admin", "owner", "other member"):
        for method, path in unknown:
            assert httpx.request(method, service.base + path, headers=service.headers(role)).status_code == 404


def test_jobs_and_sweeps_record_their_owner_and_the_list_filters_by_it(service: Service) -> None:
    ann, bob = service.headers("owner"), service.headers("other member")
    mine = httpx.post(f"{service.base}/jobs", json={"dataset": "synthetic"}, headers=ann).json()
    assert mine["owner"] == "ann"
    theirs = httpx.post(f"{service.base}/jobs", json={"dataset": "synthetic"}, headers=bob).json()
    sweep = httpx.post(
        f"{service.base}/sweeps", json={"base": {"dataset": "synthetic"}, "grid": {"seed": [1, 2]}}, headers=bob
    ).json()
    assert sweep["owner"] == "bob"
    listed = httpx.get(f"{service.base}/jobs", params={"owner": "me"}, headers=bob).json()
    assert {j["id"] for j in listed["items"]} == {theirs["id"], *(j["id"] for j in sweep["jobs"])}
    assert all(j["owner"] == "bob" for j in listed["items"])
    by_name = httpx.get(f"{service.base}/jobs", params={"owner": "ann"}, headers=bob).json()
    assert [j["id"] for j in by_name["items"]] == [mine["id"]]
