"""The layout of a job's keys in a store (`<job>/…`), built here for both stores."""

import uuid


def checkpoint_key(job_id: int, name: str) -> str:
    """Where a job's checkpoint `name` is kept."""
    return f"{job_id}/checkpoints/{name}"


def unique_key(job_id: int, token: str, name: str) -> str:
    """A key for one publish of `name` by the claim `token`, used by no other publish: a stale claim's upload can
    never overwrite its successor's file, and a key once recorded always names the same bytes."""
    return f"{job_id}/{token[:8]}-{uuid.uuid4().hex[:8]}/{name}"
