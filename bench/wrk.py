"""`python -m bench.load --wrk`: each route's cost with the API alone (one job queued, no worker), driven by `wrk`
(Debian's package) with one thread and 1, then 4 connections, so that no Python client competes with the API for
the cores.

Besides wrk's latencies and rate, the CPU time the API process spent per request (user + system, from /proc): on a
machine others share, latency and rate follow their load, while the CPU a request costs barely does.
"""

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.processes import API_COMMAND, migrate, serving
from service.config import Settings

# The framework alone (an unknown path, no database), then the reads a page makes, then an operator's scrape.
ROUTES = ("/no-such-path", "/jobs/{id}", "/health", "/jobs/{id}/metrics", "/metrics")
CONNECTIONS = (1, 4)


@dataclass(frozen=True)
class Run:
    """What one wrk run measured."""

    p50_ms: float
    p99_ms: float
    rate: float  # requests per second
    requests: int


def wrk(url: str, connections: int, seconds: float) -> Run:
    """`wrk` against `url` with one thread."""
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
    count = re.search(r"^\s*(\d+) requests in ", out, re.MULTILINE)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if rate is None or count is None:
        raise RuntimeError(f"no Requests/sec or request count in wrk's output:\n{out}")
    if errors and "no-such-path" not in url:
        raise RuntimeError(f"{url}: {errors[1]} responses were errors")
    return Run(ms("50%"), ms("99%"), float(rate[1]), int(count[1]))


def cpu_seconds(pid: int) -> float:
    """The CPU time (user + system) process `pid` has used so far."""
    # /proc/PID/stat: utime and stime are the 14th and 15th fields, counted after the command's closing parenthesis.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(seconds: float, root: Path, job: dict[str, Any]) -> None:
    """Each route's cost with the API alone on this machine (`job` queued for the routes to read), as a markdown
    table."""
    if shutil.which("wrk") is None:
        raise SystemExit("--wrk needs wrk on the PATH (Debian: apt-get install wrk)")
    settings = Settings(
        database_url=f"sqlite:///{root / 'jobs.db'}", artifact_dir=root / "artifacts", data_dir=root / "data"
    )
    migrate(settings.database_url)
    with serving(API_COMMAND, settings, root / "api.log") as (api, base):
        job_id = int(httpx.post(f"{base}/jobs", json=job).raise_for_status().json()["id"])
        print(f"API alone at {base}; job {job_id} queued, no worker; wrk -t1 for {seconds:g} s per line", flush=True)
        header = " | ".join(f"{c} conn: p50 | p99 | req/s | CPU/req" for c in CONNECTIONS)
        lines = [f"| route | {header} |", "|---|" + "---:|" * 4 * len(CONNECTIONS)]
        for route in ROUTES:
            cells = []
            for connections in CONNECTIONS:
                cpu = cpu_seconds(api.pid)
                run = wrk(base + route.format(id=job_id), connections, seconds)
                per_request = (cpu_seconds(api.pid) - cpu) / max(1, run.requests)
                cells += [
                    f"{run.p50_ms:.2f} ms",
                    f"{run.p99_ms:.2f} ms",
                    f"{run.rate:,.0f}",
                    f"{per_request * 1e6:,.0f} µs",
                ]
            lines.append(f"| `GET {route}` | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    cores = len(os.sched_getaffinity(0))
    print(f"\nSQLite, {cores} cores, load average {os.getloadavg()[0]:.1f}:", *lines, sep="\n")
