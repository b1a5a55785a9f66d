"""People and their tokens: the command line, the /users API, revocation and rotation on the next request, sign-in
sessions that end, wrong sign-ins slowed, and quotas; over real uvicorn where a token crosses HTTP."""

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from bench.processes import ROOT, api_server
from service.api.app import create_app
from service.api.auth import SESSION_COOKIE
from service.api.throttle import Throttle
from service.db import make_engine, make_sessionmaker, transaction
from service.models import SignInSession, User
from service.spec import DEMO
from tests.helpers import assert_error, make_settings


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "service.users", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_command_line_adds_lists_changes_rotates_and_revokes(tmp_path: Path, sqlite_url: str) -> None:
    added = cli(sqlite_url, "add", "ann", "--role", "viewer")
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    assert len(token) >= 43 and "shown only this once" in added.stderr
    engine = make_engine(sqlite_url)
    with transaction(make_sessionmaker(engine)) as s:
        stored = s.scalars(select(User)).one()
        assert stored.token_digest != token and token not in repr(stored.__dict__)
    engine.dispose()
    assert cli(sqlite_url, "role", "ann", "member").returncode == 0
    assert cli(sqlite_url, "quota", "ann", "--max-active-jobs", "3").returncode == 0
    listed = cli(sqlite_url, "list").stdout
    assert "ann" in listed and "member" in listed and "max_active_jobs=3" in listed
    rotated = cli(sqlite_url, "rotate", "ann").stdout.strip()
    assert rotated and rotated != token
    assert "revoked" in cli(sqlite_url, "revoke", "ann").stdout
    again = cli(sqlite_url, "add", "ann")
    assert again.returncode == 1 and "never reused" in again.stderr
    assert cli(sqlite_url, "add", "me").returncode == 1


def test_revoking_or_rotating_takes_effect_on_the_next_request(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url, api_token="boot")
    admin = {"Authorization": "Bearer boot"}
    with api_server(settings, tmp_path / "api.log") as base, httpx.Client(base_url=base) as http:
        ann = http.post("/users", json={"name": "ann"}, headers=admin).json()
        bob = http.post("/users", json={"name": "bob", "role": "viewer"}, headers=admin).json()
        assert (ann["role"], bob["role"]) == ("member", "viewer")
        assert http.get("/jobs", headers={"Authorization": f"Bearer {ann['token']}"}).status_code == 200
        # Ann signs in on a dashboard too.
        assert http.post("/session", json={"token": ann["token"]}).status_code == 204
        assert http.get("/session").json()["name"] == "ann"
        assert http.get("/jobs").status_code == 200

        rotated = http.post("/users/ann/rotate", headers=admin).json()["token"]
        assert_error(http.get("/jobs", headers={"Authorization": f"Bearer {ann['token']}"}), 401, "unauthorized")
        assert_error(http.get("/jobs"), 401, "unauthorized")  # the sign-in the old token opened has ended
        assert http.get("/jobs", headers={"Authorization": f"Bearer {rotated}"}).status_code == 200

        assert http.delete("/users/ann", headers=admin).json()["revoked_at"]
        assert_error(http.get("/jobs", headers={"Authorization": f"Bearer {rotated}"}), 401, "unauthorized")
        assert_error(http.post("/session", json={"token": rotated}), 401, "unauthorized")
        listed = {u["name"]: u for u in http.get("/users", headers=admin).json()}
        assert listed["ann"]["revoked_at"] and listed["bob"]["revoked_at"] is None
        assert "token" not in listed["bob"]


def test_a_signed_out_cookie_is_worth_nothing_even_as_a_copy(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, api_token="boot")
    with TestClient(create_app(settings)) as client:
        assert client.post("/session", json={"token": "boot"}).status_code == 204
        first = client.cookies[SESSION_COOKIE]
        client.delete("/session")
        assert client.post("/session", json={"token": "boot"}).status_code == 204
        assert client.cookies[SESSION_COOKIE] != first  # every sign-in its own id, never a constant
        client.delete("/session")
        client.cookies.set(SESSION_COOKIE, first)
        assert_error(client.get("/jobs"), 401, "unauthorized")
    engine = make_engine(sqlite_url)
    with transaction(make_sessionmaker(engine)) as s:
        assert s.scalars(select(SignInSession)).all() == []
    engine.dispose()


