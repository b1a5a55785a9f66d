"""`python -m bench.dashboard`: how long the dashboard's job list takes to show in a real browser, with many jobs.

Starts the API (`python -m service.api`) on a fresh SQLite database holding `--jobs` jobs (a mix of statuses, some with
an epoch recorded), opens `/ui/` in Debian's Chromium through Playwright, and times each load from navigation to the
first page of rows on screen. Prints every time and the median; the README's target is 1 s with 1,000 jobs.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from bench.processes import CHROMIUM, CHROMIUM_ARGS, api_server, migrate
from service import jobs, records
from service.config import Settings
from service.db import make_engine, make_sessionmaker, transaction
from service.models import Status
from service.spec import DEMO, JobSpec

TARGET_SECONDS = 1.0


def seed(url: str, count: int) -> None:
    """`count` jobs: most finished with one epoch recorded, some running, the rest queued."""
    sessions = make_sessionmaker(make_engine(url))
    spec = JobSpec.model_validate({**DEMO, "epochs": 1})
    with transaction(sessions) as s:
        for _ in range(count):
            jobs.create_job(s, spec)
    metric = {"epoch": 1, "train_loss": 1.0, "test_loss": 1.1, "test_accuracy": 0.6, "seconds": 3.0}
    for i in range(count * 9 // 10):
        with transaction(sessions) as s:
            claim = jobs.claim_next(s, "bench", False, 3600, 30)
            assert claim is not None
            records.record_epoch(s, claim.job_id, claim.token, {**metric, "images_per_second": 100.0})
            if i % 10:
                jobs.finish(s, claim.job_id, claim.token, Status.SUCCEEDED)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000, help="jobs in the database (default 1,000)")
    parser.add_argument("--loads", type=int, default=7, help="page loads to time (default 7)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="alexnet-jobs-dashboard-") as folder:
        root = Path(folder)
        settings = Settings(database_url=f"sqlite:///{root / 'jobs.db'}", artifact_dir=root / "artifacts")
        migrate(settings.database_url)
        seed(settings.database_url, args.jobs)
        with api_server(settings, root / "api.log") as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            times = []
            for _ in range(args.loads):
                started = time.perf_counter()
                page.goto(f"{base}/ui/")
                page.wait_for_selector("#jobs-table tbody tr:nth-child(20)")
                times.append(time.perf_counter() - started)
            rows = page.locator("#jobs-table tbody tr").count()
            shown = page.locator("#page-info").inner_text()
            browser.close()
    median = statistics.median(times)
    print(f"{args.jobs} jobs: {rows} rows shown ({shown}); loads {', '.join(f'{t:.2f}' for t in times)} s")
    print(f"median {median:.2f} s: {'meets' if median <= TARGET_SECONDS else 'misses'} the {TARGET_SECONDS:g} s target")


if __name__ == "__main__":
    main()
