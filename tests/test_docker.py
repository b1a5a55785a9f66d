"""docker/: Compose's own verdict on the compose file, and the commands the image runs doing what they are for.

Without Docker at hand, the image's commands (its default CMD, its HEALTHCHECK and each compose service's command)
run here as they would in the container: from the repository root, with the environment the image reads.
"""

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.processes import ROOT, api_server, env_for, start, stop, wait_for
from service import queries
from service.config import Settings
from service.db import transaction
from tests.helpers import Sessions, make_settings

COMPOSE_FILE = ROOT / "docker" / "compose.yaml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"


def compose_cli() -> list[str] | None:
    """`docker compose` or `docker-compose`, whichever works here; None if neither does."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def dockerfile_instructions() -> list[tuple[str, str]]:
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


def image_cmd() -> list[str]:
    """The image's default command (exec form), as `docker run` would start it."""
    (cmd,) = [json.loads(arguments) for keyword, arguments in dockerfile_instructions() if keyword == "CMD"]
    assert isinstance(cmd, list)
    return [str(part) for part in cmd]


def image_healthcheck() -> str:
    """The shell command of the image's HEALTHCHECK."""
    (check,) = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "HEALTHCHECK"]
    return check.split(" CMD ", 1)[1]


def compose_commands() -> dict[str, list[str]]:
    """Each compose service's command (exec form), by service."""
    compose: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return {name: [str(part) for part in service["command"]] for name, service in compose["services"].items()}


def python_modules(argv: list[str]) -> set[str]:
    """The modules a command runs with `python -m`, also inside `sh -c` scripts."""
    return set(re.findall(r"\bpython -m ([\w.]+)", " ".join(argv)))


def test_compose_config_is_accepted_by_docker_compose() -> None:
    cli = compose_cli()
    if cli is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    result = subprocess.run(
        [*cli, "-f", str(COMPOSE_FILE), "config"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_every_module_the_image_runs_with_python_m_has_a_main() -> None:
    commands = [image_cmd(), *compose_commands().values()]
    modules = set().union(*(python_modules(argv) for argv in commands))
    assert modules, "no `python -m` command found in the Dockerfile or the compose file"
    for module in sorted(modules):
        assert importlib.util.find_spec(f"{module}.__main__") is not None, f"python -m {module}: no such module"


@pytest.mark.slow
@pytest.mark.parametrize("started_by", ["docker run", "compose"])
def test_the_api_command_migrates_a_fresh_database_serves_and_passes_the_health_check(
    tmp_path: Path, started_by: str
) -> None:
    command = image_cmd() if started_by == "docker run" else compose_commands()["api"]
    # A database that does not exist yet: the command must create the schema before /health can answer.
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'fresh.db'}")
    healthcheck = ["sh", "-c", image_healthcheck()]
    with api_server(settings, tmp_path / "api.log", command) as base:
        env = env_for(settings, PORT=base.rsplit(":", 1)[1])
        assert subprocess.run(healthcheck, cwd=ROOT, env=env, timeout=30).returncode == 0
    # The check fails once nothing answers, so Docker would notice a dead API.
    assert subprocess.run(healthcheck, cwd=ROOT, env=env, capture_output=True, timeout=30).returncode != 0


@pytest.mark.slow
def test_the_worker_command_starts_a_worker_that_registers_and_stops_cleanly(
    settings: Settings, sessions: Sessions, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    worker = start(compose_commands()["worker"], env_for(settings), log)

    def registered() -> bool:
        assert worker.poll() is None, f"the worker exited early:\n{log.read_text()}"
        with transaction(sessions) as s:
            return bool(queries.live_workers(s, settings.worker_alive_seconds))

    try:
        wait_for(registered, 120, "the worker to register")
    finally:
        assert stop(worker) == 0, log.read_text()
