"""`python -m bench.fleet`: how far one PostgreSQL goes, with a simulated fleet of N GPUs and a database of history.

For each N: the fleet (`bench.fleet_workers`, in a process of its own) starts against a database pre-filled with
finished jobs (`bench.fleet_db`) and the real API (uvicorn, a process of its own). Idle first: what N idle workers
cost the database, and how long a job POSTed to the API waits for a claim. Then busy: enough jobs queued for every
worker to run one after another; while they run, 200 event streams are held open and a few clients time the API's
reads (`bench.fleet_probe`). Ends with a markdown table; `--json` writes every figure.
"""

import argparse
import asyncio
import json
import math
import multiprocessing
import signal
import sys
import tempfile
import time
from dataclasses import asdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from bench import fleet_db
from bench.fleet_probe import ROUTES, probe
from bench.processes import API_COMMAND, serving
from service import jobs
from service.config import Settings
from service.db import make_engine, make_sessionmaker, transaction
from service.spec import JobSpec

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/fleet"
POSTED = 5  # jobs POSTed one at a time to an idle fleet, to time POST → claim
SPEC = JobSpec(dataset="synthetic", epochs=2, image_size=63, batch_size=16, train_samples=32, test_samples=16)


def _fleet_process(conn: Connection, values: dict[str, Any], n: int, epoch_seconds: float, epochs: int,
                   connections: int, wakeups: bool) -> None:  # fmt: skip
    """The fleet's own process: start N simulated workers, answer `take` with what they saw, `stop` with the runs."""
    from bench.fleet_workers import Fleet  # here: the worker's modules load only in this process

    fleet = Fleet(Settings(**values), n, epoch_seconds, epochs, connections, wakeups)
    fleet.start()
    while True:
        command = conn.recv()
        if command == "take":
            conn.send(asdict(fleet.take()))
        elif command == "stop":
            fleet.stop()
            conn.send({"runs": dict(fleet.runs), "errors": fleet.errors[:5]})
            return


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank), in milliseconds; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] * 1000


