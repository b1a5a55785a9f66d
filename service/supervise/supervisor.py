"""Keep a host's processes running: start each, restart it with backoff when it dies, stop them all on a signal.

When a worker dies, its job is taken back in the database at once (`jobs.release_dead_worker`), before the worker
is restarted under the same id: the supervisor saw the process go, so there is nothing to wait a lease for. The
first SIGTERM or Ctrl-C is passed on to every child as one SIGTERM (a worker then checkpoints and hands its job back,
the API finishes its requests); a second one is passed on again, which makes workers exit at once, and their jobs
are taken back the moment they are gone. Children run in process groups of their own, so that a terminal's Ctrl-C
reaches them only through the supervisor (two signals would make a worker drop its job), and on Linux each gets
SIGTERM should the supervisor itself be killed, so that none outlives it holding a job or the API's port.

Why not supervisord, circus or honcho: when a worker dies, its job must be taken back in the database before the
worker is restarted under the same id, and that needs the moment of death and the worker's id in one place. honcho
restarts nothing (one process ending stops them all, as a shell's `wait -n` did); supervisord and circus restart,
but only a separate event-listener process, speaking their protocol, could act on a death, with no ordering against
the restart; and each needs a configuration file (GPU lists, ids and environments computed at start) and a daemon
of its own. What is left is small: asyncio's subprocess handling, a backoff and a signal handler (`supervisor.py`).
"""

import asyncio
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass

from service import jobs, workers
from service.config import Settings
from service.db import make_engine, make_sessionmaker, transaction

log = logging.getLogger("supervisor")

# Restart delays: the first restart comes quickly (a one-off OOM kill), then doubling while the child keeps dying
# young, up to a retry every half minute; a child that ran a minute was healthy, and starts again from the first.
FIRST_DELAY = 1.0
MAX_DELAY = 30.0
STABLE_SECONDS = 60.0
# How long a worker has, after SIGTERM, to checkpoint and hand its job back (a 684 MB checkpoint written to a slow
# disk takes seconds); one still running then is killed, and its job taken back at once.
STOP_GRACE_SECONDS = 30.0
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


@dataclass(frozen=True)
class Child:
    """A process to keep running: its name in the log, its command and environment, its worker id if a worker."""

    name: str
    argv: tuple[str, ...]
    env: dict[str, str]
    worker_id: str | None = None


class Backoff:
    """Seconds to wait before a restart: doubling while the child keeps dying young, reset once it ran a while."""

    def __init__(self) -> None:
        self.delay = 0.0

    def next(self, ran_for: float) -> float:
        young = ran_for < STABLE_SECONDS and self.delay > 0
        self.delay = min(self.delay * 2, MAX_DELAY) if young else FIRST_DELAY
        return self.delay


def describe(returncode: int) -> str:
    """How a child ended, for the log: `killed by SIGKILL` or `exited with status 1`."""
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exited with status {returncode}"


class JobReleaser:
    """Takes a dead worker's running job back in the database and marks the worker gone from /health."""

    def __init__(self, settings: Settings) -> None:
        self.engine = make_engine(settings.database_url, settings.db_timeout_seconds)
        self.sessions = make_sessionmaker(engine=self.engine)

    def __call__(self, worker_id: str) -> list[int]:
        with transaction(self.sessions) as session:
            taken = jobs.release_dead_worker(session, worker_id)
            workers.worker_stopped(session, worker_id)
        return taken

    def close(self) -> None:
        self.engine.dispose()


def _orphan_guard() -> Callable[[], None] | None:
    """What each child runs before its program (Linux only): SIGTERM when the supervisor dies, even by SIGKILL."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded here: between fork and exec only the call itself is safe
    parent = os.getpid()

    def guard() -> None:
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the supervisor died before the line above took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return guard


class Supervisor:
    """Runs `children` until SIGTERM/SIGINT; `release(worker_id)` takes back a dead worker's jobs, returning them."""

    def __init__(self, children: Sequence[Child], release: Callable[[str], list[int]] | None = None) -> None:
        self.children = list(children)
        self.release = release
        self.running: dict[str, asyncio.subprocess.Process] = {}
        self.stopping = asyncio.Event()
        self.signals = 0
        self.guard = _orphan_guard()

    async def run(self) -> None:
        """Keep every child running; once stopped, wait for them to exit (killing stragglers after a grace)."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
        keepers = [asyncio.create_task(self._keep(child)) for child in self.children]
        await self.stopping.wait()
        _, late = await asyncio.wait(keepers, timeout=STOP_GRACE_SECONDS)
        if late:
            log.warning(
                "still running %.0f s after SIGTERM: %s; killing them", STOP_GRACE_SECONDS, ", ".join(self.running)
            )
            self._signal_all(signal.SIGKILL)
            await asyncio.wait(late)
        log.info("supervisor: stopped")

    def _on_signal(self, signum: int) -> None:
        self.signals += 1
        name = signal.Signals(signum).name
        if self.signals == 1:
            log.info(
                "%s: stopping; workers checkpoint and hand their jobs back (send it again to stop them at once)", name
            )
        else:
            log.warning("%s again: stopping the workers at once; their jobs are taken back as they exit", name)
        self.stopping.set()
        self._signal_all(signal.SIGTERM)

    def _signal_all(self, signum: int) -> None:
        for process in list(self.running.values()):
            with suppress(ProcessLookupError):  # it has just exited
                process.send_signal(signum)

    async def _keep(self, child: Child) -> None:
        """Run `child` until the supervisor stops, restarting it (after its job is taken back) whenever it dies."""
        backoff = Backoff()
        while not self.stopping.is_set():
            started = time.monotonic()
            pid: int | None = None
            try:
                process = await asyncio.create_subprocess_exec(
                    *child.argv, env=child.env, process_group=0, preexec_fn=self.guard
                )
            except OSError as exc:
                outcome = f"could not be started ({exc})"
            else:
                pid = process.pid
                self.running[child.name] = process
                log.info("%s: started (pid %d)", child.name, pid)
                if self.stopping.is_set():  # the stop came while it was starting
                    process.send_signal(signal.SIGTERM)
                code = await process.wait()
                del self.running[child.name]
                outcome = describe(code)
            taken = await self._release(child)
            what = f"{child.name} (pid {pid})" if pid else child.name
            if taken:
                outcome += f"; its job {', '.join(map(str, taken))} was taken back at once"
            if self.stopping.is_set():
                log.info("%s stopped: %s", what, outcome)
                return
            delay = backoff.next(time.monotonic() - started)
            log.warning("%s %s; restarting it in %.0f s", what, outcome, delay)
            with suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)

    async def _release(self, child: Child) -> list[int]:
        if child.worker_id is None or self.release is None:
            return []
        try:
            return await asyncio.to_thread(self.release, child.worker_id)
        except Exception as exc:  # the database is away: the job's lease brings it back instead, as on another host
            log.warning("%s: could not take its job back (%s); its lease will", child.name, str(exc).splitlines()[0])
            return []


def supervise(children: Sequence[Child], settings: Settings) -> int:
    """Run `children` under a Supervisor until SIGTERM/SIGINT; the exit status (0)."""
    release = JobReleaser(settings) if any(child.worker_id for child in children) else None
    try:
        asyncio.run(Supervisor(children, release).run())
    finally:
        if release is not None:
            release.close()
    return 0
