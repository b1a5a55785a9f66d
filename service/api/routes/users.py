"""People: add, list, change a role or quotas, rotate a token, revoke; admins only (the command line does the same)."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from service import users
from service.api.auth import admin
from service.api.deps import JSON_BODY, DatabaseDep, ReadDatabaseDep
from service.api.presenter import BODY_ERRORS
from service.api.schemas import ErrorBody
from service.models import User
from service.users import Role

router = APIRouter(prefix="/users", tags=["users"], dependencies=[Depends(admin)])

NameInPath = Annotated[str, Path(max_length=64, description="The user's name.")]
Quota = Annotated[int | None, Field(ge=1, le=10_000, description="Unset (null): the server's default.")]


class UserOut(BaseModel):
    """A person, without their token (only its digest is kept)."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None = Field(description="Set once revoked: their token and sign-ins no longer work.")
    max_active_jobs: int | None = Field(description="Their quota of queued + running jobs; null: the default.")
    max_sweep_jobs: int | None = Field(description="The most jobs one of their sweeps may make; null: the default.")


class UserWithToken(UserOut):
    token: str = Field(description="Their new token: shown this once, never again.")


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, examples=["ann"])
    role: Role = Role.MEMBER
    max_active_jobs: Quota = None
    max_sweep_jobs: Quota = None


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = Field(None, description="Unset or null: unchanged.")
    max_active_jobs: Quota = None
    max_sweep_jobs: Quota = None


def _with_token(user: User, token: str) -> UserWithToken:
    return UserWithToken(**UserOut.model_validate(user).model_dump(), token=token)


def _added(session: Session, body: NewUser) -> UserWithToken:
    return _with_token(*users.add_user(session, body.name, body.role, body.max_active_jobs, body.max_sweep_jobs))


def _listed(session: Session) -> list[UserOut]:
    return [UserOut.model_validate(u) for u in users.list_users(session)]


def _one(session: Session, name: str) -> UserOut:
    return UserOut.model_validate(users.get_user(session, name))


def _changed(session: Session, name: str, values: dict[str, Any]) -> UserOut:
    return UserOut.model_validate(
        users.change_user(session, name, **values) if values else users.get_user(session, name)
    )


def _rotated(session: Session, name: str) -> UserWithToken:
    return _with_token(*users.rotate(session, name))


def _revoked(session: Session, name: str) -> UserOut:
    return UserOut.model_validate(users.revoke(session, name))


@router.get("")
async def list_users(db: ReadDatabaseDep) -> list[UserOut]:
    """Everyone ever added, revoked ones too, oldest first."""
    return await db.run(_listed)


# 409 here: the name is taken (names are never reused).
@router.post("", status_code=201, responses=BODY_ERRORS, dependencies=JSON_BODY)
async def add_user(body: Annotated[NewUser, Body()], db: DatabaseDep, response: Response) -> UserWithToken:
    """Add a person with a role; the answer holds their token, shown this once."""
    added = await db.run(_added, body)
    response.headers["Location"] = f"/users/{added.name}"
    return added


@router.get("/{name}")
async def get_user(name: NameInPath, db: ReadDatabaseDep) -> UserOut:
    """One person: role, state, quotas."""
    return await db.run(_one, name)


@router.patch("/{name}", responses=BODY_ERRORS, dependencies=JSON_BODY)
async def change_user(name: NameInPath, body: Annotated[UserChange, Body()], db: DatabaseDep) -> UserOut:
    """Change a person's role or quotas: the fields given (a quota given as null goes back to the default)."""
    values = body.model_dump(include=body.model_fields_set)
    if values.get("role", "") is None:
        del values["role"]  # every user has a role
    return await db.run(_changed, name, values)


@router.post("/{name}/rotate", responses={409: {"model": ErrorBody, "description": "The user is revoked"}})
async def rotate_token(name: NameInPath, db: DatabaseDep) -> UserWithToken:
    """A new token for the person, shown this once; the old one and its dashboard sign-ins stop working now."""
    return await db.run(_rotated, name)


@router.delete("/{name}")
async def revoke_user(name: NameInPath, db: DatabaseDep) -> UserOut:
    """Revoke a person: their token and sign-ins stop working on the next request; their jobs and sweeps stay."""
    return await db.run(_revoked, name)
