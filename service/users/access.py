"""What each person may do: write at all (role), change this job or sweep (ownership), queue this much (quota).

Each check raises the error the client gets, naming what is missing: 403 for a role or an object that is not
theirs, 429 for a quota. Routes call them inside the unit of work that then makes the change.
"""

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.errors import Forbidden, QuotaExceeded
from service.models import Job, Status, User
from service.users import Person, Role


def _who(person: Person) -> str:
    return f"you are signed in as {person.name} ({person.role})"


def require_write(person: Person) -> None:
    """Viewers only read."""
    if person.role == Role.VIEWER:
        raise Forbidden(f"this needs the member or admin role; {_who(person)}, which may only read")


def require_admin(person: Person) -> None:
    if person.role != Role.ADMIN:
        raise Forbidden(f"managing users needs the admin role; {_who(person)}")


def require_owner(person: Person, owner: str | None, what: str, action: str) -> None:
    """A member changes only what they submitted; an admin (and everyone, on an open service) anything."""
    require_write(person)
    if person.role == Role.ADMIN or owner == person.name:
        return
    raise Forbidden(
        f"{what} belongs to {owner or 'nobody'}; a member may {action} only their own, and {_who(person)}; "
        "an admin may do it"
    )


def require_quota(
    session: Session, person: Person, new_jobs: int, default_active: int, default_sweep: int, sweep: bool
) -> None:
    """A user's active (queued + running) jobs stay within their quota, and a sweep within its cap.

    The user's row is locked first (Postgres; SQLite's write transaction holds the whole database), so that two
    submissions at once cannot both fit in the last place. The bootstrap admin and an open service have no quota.
    """
    if person.user_id is None:
        return
    user = session.scalars(select(User).where(User.id == person.user_id).with_for_update()).one()
    max_sweep = user.max_sweep_jobs or default_sweep
    if sweep and new_jobs > max_sweep:
        raise QuotaExceeded(
            f"the sweep makes {new_jobs} jobs; {person.name}'s quota max_sweep_jobs is {max_sweep} per sweep"
        )
    max_active = user.max_active_jobs or default_active
    active = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.owner == person.name, Job.status.in_((Status.QUEUED, Status.RUNNING)))
    )
    if (active or 0) + new_jobs > max_active:
        raise QuotaExceeded(
            f"{person.name} has {active} active jobs (queued or running) and the quota max_active_jobs is "
            f"{max_active}; {new_jobs} more would pass it: wait for some to finish, or cancel some"
        )
