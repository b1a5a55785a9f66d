"""A claimer process for the race test: claims jobs until none is left, finishing each at once.

`python -m tests.racer DATABASE_URL OUT_FILE`: writes one claimed job id per line to OUT_FILE, and any
error to stderr (the exit code is then 1).
"""

import os
import sys

from service import jobs
from service.db import make_engine, make_sessionmaker, transaction
from service.models import Status


def main(url: str, out: str) -> int:
    sessions = make_sessionmaker(make_engine(url))
    worker = f"racer-{os.getpid()}"
    claimed = []
    while True:
        with transaction(sessions) as session:
            claim = jobs.claim_next(session, worker, has_cuda=False, lease_seconds=60, alive_seconds=30)
        if claim is None:
            break
        with transaction(sessions) as session:
            jobs.finish(session, claim.job_id, claim.token, Status.SUCCEEDED)
        claimed.append(claim.job_id)
    with open(out, "w") as f:
        f.writelines(f"{job_id}\n" for job_id in claimed)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
