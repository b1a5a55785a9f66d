"""`Idempotency-Key` on POST /jobs and POST /sweeps: a request repeated with the same key and body answers with
what the first one made; the same key with another body is a Conflict. Written once for both tables.

Two requests with one key may arrive together: both look, find nothing, and insert. The key's unique index lets one
row in; on PostgreSQL the other insert waits for the first transaction and then fails, and `insert` answers that
request with the row that won, as if it had come second. (SQLite's writers queue for its one lock, so there the
second already finds the first.)
"""

import hashlib
from typing import TypeVar

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
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


def insert(session: Session, row: Keyed) -> Keyed:
    """Store `row`; or, when a concurrent request with the same key stored its own first, that one (Conflict if its
    body differed). The caller goes on with what this returns: `row` itself only if it is the one stored."""
    if row.idempotency_key is None:
        session.add(row)
        session.flush()
        return row
    try:
        with session.begin_nested():  # a savepoint: the transaction outlives the failed insert
            session.add(row)
            session.flush()
    except IntegrityError:
        winner = earlier(session, type(row), row.idempotency_key, row.request_hash or "")
        if winner is None:  # another constraint broke, not the key's
            raise
        return winner
    return row
