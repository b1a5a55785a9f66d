"""Real processes and databases, for the benchmarks and the tests: the API under uvicorn and workers, each started and
stopped by pid, and databases migrated by Alembic."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import httpx
from alembic import command
from alembic.config import Config

from service.config import Settings

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
# Every process these helpers start, so that a failing test cannot leave one running (see conftest).
STARTED: list[subprocess.Popen[bytes]] = []
API_COMMAND = (sys.executable, "-m", "service.api")
# Debian's Chromium, as the dashboard's tests and benchmark drive it (Playwright's own browser download is not used).
# Headless in a container: no sandbox (no user namespaces), no GPU, and nothing that phones home.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Where the artifacts go: taken from the settings alone, never from this process's environment.
STORE_VARIABLES = (
    "ARTIFACT_URL",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
)


def alembic_config(url: str) -> Config:
    """The project's Alembic configuration, pointed at `url` and leaving the caller's logging alone."""
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    return config


def migrate(url: str) -> None:
    """Bring the database at `url` to the newest schema, as `alembic upgrade head` does."""
    command.upgrade(alembic_config(url), "head")


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that makes a child process use `settings`, and this environment's `python` and tools."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "API_TOKEN", *STORE_VARIABLES)}
    env.update(
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        DATABASE_URL=settings.database_url,
        ARTIFACT_DIR=str(settings.artifact_dir),
        SCRATCH_DIR=str(settings.scratch_dir),
        DATA_DIR=str(settings.data_dir),
        LEASE_SECONDS=str(settings.lease_seconds),
        HEARTBEAT_SECONDS=str(settings.heartbeat_seconds),
        CHECKPOINT_SECONDS=str(settings.checkpoint_seconds),
        POLL_SECONDS=str(settings.poll_seconds),
        WORKER_ALIVE_SECONDS=str(settings.worker_alive_seconds),
        DB_TIMEOUT_SECONDS=str(settings.db_timeout_seconds),
        PYTHONUNBUFFERED="1",
        **extra,
    )
    if settings.api_token:
        env["API_TOKEN"] = settings.api_token
    store = {
        "ARTIFACT_URL": settings.artifact_url,
        "AWS_ENDPOINT_URL": settings.aws_endpoint_url,
        "AWS_ACCESS_KEY_ID": settings.aws_access_key_id,
        "AWS_SECRET_ACCESS_KEY": settings.aws_secret_access_key.get_secret_value(),
        "AWS_DEFAULT_REGION": settings.aws_default_region,
    }
    env.update({name: value for name, value in store.items() if value})
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def stop(process: subprocess.Popen[bytes], timeout: float = 20) -> int:
    """SIGTERM the process we started, then SIGKILL if it lingers; returns its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def start(command: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Run `command` from the repository root as a process of the test's own, logging to `log`."""
    with open(log, "ab") as out:
        process = subprocess.Popen(list(command), cwd=ROOT, env=env, stdout=out, stderr=out)
    STARTED.append(process)
    return process


def start_worker(settings: Settings, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """`python -m worker` as its own process, logging to `log`."""
    return start([sys.executable, "-m", "worker", *args], env_for(settings), log)


def stop_all_started() -> None:
    """Kill whatever a test started and left running (a failed test); SIGCONT first in case it is paused."""
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.kill()
            process.wait()


@contextmanager
def api_server(settings: Settings, log: Path, command: Sequence[str] = API_COMMAND) -> Iterator[str]:
    """The API (`python -m service.api`, or `command`) on a free loopback port; yields its base URL, then stops it."""
    with serving(command, settings, log) as (_, base):
        yield base


@contextmanager
def serving(
    command: Sequence[str], settings: Settings, log: Path, **env: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`command` serving the API on a free loopback port (the API itself, or a supervisor running it), with `env`
    added to its environment; yields the process and the API's base URL, and stops the process afterwards."""
    port = free_port()
    process = start(command, env_for(settings, HOST="127.0.0.1", PORT=str(port), **env), log)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the API exited early:\n{log.read_text()}")
        try:
            return httpx.get(f"{base}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, 30, "the API to answer /health")
        yield process, base
    finally:
        stop(process)


def child_pids(pid: int) -> list[int]:
    """The processes that process `pid` started and has not reaped (Linux's /proc), e.g. a supervisor's children."""
    return [int(child) for task in Path(f"/proc/{pid}/task").glob("*/children") for child in task.read_text().split()]


def is_running(pid: int) -> bool:
    """Whether process `pid` exists and has not exited (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # the state follows the command name, which may hold spaces
