"""`python -m service.users`: add people, list them, change a role or quotas, revoke, rotate a token.

Run on the server, against its database ($DATABASE_URL). A new or rotated token is printed once, on stdout alone
(so `token=$(python -m service.users add ann)` keeps it); only its digest is stored.
"""

import argparse
import sys

from service import users
from service.config import describe_environment, get_settings
from service.db import make_engine, make_sessionmaker, transaction
from service.errors import ServiceError
from service.models import User
from service.users import Role


def _row(user: User) -> str:
    quotas = f"max_active_jobs={user.max_active_jobs or 'default'} max_sweep_jobs={user.max_sweep_jobs or 'default'}"
    state = f"revoked {user.revoked_at:%Y-%m-%d %H:%M}" if user.revoked_at else "active"
    return f"{user.name:<20} {user.role:<7} {state:<22} {quotas}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m service.users",
        description=__doc__,
        epilog=describe_environment(["database_url", "max_active_jobs", "max_sweep_jobs"]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="add a person and print their token, once")
    add.add_argument("name")
    add.add_argument("--role", choices=list(Role), default=Role.MEMBER, help="default: member")
    for command in (add, commands.add_parser("quota", help="set a person's quotas")):
        if command is not add:
            command.add_argument("name")
        command.add_argument("--max-active-jobs", type=int, help="queued + running jobs at once (default: settings)")
        command.add_argument("--max-sweep-jobs", type=int, help="jobs in one sweep (default: settings)")
    commands.add_parser("list", help="everyone, with their role, state and quotas")
    role = commands.add_parser("role", help="change a person's role")
    role.add_argument("name")
    role.add_argument("role", choices=list(Role))
    commands.add_parser("revoke", help="revoke a person's token and sign-ins; their jobs stay").add_argument("name")
    commands.add_parser("rotate", help="a new token for a person; the old one stops working").add_argument("name")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    engine = make_engine(get_settings().database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            if args.command == "add":
                user, token = users.add_user(
                    session, args.name, Role(args.role), args.max_active_jobs, args.max_sweep_jobs
                )
                print(token)
                print(f"added {user.name} as {user.role}; the token above is shown only this once", file=sys.stderr)
            elif args.command == "list":
                for user in users.list_users(session):
                    print(_row(user))
            elif args.command == "role":
                print(_row(users.change_user(session, args.name, role=Role(args.role))))
            elif args.command == "quota":
                values = {"max_active_jobs": args.max_active_jobs, "max_sweep_jobs": args.max_sweep_jobs}
                print(_row(users.change_user(session, args.name, **{k: v for k, v in values.items() if v})))
            elif args.command == "revoke":
                print(_row(users.revoke(session, args.name)))
            elif args.command == "rotate":
                user, token = users.rotate(session, args.name)
                print(token)
                print(f"new token for {user.name}; the old one no longer works", file=sys.stderr)
    except ServiceError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
