"""Every job state transition, used by the API, the worker and the supervisor. No other code writes `status`.

queued → running → succeeded | failed | cancelled; a running job whose lease lapses, or whose worker its
supervisor saw die, goes back to queued (or to failed after `max_attempts`). Worker-side writes are fenced: they
name the lease token they were given at claim time and change nothing once another worker holds the job.

Three modules, each only transitions: `client` (what a client asks: queue, cancel, resume, continue, delete),
`lease` (what the worker holding a job does: claim, heartbeat, finish, hand back) and `reaper` (taking a job back
from a worker that stopped). Callers use them through this package: `jobs.create_job`, `jobs.claim_next`, …
"""

from service.jobs.client import cancel_job, continue_job, create_job, delete_job, resume_job
from service.jobs.lease import Claim, LeaseLost, claim_next, fenced_update, finish, hand_back, heartbeat
from service.jobs.reaper import reap_expired, release_dead_worker, stalled

__all__ = [
    "Claim",
    "LeaseLost",
    "cancel_job",
    "claim_next",
    "continue_job",
    "create_job",
    "delete_job",
    "fenced_update",
    "finish",
    "hand_back",
    "heartbeat",
    "reap_expired",
    "release_dead_worker",
    "resume_job",
    "stalled",
]
