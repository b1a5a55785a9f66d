"""`python -m worker`: work the queue at $DATABASE_URL until SIGTERM/SIGINT (or, with --burst, until it is empty)."""

import argparse
import logging
import os

import torch

from service.config import get_settings
from worker.loop import Worker

# Training runs at lower CPU priority so that an API on the same machine stays responsive.
WORKER_NICENESS = 10


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__)
    parser.add_argument("--burst", action="store_true", help="exit once the queue has nothing to claim")
    parser.add_argument("--id", help="worker id (default: host-pid-random)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.nice(WORKER_NICENESS)
    torch.set_num_threads(len(os.sched_getaffinity(0)))  # the cores this process was given, not the host's
    worker = Worker(get_settings(), worker_id=args.id)
    worker.install_signal_handlers()
    worker.run(burst=args.burst)


if __name__ == "__main__":
    main()
