"""The first `make run` on a fresh clone installs only what runs, says what it is doing before each long step, and
prints where the dashboard is; `make test` still installs the test tools. Read from make's dry run (`make -n`), which
prints every command a fresh checkout would run without running any."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.processes import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make on the PATH")


def _dry_run(target: str, venv: Path, **env: str) -> list[str]:
    """The commands `make <target>` would run with no virtual environment yet at `venv`."""
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", target, f"VENV={venv}"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


def test_make_run_installs_what_runs_and_no_test_tools(tmp_path: Path) -> None:
    installs = [line for line in _dry_run("run", tmp_path / "venv") if " -m pip install" in line]
    assert any(line.endswith(" -e .") for line in installs)
    assert any(line.endswith(" -e '.[worker]'") for line in installs)
    assert not [line for line in installs if "dev" in line], installs


def test_make_run_says_what_it_does_before_each_long_step_and_where_the_dashboard_is(tmp_path: Path) -> None:
    lines = _dry_run("run", tmp_path / "venv", HOST="127.0.0.1", PORT="8123")
    long_steps = [
        i for i, line in enumerate(lines) if " -m venv " in line or (" -m pip install" in line and " -e " in line)
    ]
    assert len(long_steps) == 3  # the environment, the service, PyTorch
    for i in long_steps:
        assert lines[i - 1].startswith("echo "), lines[i]
    start = next(i for i, line in enumerate(lines) if line.startswith("exec ") and "service.supervise" in line)
    assert "http://127.0.0.1:8123/" in " ".join(lines[start - 2 : start])


def test_make_test_installs_the_test_tools_too(tmp_path: Path) -> None:
    installs = [line for line in _dry_run("test", tmp_path / "venv") if " -m pip install" in line]
    assert any(line.endswith(" -e '.[worker,dev]'") for line in installs)
