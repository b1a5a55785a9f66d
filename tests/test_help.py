"""Each program's `--help`: its options, and the environment variables it reads with what each means and its default,
all taken from the settings' own fields; no setting goes undescribed."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bench.processes import ROOT
from service.api.__main__ import READS as API_READS
from service.api.app import create_app
from service.config import Settings
from service.supervise.__main__ import READS as SUPERVISOR_READS
from tests.helpers import make_settings
from worker.__main__ import READS as WORKER_READS

PROGRAMS = {"service.api": API_READS, "service.supervise": SUPERVISOR_READS, "worker": WORKER_READS}


def help_text(module: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m {module} ")
    return result.stdout


def flat(text: str) -> str:
    """The text with each run of spaces and line breaks as one space: a description wrapped over lines reads whole."""
    return re.sub(r"\s+", " ", text)


@pytest.mark.parametrize("module", PROGRAMS)
def test_help_lists_each_setting_the_program_reads_with_its_description_and_default(module: str) -> None:
    shown = flat(help_text(module))
    for name in PROGRAMS[module]:
        description = Settings.model_fields[name].description
        assert description
        assert f" {name.upper()} {flat(description)} [" in shown, name


def test_defaults_are_shown_as_one_would_write_them_in_the_environment() -> None:
    shown = flat(help_text("service.api"))
    assert "[sqlite:///var/alexnet-jobs.db]" in shown
    assert re.search(r" ACCESS_LOG .*? \[true\]", shown)
    assert re.search(r" DB_TIMEOUT_SECONDS .*? \[5\]", shown)
    assert re.search(r" API_TOKEN .*? \[none\]", shown)  # empty: no token
    assert re.search(r" AWS_SECRET_ACCESS_KEY .*? \[none\]", shown)  # a secret's default, not its mask
    worker = flat(help_text("worker"))
    assert re.search(r" LEASE_SECONDS .*? \[60\]", worker)
    assert "CUDA_VISIBLE_DEVICES" in worker


def test_every_setting_is_read_by_some_program_and_described() -> None:
    read = {name for names in PROGRAMS.values() for name in names}
    assert read == set(Settings.model_fields)
    assert [name for name, field in Settings.model_fields.items() if not field.description] == []


def test_the_supervisors_help_points_to_what_its_children_read() -> None:
    shown = flat(help_text("service.supervise"))
    assert " WORKERS " in shown
    assert "python -m service.api --help" in shown and "python -m worker --help" in shown


def test_the_apis_help_names_exactly_the_routes_open_without_the_token(tmp_path: Path, sqlite_url: str) -> None:
    shown = flat(help_text("service.api"))
    open_paths = ["/health", "/openapi.json", "/docs", "/redoc", "/session", "/", "/ui/"]
    for path in open_paths[:-2]:
        assert f" {path}," in shown or f" {path} " in shown, path
    assert "(/, /ui/…)" in shown
    settings = make_settings(tmp_path, sqlite_url, api_token="s3cret")
    with TestClient(create_app(settings)) as client:
        for path in open_paths:
            assert client.get(path, follow_redirects=False).status_code in (200, 307), path
        # Everything else, the data the pages read included, is refused without it.
        for path in ("/jobs", "/sweeps", "/events", "/metrics", "/jobs/1/artifacts"):
            assert client.get(path).status_code == 401, path
