"""How long the README's quick demo and its optimizer sweep take, end to end, on this machine: the API and one worker
as real processes on a fresh SQLite database, the sweep's four jobs one after another, as the README runs them.

    ONEDNN_MAX_CPU_ISA=AVX2 python -m bench.walkthrough_time   # a CPU without native bf16 (auto trains in fp32)

Prints each job's wait and training time (claimed → finished) and the whole sweep's (queued → last finished).
"""

import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

from bench.processes import api_server, migrate, start_worker, stop
from service.config import Settings
from service.spec import DEMO

GRID = {"optimizer": ["adam", "sgd"], "learning_rate": [0.001, 0.0001]}


def seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="walkthrough-") as folder:
        root = Path(folder)
        url = f"sqlite:///{root / 'jobs.db'}"
        migrate(url)
        settings = Settings(database_url=url, artifact_dir=root / "artifacts", data_dir=root / "data")
        with api_server(settings, root / "api.log") as base, httpx.Client(base_url=base, timeout=60) as client:
            worker = start_worker(settings, root / "worker.log")
            try:
                began = time.monotonic()
                sweep = client.post("/sweeps", json={"name": "optimizers", "base": DEMO, "grid": GRID}).json()
                while not client.get(f"/sweeps/{sweep['id']}").json()["finished"]:
                    time.sleep(2)
                total = time.monotonic() - began
                for item in client.get("/jobs", params={"sweep_id": sweep["id"]}).json()["items"][::-1]:
                    took = seconds_between(item["started_at"], item["finished_at"])
                    print(f"job {item['id']} {item['name'] or ''} {item['status']}: {took:.0f} s started → finished")
                print(f"the sweep of 4: {total:.0f} s queued → all finished")
            finally:
                stop(worker)
            print((root / "worker.log").read_text().splitlines()[-3:])


if __name__ == "__main__":
    main()
