"""`Idempotency-Key` on POST /jobs and POST /sweeps: a request repeated with the same key and body answers with
what the first one made; the same key with another body is a Conflict. Written once for both tables."""

import hashlib
from typing import TypeVar

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.errors import Conflict
from service.models import Job, Sweep

Keyed = TypeVar("Keyed", Job, Sweep)


def fingerprint(body: BaseModel) -> str:
    """What a key is bound to: the body as validated (every default filled in), field order and all."""
    return hashlib.sha256(body.model_dump_json().encode()).hexdigest()


def earlier(session: Session, table: type[Keyed], key: str | None, body: str) -> Keyed | None:
    """What an earlier request with `key` made (None when there was none, or no key); Conflict if that request's
    body had another fingerprint than `body`."""
    if key is None:
        return None
    existing = session.scalar(select(table).where(table.idempotency_key == key))
    if existing is not None and existing.request_hash != body:
        raise Conflict(f"Idempotency-Key {key!r} was already used with a different body")
    return existing
