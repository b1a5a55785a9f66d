"""The dashboard's sign-ins, kept on the server: a random id in an HttpOnly cookie, its digest in `sessions`.

Each sign-in gets its own id (`secrets.token_urlsafe(32)`), so a cookie seen once is worth nothing after sign-out,
after its expiry, or once its person's token is rotated or revoked (the row keeps the token's digest, which must
still name someone: see `service.users.by_digest`). Only the id's digest is stored, as tokens' are.
"""

import secrets
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.models import SignInSession, utcnow
from service.users import Person, by_digest, digest


def open_session(session: Session, token_digest: str, hours: float) -> str:
    """A new sign-in for the token with this digest; the cookie's value. Expired sign-ins are cleared on the way."""
    now = utcnow()
    session.execute(delete(SignInSession).where(SignInSession.expires_at <= now))
    cookie = secrets.token_urlsafe(32)
    session.add(
        SignInSession(
            id_digest=digest(cookie),
            token_digest=token_digest,
            created_at=now,
            expires_at=now + timedelta(hours=hours),
        )
    )
    return cookie


def person(session: Session, cookie: str, api_token: str) -> Person | None:
    """Who the sign-in cookie belongs to, while it lasts and its token is still valid; None otherwise."""
    row = session.scalars(
        select(SignInSession.token_digest).where(
            SignInSession.id_digest == digest(cookie), SignInSession.expires_at > utcnow()
        )
    ).first()
    return None if row is None else by_digest(session, row, api_token)


def end_session(session: Session, cookie: str) -> None:
    """Sign out: the cookie stops working now, wherever a copy of it is."""
    session.execute(delete(SignInSession).where(SignInSession.id_digest == digest(cookie)))
