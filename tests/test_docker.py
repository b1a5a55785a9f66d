"""Tests for docker/: the compose file's shape, Compose's own verdict on it, and the Dockerfile's promises."""

import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker" / "compose.yaml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
ENV_DEFAULTS = {
    "DATABASE_URL": "sqlite:////data/alexnet-jobs.db",
    "ARTIFACT_DIR": "/data/artifacts",
    "DATA_DIR": "/data/datasets",
    "HOST": "0.0.0.0",
    "PORT": "8000",
}
# A worker checkpoints and hands its job back on the first SIGTERM; Docker's default 10 s may not cover that.
MIN_STOP_GRACE_SECONDS = 60


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (KEYWORD, arguments) pairs, continuation lines joined and comments dropped."""
    result: list[tuple[str, str]] = []
    current = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1]
            continue
        current = (current + line).strip()
        if current:
            keyword, _, arguments = current.partition(" ")
            result.append((keyword.upper(), arguments.strip()))
        current = ""
    return result


def _command(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else command


def _seconds(duration: str) -> int:
    """Compose durations as written here: "90s", "2m"."""
    units = {"s": 1, "m": 60}
    return int(duration[:-1]) * units[duration[-1]]


def _named(instructions: list[tuple[str, str]], keyword: str) -> list[str]:
    return [arguments for kw, arguments in instructions if kw == keyword]


def test_compose_builds_api_and_worker_from_the_dockerfile_at_the_repo_root(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"api", "worker"}
    for service in compose["services"].values():
        build = service["build"]
        assert (COMPOSE_FILE.parent / build["context"]).resolve() == ROOT
        assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE
        assert service["restart"] == "unless-stopped"


def test_compose_mounts_one_named_volume_at_data_in_both_services(compose: dict[str, Any]) -> None:
    mounts = {name: [v.split(":") for v in s["volumes"]] for name, s in compose["services"].items()}
    data_volumes = {name: [m[0] for m in ms if m[1] == "/data"] for name, ms in mounts.items()}
    assert data_volumes["api"] == data_volumes["worker"]
    assert len(data_volumes["api"]) == 1
    assert data_volumes["api"][0] in compose["volumes"]


def test_compose_reserves_the_gpu_for_the_worker_only(compose: dict[str, Any]) -> None:
    devices = compose["services"]["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert "deploy" not in compose["services"]["api"]


def test_compose_publishes_the_api_on_loopback_only(compose: dict[str, Any]) -> None:
    assert compose["services"]["api"]["ports"] == ["127.0.0.1:8000:8000"]
    assert "ports" not in compose["services"]["worker"]


def test_compose_api_migrates_before_serving_and_the_worker_waits_until_it_is_healthy(
    compose: dict[str, Any],
) -> None:
    api, worker = compose["services"]["api"], compose["services"]["worker"]
    command = _command(api)
    assert "alembic upgrade head" in command
    assert command.index("alembic upgrade head") < command.index("python -m service")
    assert worker["depends_on"] == {"api": {"condition": "service_healthy"}}
    assert _command(worker) == "python -m worker"


def test_compose_gives_the_worker_time_to_checkpoint_on_stop(compose: dict[str, Any]) -> None:
    assert _seconds(compose["services"]["worker"]["stop_grace_period"]) >= MIN_STOP_GRACE_SECONDS


def test_compose_config_is_accepted_by_docker_compose() -> None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        cli = ["docker", "compose"]
    elif shutil.which("docker-compose"):
        cli = ["docker-compose"]
    else:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    result = subprocess.run(
        [*cli, "-f", str(COMPOSE_FILE), "config"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_dockerfile_starts_from_slim_python_311(instructions: list[tuple[str, str]]) -> None:
    assert _named(instructions, "FROM") == ["python:3.11-slim"]


def test_dockerfile_installs_the_worker_extra_and_no_dev_tools(instructions: list[tuple[str, str]]) -> None:
    runs = " ".join(_named(instructions, "RUN"))
    assert "'.[worker]'" in runs
    assert not any(extra in runs for extra in ("[dev", ",dev", "dev]"))


def test_dockerfile_installs_dependencies_before_copying_the_code(instructions: list[tuple[str, str]]) -> None:
    """Editing the code must not invalidate the layer that downloads torch."""
    steps = [f"{kw} {arguments}" for kw, arguments in instructions if kw in {"COPY", "RUN"}]
    first = {
        marker: next(i for i, step in enumerate(steps) if marker in step)
        for marker in ("COPY pyproject.toml", "pip install -r", "COPY service/", "COPY worker/", "--no-deps")
    }
    assert first["COPY pyproject.toml"] < first["pip install -r"] < first["COPY service/"] < first["--no-deps"]
    assert first["COPY worker/"] < first["--no-deps"]


def test_dockerfile_sets_the_environment_defaults(instructions: list[tuple[str, str]]) -> None:
    env = dict(token.split("=", 1) for arguments in _named(instructions, "ENV") for token in shlex.split(arguments))
    assert {key: env.get(key) for key in ENV_DEFAULTS} == ENV_DEFAULTS


def test_dockerfile_checks_health_and_runs_as_a_user(instructions: list[tuple[str, str]]) -> None:
    (healthcheck,) = _named(instructions, "HEALTHCHECK")
    assert "python" in healthcheck and "/health" in healthcheck
    users = _named(instructions, "USER")
    assert users
    assert users[-1] not in {"root", "0"}


def test_dockerfile_copies_alembic_next_to_its_config_and_migrates_by_default(
    instructions: list[tuple[str, str]],
) -> None:
    copies = [shlex.split(arguments) for arguments in _named(instructions, "COPY")]
    assert ["alembic.ini", "./"] in copies
    assert ["alembic/", "alembic/"] in copies
    (cmd,) = _named(instructions, "CMD")
    assert "alembic upgrade head" in cmd and "python -m service" in cmd
