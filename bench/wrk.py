"""`python -m bench.load --wrk`: each route's cost with the API alone (one job queued, no worker), driven by `wrk`
(Debian's package) with one thread and 1, then 4 connections, so that no Python client competes with the API for
the cores."""

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx

from bench.processes import api_server, migrate
from service.config import Settings

# The framework alone (an unknown path, no database), then the reads a page makes, then an operator's scrape.
ROUTES = ("/no-such-path", "/jobs/{id}", "/health", "/jobs/{id}/metrics", "/metrics")
CONNECTIONS = (1, 4)


def wrk(url: str, connections: int, seconds: float) -> tuple[float, float, float]:
    """`wrk` against `url` with one thread: (p50 ms, p99 ms, requests per second)."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout

    def ms(label: str) -> float:
        found = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        if found is None:
            raise RuntimeError(f"no {label} line in wrk's output:\n{out}")
        value, unit = float(found[1]), found[2]
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rate = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.MULTILINE)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if rate is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{out}")
    if errors and "no-such-path" not in url:
        raise RuntimeError(f"{url}: {errors[1]} responses were errors")
    return ms("50%"), ms("99%"), float(rate[1])


def run(seconds: float, root: Path, job: dict[str, Any]) -> None:
    """Each route's cost with the API alone on this machine (`job` queued for the routes to read), as a markdown
    table."""
    if shutil.which("wrk") is None:
        raise SystemExit("--wrk needs wrk on the PATH (Debian: apt-get install wrk)")
    settings = Settings(
        database_url=f"sqlite:///{root / 'jobs.db'}", artifact_dir=root / "artifacts", data_dir=root / "data"
    )
    migrate(settings.database_url)
    with api_server(settings, root / "api.log") as base:
        job_id = int(httpx.post(f"{base}/jobs", json=job).raise_for_status().json()["id"])
        print(f"API alone at {base}; job {job_id} queued, no worker; wrk -t1 for {seconds:g} s per line", flush=True)
        header = " | ".join(f"{c} conn: p50 | {c} conn: p99 | {c} conn: req/s" for c in CONNECTIONS)
        lines = [f"| route | {header} |", "|---|" + "---:|" * 3 * len(CONNECTIONS)]
        for route in ROUTES:
            cells = []
            for connections in CONNECTIONS:
                p50, p99, rate = wrk(base + route.format(id=job_id), connections, seconds)
                cells += [f"{p50:.2f} ms", f"{p99:.2f} ms", f"{rate:,.0f}"]
            lines.append(f"| `GET {route}` | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    cores = len(os.sched_getaffinity(0))
    print(f"\nSQLite, {cores} cores, load average {os.getloadavg()[0]:.1f}:", *lines, sep="\n")
