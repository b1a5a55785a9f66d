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
from sqlalchemy.engine import make_url

from bench.processes import ROOT, api_server, env_for, start, stop, wait_for
from service import queries
from service.config import Settings
from service.db import transaction
from service.storage import LocalStore, make_store
from service.storage.s3 import S3Store
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


def compose_services() -> dict[str, Any]:
    """The compose file's services, by name (YAML merge keys resolved)."""
    compose: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return dict(compose["services"])


def compose_commands() -> dict[str, list[str]]:
    """The command (exec form) of each compose service built from this repository's image, by service; the
    multihost profile's Postgres and MinIO run their own images as they come."""
    return {
        name: [str(part) for part in service["command"]]
        for name, service in compose_services().items()
        if "build" in service
    }


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


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's `${NAME}` and `${NAME:-default}` in `value`, from `variables`."""
    return re.sub(
        r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: variables.get(m[1]) or (m[2] or ""), value.replace("$$", "\0")
    ).replace("\0", "$")


def env_file(path: Path) -> dict[str, str]:
    """An --env-file's NAME=value lines."""
    lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def service_settings(name: str, variables: dict[str, str]) -> Settings:
    """The settings a compose service's container reads: the image's defaults, then the service's environment."""
    image = dict(kv.split("=", 1) for k, a in dockerfile_instructions() if k == "ENV" for kv in a.split())
    compose = {k: interpolate(str(v), variables) for k, v in compose_services()[name]["environment"].items()}
    return Settings(**{k.lower(): v for k, v in {**image, **compose}.items() if v != ""})


@pytest.mark.parametrize("service", ["api", "worker"])
def test_the_multihost_profile_puts_jobs_in_its_postgres_and_files_in_its_bucket(service: str) -> None:
    variables = env_file(ROOT / "docker" / "multihost.env")
    settings = service_settings(service, variables)
    store = make_store(settings)
    assert isinstance(store, S3Store)
    services = compose_services()
    assert {"postgres", "s3", "bucket"} <= set(services)
    assert all(services[s]["profiles"] == ["multihost"] for s in ("postgres", "s3", "bucket"))
    # The same server, user, password and database as the postgres service's.
    db = make_url(settings.database_url)
    postgres = {k: interpolate(str(v), variables) for k, v in services["postgres"]["environment"].items()}
    assert (db.host, db.port, db.username, db.password, db.database) == (
        "postgres",
        5432,
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )
    # The bucket the `bucket` service creates on the s3 service, signed with the credentials MinIO was given.
    assert settings.aws_endpoint_url == "http://s3:9000"
    minio = {k: interpolate(str(v), variables) for k, v in services["s3"]["environment"].items()}
    assert (settings.aws_access_key_id, settings.aws_secret_access_key.get_secret_value()) == (
        minio["MINIO_ROOT_USER"],
        minio["MINIO_ROOT_PASSWORD"],
    )
    bucket_env = {k: interpolate(str(v), variables) for k, v in services["bucket"]["environment"].items()}
    script = interpolate(services["bucket"]["entrypoint"][-1], variables)  # sh -c <script>
    made = subprocess.run(
        ["sh", "-c", script.split(" && mc ")[0] + ' && echo "$bucket"'],
        env=bucket_env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert made == store.root.split("/")[0]


def test_without_the_profile_the_services_keep_sqlite_and_the_shared_volume() -> None:
    for service in ("api", "worker"):
        settings = service_settings(service, {})
        assert settings.database_url.startswith("sqlite:////data/")
        store = make_store(settings)
        assert isinstance(store, LocalStore) and store.root == Path("/data/artifacts")
        assert settings.scratch_dir.is_relative_to("/data") and settings.cache_dir.is_relative_to("/data")


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
