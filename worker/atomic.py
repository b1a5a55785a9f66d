"""Files written whole: beside their place under a temporary name, then moved onto it in one step.

A reader (the API serving a picture, a retry loading a checkpoint) sees the old file or the new one, never half of
one; a write that fails, or a process killed mid-write, leaves the old file as it was and no temporary file behind
(but for a kill, whose file the next write of the same name in a new process does not collide with).
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from service.storage import fsync_replace


@contextmanager
def atomic_write(path: Path, durable: bool = False) -> Iterator[Path]:
    """A temporary path beside `path` to write to; moved onto `path` when the block ends without an error.

    With `durable`, the file and the rename are synced to disk first, so that they survive a power cut (what a
    checkpoint needs; a picture can be drawn again).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        if durable:
            fsync_replace(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
