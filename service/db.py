"""Engine and session factory. Everything SQLite-specific lives here, so a Postgres URL needs nothing else."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

# How long a SQLite connection waits for another writer before giving up. Transactions here last
# milliseconds, so hitting this means something is badly wrong, not merely busy.
SQLITE_BUSY_TIMEOUT_MS = 30_000


def is_sqlite(url: str) -> bool:
    """True when the URL names a SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


def is_connection_error(exc: BaseException) -> bool:
    """True when `exc` says the database could not be reached or the connection broke (or, on SQLite, stayed
    locked): trying again later can succeed. False for errors in what was asked (a constraint, bad SQL)."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def make_engine(url: str, timeout: float = 5.0, pool_size: int = 5) -> Engine:
    """An engine for `url` that gives up on a database silent for `timeout` seconds (see `Settings.db_timeout_seconds`).

    On Postgres: connect and statement timeouts, TCP keepalives and a TCP user timeout (a silent network partition
    breaks the connection instead of hanging it), and a pool that waits at most `timeout` for a connection.
    On SQLite: WAL, a busy timeout, foreign keys and write-locking transactions.
    """
    if not is_sqlite(url):
        ms = int(timeout * 1000)
        engine = create_engine(
            url,
            pool_pre_ping=True,
            pool_timeout=timeout,
            pool_size=pool_size,  # a process of many threads (the fleet simulator) asks for more than the default
            connect_args={
                "connect_timeout": max(2, round(timeout)),  # libpq counts whole seconds, at least 2
                "keepalives": 1,
                "keepalives_idle": 5,
                "keepalives_interval": 2,
                "keepalives_count": 3,
                "tcp_user_timeout": ms,
            },
        )

        @event.listens_for(engine, "connect")
        def _on_connect_pg(dbapi_connection: Any, _record: Any) -> None:
            # Set here rather than in the URL's `options`, which the tests use for their schema's search_path.
            # A transaction left idle (its client gone silent) would hold its row locks until this ends it.
            with dbapi_connection.cursor() as cursor:
                cursor.execute(f"SET statement_timeout = {ms}")
                cursor.execute(f"SET idle_in_transaction_session_timeout = {max(ms * 6, 10_000)}")
            dbapi_connection.commit()

        return engine

    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # FULL: each commit is fsynced to the WAL before it returns, so a 201 survives a power cut or an OS crash;
        # WAL's usual NORMAL syncs only at checkpoints and may lose the last commits. It costs a write one fsync
        # (`python -m bench.durability`; the README's Reliability section has the figures); reads are unaffected.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A deferred transaction that reads and then writes cannot wait for the lock in WAL mode: SQLite
        # fails it with "database is locked" at once. Taking the write lock up front makes every
        # transaction wait its turn under busy_timeout instead.
        # A read-only unit of work (see `make_sessionmaker`) never upgrades, so it begins deferred: in WAL mode
        # it then reads a snapshot without waiting for, or holding, the one write lock.
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("read_only") else "BEGIN IMMEDIATE")

    return engine


def make_sessionmaker(engine: Engine, read_only: bool = False) -> sessionmaker[Session]:
    """Sessions that keep loaded objects readable after commit; `read_only` ones must not write."""
    return sessionmaker(engine.execution_options(read_only=True) if read_only else engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One short unit of work: commit on success, roll back on error, always close."""
    with factory() as session, session.begin():
        yield session
