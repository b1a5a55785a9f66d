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

# The settings a worker reads, for --help (their meanings and defaults are the fields' own).
READS = (
    "database_url",
    "artifact_url",
    "artifact_dir",
    "scratch_dir",
    "aws_endpoint_url",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_default_region",
    "data_dir",
    "lease_seconds",
    "heartbeat_seconds",
    "checkpoint_seconds",
    "poll_seconds",
    "worker_alive_seconds",
    "db_timeout_seconds",
    "engine_tuning",
)
EPILOG = describe_environment(READS) + (
    "\n  CUDA_VISIBLE_DEVICES  the GPUs this worker may use (it trains on the first)"
)


def main() -> None:
    """Parse the options and work the queue."""
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
