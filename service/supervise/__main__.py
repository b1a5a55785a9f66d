"""`python -m service.supervise`: the API and $WORKERS workers on this host, each restarted when it dies, until
SIGTERM or Ctrl-C. A worker that dies has its running job taken back at once, to resume from its checkpoint on the
restarted worker or another; the API stays up whatever happens to the workers."""

import argparse
import logging
import os
import sys

from pydantic import ValidationError

from service.config import Settings, describe_environment, get_settings
from service.supervise.gpus import parse_gpus, visible_gpus, worker_children
from service.supervise.supervisor import Child, supervise

log = logging.getLogger("supervisor")

# The settings the supervisor itself reads, for --help (their meanings and defaults are the fields' own).
READS = ("workers", "host", "port", "database_url", "db_timeout_seconds")
EPILOG = (
    describe_environment(READS)
    + "\nand those of `python -m service.api --help` and `python -m worker --help`, which every child inherits"
)


def main() -> None:
    """Parse the options, start the children and keep them running until stopped."""
    parser = argparse.ArgumentParser(
        prog="python -m service.supervise",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--workers", metavar="N|auto", help="how many workers (default: $WORKERS, else 1)")
    parser.add_argument(
        "--gpus", metavar="all|0,1,…", help="one worker per GPU named (`all`: every visible one), instead of --workers"
    )
    parser.add_argument(
        "--no-api", action="store_true", help="the workers alone, as on a GPU host that shares another's database"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = get_settings() if args.workers is None else Settings(workers=args.workers)
    except ValidationError as exc:  # WORKERS or --workers neither a number nor `auto`, or another setting wrong
        parser.error(str(exc))
    workers = settings.workers
    try:
        gpus = parse_gpus(args.gpus) if args.gpus is not None else None
    except ValueError as exc:
        parser.error(f"--gpus {args.gpus}: {exc}")
    if gpus is None and workers == "auto":
        gpus = visible_gpus() or None
        log.info("WORKERS=auto: %s", f"one worker for each of GPUs {', '.join(gpus)}" if gpus else "no GPU; one worker")
    children = worker_children(gpus, 1 if workers == "auto" else workers)
    if not args.no_api:
        children.insert(0, Child("api", (sys.executable, "-m", "service.api"), dict(os.environ)))
        log.info("the API on http://%s:%d (Swagger UI at /docs)", settings.host, settings.port)
    sys.exit(supervise(children, settings))


if __name__ == "__main__":
    main()