def alive_workers(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        found = conn.execute(text("SELECT count(*) FROM workers WHERE stopped_at IS NULL")).scalar_one()
    engine.dispose()
    return int(found)


def step(n: int, args: argparse.Namespace, values: dict[str, Any], base: str, history: int) -> dict[str, Any]:
    """One step of the fleet: N workers idle, then busy; their figures."""
    url = args.database_url
    fleet_db.clear_live(url)
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    wake = not args.poll
    process = context.Process(
        target=_fleet_process, args=(theirs, values, n, args.epoch_seconds, args.epochs, args.connections, wake)
    )
    process.start()

    def take() -> dict[str, Any]:
        ours.send("take")
        answer: dict[str, Any] = ours.recv()
        return answer

    deadline = time.monotonic() + 300
    while alive_workers(url) < n and time.monotonic() < deadline:
        time.sleep(1.0)
    time.sleep(2.0)
    take()
    meter = fleet_db.DbMeter(url)
    row: dict[str, Any] = {"workers": n, "wakeups": wake}
    a = meter.sample()
    time.sleep(args.idle_seconds)
    b = meter.sample()
    idle = take()
    row["idle_db_cpu"] = (b.cpu - a.cpu) / (b.at - a.at)
    row["idle_tps"] = (b.transactions - a.transactions) / (b.at - a.at)
    row["idle_looks_per_s"] = len(idle["looks"]) / (b.at - a.at)

    posted: dict[int, float] = {}
    with httpx.Client(base_url=base, timeout=30) as client:
        for _ in range(POSTED):
            answer = client.post("/jobs", json=SPEC.model_dump(mode="json", exclude_defaults=True))
            posted[answer.json()["id"]] = time.time()
            time.sleep(2.0)
    time.sleep(1.0)
    claimed = take()["claimed_at"]
    waits = [claimed.get(j, math.nan) - t for j, t in posted.items()]
    row["post_to_claim_ms"] = [round(w * 1000, 1) for w in waits]

    per_worker = math.ceil(args.busy_seconds / (args.epochs * args.epoch_seconds)) + 1
    sessions = make_sessionmaker(make_engine(url, 60))
    with transaction(sessions) as session:
        for _ in range(n * per_worker):
            jobs.create_job(session, SPEC)
    take()
    a = meter.sample()
    result = asyncio.run(probe(base, args.busy_seconds, args.streams, args.readers, history))
    b = meter.sample()
    busy = take()
    seconds = b.at - a.at
    row["claims_per_s"] = len(busy["claims"]) / seconds
    row["claim_p50_ms"], row["claim_p99_ms"] = pct(busy["claims"], 0.5), pct(busy["claims"], 0.99)
    row["look_p99_ms"] = pct(busy["looks"], 0.99)
    row["beats_per_s"] = len(busy["beats"]) / seconds
    row["beat_p50_ms"], row["beat_p99_ms"] = pct(busy["beats"], 0.5), pct(busy["beats"], 0.99)
    row["busy_db_cpu"] = (b.cpu - a.cpu) / seconds
    row["busy_tps"] = (b.transactions - a.transactions) / seconds
    row["finished_per_s"] = busy["finished"] / seconds
    for route in ROUTES:
        row[f"{route} p50_ms"] = pct(result.latencies[route], 0.5)
        row[f"{route} p99_ms"] = pct(result.latencies[route], 0.99)
        row[f"{route} n"] = len(result.latencies[route])
    row["api_errors"] = result.errors
    row["streams_opened"], row["stream_events"] = result.streams_opened, result.stream_events
    recorded = busy["epoch_at"]
    delays = [
        seen - recorded[key]
        for key, (seen, connected) in result.epoch_seen.items()
        if key in recorded and recorded[key] >= connected  # recorded while the stream was open: seen live
    ]
    row["epoch_to_stream_p50_ms"], row["epoch_to_stream_p99_ms"] = pct(delays, 0.5), pct(delays, 0.99)
    row["epochs_seen"] = len(delays)

    ours.send("stop")
    ended = ours.recv()
    process.join(timeout=60)
    row["doubled_claims"] = sum(1 for count in ended["runs"].values() if count > 1)
    row["fleet_errors"] = ended["errors"]
    meter.close()
    sessions.kw["bind"].dispose()
    return row


def table(rows: list[dict[str, Any]]) -> str:
    """The README's table: one line per step."""
    names = ["N", "wake-ups", "idle DB CPU", "idle TPS", "POST→claim (median)", "claims/s", "claim p50/p99"]
    names += ["busy DB CPU", "busy TPS", "GET /jobs p50/p99", "GET /jobs/{id} p50/p99", "steps p50/p99"]
    names += ["epoch→stream p50/p99"]
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for r in rows:
        post = sorted(r["post_to_claim_ms"])[len(r["post_to_claim_ms"]) // 2]
        lines.append(
            f"| {r['workers']:,} | {'LISTEN' if r['wakeups'] else 'poll'}"
            f" | {r['idle_db_cpu']:.0%} | {r['idle_tps']:.0f}"
            f" | {post:.0f} ms | {r['claims_per_s']:.1f} | {r['claim_p50_ms']:.1f}/{r['claim_p99_ms']:.0f} ms"
            f" | {r['busy_db_cpu']:.0%} | {r['busy_tps']:.0f}"
            + "".join(f" | {r[f'{route} p50_ms']:.0f}/{r[f'{route} p99_ms']:.0f} ms" for route in ROUTES)
            + f" | {r['epoch_to_stream_p50_ms']:.0f}/{r['epoch_to_stream_p99_ms']:.0f} ms |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_URL, help="a database of its own: dropped and made anew")
    parser.add_argument("--workers", default="10,100,300,1000", help="the steps: simulated GPUs, comma-separated")
    parser.add_argument("--prefill", type=int, default=1_000_000, help="finished jobs of history made by SQL")
    parser.add_argument("--reuse", action="store_true", help="keep the database and its history as they are")
    parser.add_argument("--keep", action="store_true", help="leave the database in place at the end")
    parser.add_argument("--poll", action="store_true", help="idle workers poll (no LISTEN/NOTIFY wake-ups)")
    parser.add_argument("--epoch-seconds", type=float, default=10.0, help="a simulated epoch's length")
    parser.add_argument("--epochs", type=int, default=2, help="epochs a simulated job runs")
    parser.add_argument("--idle-seconds", type=float, default=15.0)
    parser.add_argument("--busy-seconds", type=float, default=40.0)
    parser.add_argument("--streams", type=int, default=200, help="event streams held open while busy")
    parser.add_argument("--readers", type=int, default=4, help="clients timing the API's reads while busy")
    parser.add_argument("--connections", type=int, default=40, help="the fleet's connections (its threads share them)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    # SIGTERM as Ctrl-C: the API and the fleet's process are stopped, the database dropped, on the way out.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))

    url = args.database_url
    if not args.reuse:
        fleet_db.recreate(url)
        print(f"prefilling {args.prefill:,} finished jobs…", flush=True)
        print(f"  {fleet_db.prefill(url, args.prefill):.0f} s; {fleet_db.table_bytes(url)}", flush=True)
    history = args.prefill
    folder = Path(tempfile.mkdtemp(prefix="fleet-"))
    values = {
        "database_url": url,
        "artifact_dir": str(folder / "artifacts"),
        "scratch_dir": str(folder / "scratch"),
        "db_timeout_seconds": 30.0,
    }
    rows = []
    try:
        with serving(API_COMMAND, Settings(**values), folder / "api.log", ACCESS_LOG="false") as (_, base):
            for n in [int(x) for x in args.workers.split(",")]:
                print(f"N = {n:,}…", flush=True)
                rows.append(step(n, args, values, base, history))
                print(json.dumps(rows[-1], default=str), flush=True)
        fleet_db.clear_live(url)
        print(f"tables: {fleet_db.table_bytes(url)}")
    finally:
        if not args.keep:
            fleet_db.drop(url)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))
    print(table(rows))


if __name__ == "__main__":
    main()
