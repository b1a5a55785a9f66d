"""People who use the service: a name, a role and a token each; the token is kept only as its digest.

Tokens are `secrets.token_urlsafe(32)`: 256 random bits. They are stored as their SHA-256, not a password hash such
as bcrypt: a slow, salted hash protects a secret a person chose, which can be guessed, and a 256-bit random token
cannot be guessed however fast each guess is. An unsalted digest can also be looked up by an index, so each request
finds its person in one indexed read, where bcrypt would check every user's salted hash, ~0.1 s each. The digest
found is compared again in constant time (`hmac.compare_digest`). API_TOKEN stays the bootstrap admin, who has no row.
"""

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from service.errors import Conflict, InvalidRequest, NotFound
from service.models import SignInSession, User, utcnow

# API_TOKEN's holder: the admin who set the server up, with no row of their own.
BOOTSTRAP_NAME = "admin"
# `me` means the one asking in `GET /jobs?owner=me`.
RESERVED_NAMES = frozenset({BOOTSTRAP_NAME, "me"})
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class Role(StrEnum):
    """admin: everything, users too; member: submit, and change their own jobs and sweeps; viewer: read only."""

    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"


@dataclass(frozen=True)
class Person:
    """Who is asking. `name` None: the service runs open (no users, no API_TOKEN), and everyone may do anything."""

    name: str | None
    role: Role
    user_id: int | None = None


OPEN = Person(None, Role.ADMIN)
BOOTSTRAP = Person(BOOTSTRAP_NAME, Role.ADMIN)


def digest(secret: str) -> str:
    """The SHA-256 of a token or a session id, as stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def is_bootstrap(token: str, api_token: str) -> bool:
    return bool(api_token) and hmac.compare_digest(token.encode(), api_token.encode())


def by_digest(session: Session, token_digest: str, api_token: str) -> Person | None:
    """The person whose token has this digest (API_TOKEN's holder too), unless revoked; None otherwise."""
    if api_token and hmac.compare_digest(token_digest, digest(api_token)):
        return BOOTSTRAP
    user = session.scalars(select(User).where(User.token_digest == token_digest)).first()
    if user is None or user.revoked_at is not None or not hmac.compare_digest(user.token_digest, token_digest):
        return None
    return Person(user.name, Role(user.role), user.id)


def by_token(session: Session, token: str, api_token: str) -> Person | None:
    """The person holding `token`, or None for a wrong, rotated or revoked one."""
    return BOOTSTRAP if is_bootstrap(token, api_token) else by_digest(session, digest(token), api_token)


def any_users(session: Session) -> bool:
    """Whether anyone was ever added: from then on, every request must say who it is (revoked users count too)."""
    return session.scalars(select(User.id).limit(1)).first() is not None


def get_user(session: Session, name: str) -> User:
    user = session.scalars(select(User).where(User.name == name)).first()
    if user is None:
        raise NotFound(f"user {name!r} does not exist")
    return user


def list_users(session: Session) -> Sequence[User]:
    return session.scalars(select(User).order_by(User.id)).all()


def add_user(
    session: Session,
    name: str,
    role: Role,
    max_active_jobs: int | None = None,
    max_sweep_jobs: int | None = None,
) -> tuple[User, str]:
    """Add a person; their row and their token, which is shown this once and never kept."""
    if not NAME.fullmatch(name) or name in RESERVED_NAMES:
        raise InvalidRequest(
            f"{name!r} cannot be a user's name: 1–64 letters, digits, '.', '_' or '-', starting with a letter or "
            f"digit, and not {' or '.join(sorted(RESERVED_NAMES))}"
        )
    if session.scalars(select(User.id).where(User.name == name)).first() is not None:
        raise Conflict(f"user {name!r} exists already (names are never reused, even once revoked)")
    token = new_token()
    user = User(
        name=name,
        role=role,
        token_digest=digest(token),
        created_at=utcnow(),
        max_active_jobs=max_active_jobs,
        max_sweep_jobs=max_sweep_jobs,
    )
    session.add(user)
    session.flush()
    return user, token


def change_user(session: Session, name: str, **values: object) -> User:
    """Set a user's role or quotas (those of `values` given)."""
    user = get_user(session, name)
    session.execute(
        update(User).where(User.id == user.id).values(**values).execution_options(synchronize_session=False)
    )
    session.refresh(user)
    return user


def rotate(session: Session, name: str) -> tuple[User, str]:
    """A new token for a person not revoked; the old one, and every sign-in it opened, stop working at once."""
    user = get_user(session, name)
    if user.revoked_at is not None:
        raise Conflict(f"user {name!r} is revoked; add them again under another name")
    token = new_token()
    _end_sessions(session, user.token_digest)
    return change_user(session, name, token_digest=digest(token)), token


def revoke(session: Session, name: str) -> User:
    """Revoke a person: their token and every sign-in it opened stop working on the next request. Their jobs stay."""
    user = get_user(session, name)
    _end_sessions(session, user.token_digest)
    return user if user.revoked_at is not None else change_user(session, name, revoked_at=utcnow())


def _end_sessions(session: Session, token_digest: str) -> None:
    """Drop the sign-ins a token opened (they would no longer be accepted anyway: see `by_digest`)."""
    session.execute(delete(SignInSession).where(SignInSession.token_digest == token_digest))
