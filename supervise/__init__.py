"""One host's processes kept running: the API and its workers (`python -m supervise`, what `make run` starts), or one
worker per GPU (`python -m worker --gpus`).

Why not supervisord, circus or honcho: when a worker dies, its job must be taken back in the database before the
worker is restarted under the same id, and that needs the moment of death and the worker's id in one place. honcho
restarts nothing (one process ending stops them all, as a shell's `wait -n` did); supervisord and circus restart,
but only a separate event-listener process, speaking their protocol, could act on a death, with no ordering against
the restart; and each needs a configuration file (GPU lists, ids and environments computed at start) and a daemon
of its own. What is left is small: asyncio's subprocess handling, a backoff and a signal handler (`supervisor.py`).
"""
