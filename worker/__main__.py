"""`python -m worker`: work the queue at $DATABASE_URL until SIGTERM/SIGINT (or, with --burst, until it is empty).

One process trains on one device. For one worker per GPU, each seeing only its own and restarted when it dies, run
`python -m service.supervise --gpus all --no-api`."""

import argparse
import logging
import os
import sys

from service.config import describe_environment, get_settings

# Training runs at lower CPU priority so that an API on the same machine stays responsive.
WORKER_NICENESS = 10

ENVIRONMENT = {
    "database_url": "the job database, an SQLAlchemy URL (SQLite or postgresql+psycopg://…)",
    "artifact_url": "where the jobs' files are kept: a folder, or s3://bucket/prefix (empty: $ARTIFACT_DIR)",
    "data_dir": "where CIFAR-10 is read from, and downloaded to",
    "lease_seconds": "a job whose worker is silent this long is taken back by another",
    "heartbeat_seconds": "how often a running job's lease is renewed and its progress published",
    "poll_seconds": "how long an idle worker sleeps between looks at the queue",
    "engine_tuning": "the engine's speed choices, e.g. upscale_once=1,warm_up=1 (worker/tuning.py)",
}
EPILOG = describe_environment(ENVIRONMENT) + (
    "\n  CUDA_VISIBLE_DEVICES  the GPUs this worker may use (it trains on the first)"
)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m worker",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--burst", action="store_true", help="exit once the queue has nothing to claim")
    parser.add_argument("--id", help="worker id (default: host-pid-random)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_one(args.id, args.burst)


def run_one(worker_id: str | None, burst: bool) -> None:
    """This process as one worker."""
    import torch

    from worker.loop import Worker
    from worker.tuning import TuningError

    os.nice(WORKER_NICENESS)
    torch.set_num_threads(len(os.sched_getaffinity(0)))  # the cores this process was given, not the host's
    try:
        worker = Worker(get_settings(), worker_id=worker_id)
    except TuningError as exc:
        sys.exit(f"python -m worker: {exc}")
    worker.install_signal_handlers()
    worker.run(burst=burst)
    # All is written and the database told; tearing down torch's and numpy's modules (a full garbage collection over
    # them) would take seconds more on a busy machine, and whoever stops this worker (a supervisor) waits for it.
    logging.shutdown()
    os._exit(0)


if __name__ == "__main__":
    main()
