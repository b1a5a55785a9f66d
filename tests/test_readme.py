"""The README's walk-through, pasted as a newcomer pastes it: the shell blocks of its curl, sweep, prediction and
clean-up sections, in order, run by bash against a real API and a real worker (processes of their own) on a fresh
SQLite database. The commands, the ids and the answers are the README's; this test changes only the port and,
announced in SIZES, how much the README's jobs train, so that the whole walk-through takes a few minutes."""

import itertools
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image

from bench.processes import ROOT, api_server, env_for, start_worker
from tests.helpers import make_settings, sqlite_database

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

# The sections pasted, in the README's order. Not pasted: the lecture's own run (CIFAR-10 at 224 px, hours) and the
# blocks that set up other machines (Postgres, Docker, several hosts).
SECTIONS = (
    "A walk through with curl",
    "Compare optimizers",
    "Use the trained model",
    "What a job keeps, and cleaning up",
)
# The README's jobs, shrunk: one epoch of two steps (64 images, batch 32) and 32 test images, instead of 3 epochs of 40
# steps; seconds a job on a CPU. Each must be found, so that a README that drifts from these fails here.
SIZES = {
    r'"epochs": 3\b': '"epochs": 1',
    r'"epochs": 10\b': '"epochs": 1',
    r'"train_samples": 1280\b': '"train_samples": 64',
    r'"test_samples": 256\b': '"test_samples": 32',
}
# How the README marks the one command it shows failing on purpose.
FAILS_ON_PURPOSE = "(curl exits 22)"
# Seconds for the whole walk-through: a few minutes alone, more where the two cores are shared.
WALK_SECONDS = 840


def walk_through(readme: str) -> list[str]:
    """The ```sh blocks of SECTIONS, in the README's order."""
    blocks: list[str] = []
    heading, block = "", None
    for line in readme.splitlines():
        if block is not None:
            if line.startswith("```"):
                blocks.append("\n".join(block))
                block = None
            else:
                block.append(line)
        elif line.startswith("## ") or line.startswith("### "):
            heading = line.lstrip("#").strip()
        elif line == "```sh" and heading in SECTIONS:
            block = []
    return blocks


def shrunk(script: str, port: int, whole: bool = True) -> str:
    """The README's commands against the test's API on `port`, with its jobs' sizes as SIZES says; the `whole`
    walk-through must have each size and the port to change."""
    for pattern, replacement in {**SIZES, r"\blocalhost:8000\b": f"127.0.0.1:{port}"}.items():
        script, found = re.subn(pattern, replacement, script)
        assert found or not whole, f"the README's walk-through no longer has {pattern}"
    return script


def on_purpose(blocks: list[str]) -> list[str]:
    """The commands the README shows failing: each on the line after a comment that says so."""
    lines = "\n".join(blocks).splitlines()
    return [after.strip() for before, after in itertools.pairwise(lines) if FAILS_ON_PURPOSE in before]


def _json(api: httpx.Client, path: str) -> Any:
    response = api.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_readme_walk_through_pasted_in_order_does_what_the_readme_says(tmp_path: Path) -> None:
    blocks = walk_through((ROOT / "README.md").read_text())
    assert len(blocks) == 4, "a section of the walk-through lost or gained a shell block"
    settings = make_settings(tmp_path, sqlite_database(tmp_path))
    workdir = tmp_path / "newcomer"
    workdir.mkdir()
    # "Your own picture as cat.jpg": any photo-sized JPEG will do.
    Image.effect_mandelbrot((640, 480), (-2.0, -1.2, 1.0, 1.2), 60).convert("RGB").save(workdir / "cat.jpg")

    with api_server(settings, tmp_path / "api.log") as base:
        port = int(urlsplit(base).port or 0)
        script = "\n".join(
            [
                "trap 'echo \"README FAILED: $BASH_COMMAND\" >&2' ERR",
                shrunk("\n\n".join(blocks), port),
                'echo "README ids: job=$job sweep=$sweep best=$best compare=$compare"',
            ]
        )
        start_worker(settings, tmp_path / "worker.log")
        done = subprocess.run(
            ["bash", "--noprofile", "--norc"],
            input=script,
            cwd=workdir,
            env=env_for(settings),
            capture_output=True,
            text=True,
            timeout=WALK_SECONDS,
            check=False,
        )
        transcript = f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        (tmp_path / "transcript.txt").write_text(transcript)
        assert done.returncode == 0, transcript

        # What failed is exactly what the README shows failing, and its answer reached the terminal.
        failed = [line.split(": ", 1)[1] for line in done.stderr.splitlines() if line.startswith("README FAILED: ")]
        assert failed == [shrunk(c, port, whole=False) for c in on_purpose(blocks)], transcript
        assert 'did you mean \\"epochs\\"?' in done.stdout, transcript
        assert " → 409" in done.stdout, transcript  # cancelling the finished demo says why it cannot

        ids = dict(part.split("=", 1) for part in done.stdout.split("README ids: ", 1)[1].split())
        with httpx.Client(base_url=base, timeout=30) as api:
            demo = _json(api, f"/jobs/{ids['job']}")
            assert demo["status"] == "succeeded"
            assert {k: demo["spec"][k] for k in ("dataset", "image_size", "batch_size")} == {
                "dataset": "synthetic",
                "image_size": 64,
                "batch_size": 32,
            }
            # The comparison is of the sweep's own four jobs, best first, and not of the demo queued before them.
            sweep = _json(api, f"/sweeps/{ids['sweep']}")
            ranked = [entry["job_id"] for entry in sweep["leaderboard"]]
            assert sorted(ranked) == sorted(job["id"] for job in sweep["jobs"]) and len(ranked) == 4
            assert [int(i) for i in parse_qs(urlsplit(ids["compare"]).query)["ids"][0].split(",")] == ranked
            assert demo["id"] not in ranked
            # "Keep the best": the rerun is the leader's spec with only its epochs changed.
            assert int(ids["best"]) == ranked[0]
            rerun = api.get("/jobs", params={"limit": 1}).json()["items"][0]
            leader = _json(api, f"/jobs/{ranked[0]}")
            assert rerun["id"] not in ranked and rerun["id"] != demo["id"]
            assert {**rerun["spec"], "epochs": None} == {**leader["spec"], "epochs": None}

    # The downloads are the files they say they are, and the prediction answered.
    for picture in ("curves.png", "conv1.png", "compare.png"):
        assert (workdir / picture).read_bytes().startswith(b"\x89PNG"), picture
    assert (workdir / "weights.pt").stat().st_size > 200_000_000  # AlexNet's 57 M parameters, as float32
    assert re.search(r'"predictions": ?\[\{"class": ?"', done.stdout), transcript