def test_a_service_without_token_is_open_until_its_first_user_is_added(tmp_path: Path, sqlite_url: str) -> None:
    with TestClient(create_app(make_settings(tmp_path, sqlite_url))) as client:
        job = client.post("/jobs", json=DEMO).json()
        assert job["owner"] is None
        open_ = {"signed_in": True, "token_required": False, "name": None, "role": "admin"}
        assert client.get("/session").json() == open_  # everyone may do anything
        token = cli(sqlite_url, "add", "teach", "--role", "admin").stdout.strip()
        assert_error(client.get("/jobs"), 401, "unauthorized")
        assert client.get("/jobs", headers={"Authorization": f"Bearer {token}"}).json()["total"] == 1


def test_wrong_sign_ins_wait_longer_and_longer_and_a_right_one_starts_afresh() -> None:
    throttle = Throttle()
    waits = []
    for n in range(8):
        waits.append(throttle.delay("10.0.0.1", now=float(n)))
        throttle.failed("10.0.0.1", now=float(n))
    assert waits == [0, 0, 0, 0.5, 1, 2, 4, 8]
    assert throttle.delay("10.0.0.2", now=8) == 0  # another address is not held back
    assert throttle.delay("10.0.0.1", now=8 + 15 * 60) == 0  # forgiven after the window
    throttle.succeeded("10.0.0.1")
    assert throttle.delay("10.0.0.1", now=9) == 0


@pytest.fixture
def classroom(tmp_path: Path, database_url: str) -> TestClient:
    settings = make_settings(tmp_path, database_url, api_token="boot", max_active_jobs=3, max_sweep_jobs=2)
    return TestClient(create_app(settings))


def test_a_submission_over_quota_gets_429_naming_the_quota_and_how_many_are_active(classroom: TestClient) -> None:
    admin = {"Authorization": "Bearer boot"}
    with classroom as client:
        ann = {"Authorization": f"Bearer {client.post('/users', json={'name': 'ann'}, headers=admin).json()['token']}"}
        for n in range(3):
            assert client.post("/jobs", json=DEMO, headers={**ann, "Idempotency-Key": f"k{n}"}).status_code == 201
        error = assert_error(client.post("/jobs", json=DEMO, headers=ann), 429, "quota_exceeded")
        assert "ann has 3 active jobs" in error["message"] and "max_active_jobs is 3" in error["message"]
        # A retry of a request that was queued is answered with its job, quota or not.
        assert client.post("/jobs", json=DEMO, headers={**ann, "Idempotency-Key": "k0"}).status_code == 201
        sweep = {"base": DEMO, "grid": {"seed": [1, 2, 3]}}
        error = assert_error(client.post("/sweeps", json=sweep, headers=ann), 429, "quota_exceeded")
        assert "max_sweep_jobs is 2" in error["message"]
        # The admin raises ann's quotas; the admin has none.
        client.patch("/users/ann", json={"max_active_jobs": 10, "max_sweep_jobs": 4}, headers=admin)
        assert client.post("/sweeps", json=sweep, headers=ann).status_code == 201
        assert client.get("/jobs", params={"owner": "ann"}, headers=admin).json()["total"] == 6
        for _ in range(4):
            assert client.post("/jobs", json=DEMO, headers=admin).status_code == 201
        # A cancelled job is no longer active.
        client.patch("/users/ann", json={"max_active_jobs": 6}, headers=admin)
        assert_error(client.post("/jobs", json=DEMO, headers=ann), 429, "quota_exceeded")
        first = client.get("/jobs", params={"owner": "ann", "limit": 1}, headers=ann).json()["items"][0]["id"]
        client.post(f"/jobs/{first}/cancel", headers=ann)
        assert client.post("/jobs", json=DEMO, headers=ann).status_code == 201


def test_health_tells_a_load_balancer_only_whether_the_service_is_up(tmp_path: Path, sqlite_url: str) -> None:
    with TestClient(create_app(make_settings(tmp_path, sqlite_url, api_token="boot"))) as client:
        client.post("/jobs", json=DEMO, headers={"Authorization": "Bearer boot"})
        assert client.get("/health").json() == {"status": "ok", "database": "ok"}
        assert client.get("/health", headers={"Authorization": "Bearer wrong"}).json() == {
            "status": "ok",
            "database": "ok",
        }
        full = client.get("/health", headers={"Authorization": "Bearer boot"}).json()
        assert full["queue"]["queued"] == 1 and full["workers"] == [] and full["problems"] == []
