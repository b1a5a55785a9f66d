"""Disk space for a job's files: known before they are written, and a full disk reported as one.

A full artifact volume is not the job's fault: the job goes back to the queue, without spending an attempt, and
the worker stops claiming until there is room again (see `worker.runner` and `worker.loop`). The sizes come from
the model: a checkpoint holds the fp32 weights and the optimizer's buffers (Adam keeps two per weight, SGD's
momentum one), weights.pt the weights alone.

A job's own checkpoint is room it can always have back: the next checkpoint replaces it, and weights.pt makes it
unneeded. A new checkpoint is written beside the previous one (a kill mid-write must leave one whole), so on a volume
with room for one but not two the job trains on without the new one, saying so, still protected by the previous one
(`checkpoint_room`); waiting could never help it, since the only thing taking the room is its own.
"""

import errno
import os
import shutil
from functools import lru_cache
from pathlib import Path

import torch

from service.spec import JobSpec
from worker.model import build_model

# Room kept for everything else a job writes besides checkpoints and weights: each epoch's pictures, CSV and
# kernel numbers (about a megabyte), with slack for the filesystem's own overhead.
MARGIN_BYTES = 64 * 2**20
# Bytes per parameter in fp32, and the buffers each optimizer keeps per parameter.
FP32 = 4
OPTIMIZER_BUFFERS = {"adam": 2, "sgd": 1}


class DiskFull(Exception):
    """The artifact volume has no room for what a job is about to write."""

    def __init__(self, path: Path, need: int | None, have: int) -> None:
        self.path, self.need, self.have = path, need, have
        volume = mount_point(path)
        wanted = f"need {size(need)}" if need else "a write failed: no space left on device"
        writing = "" if path == volume else f" (for {path})"
        super().__init__(f"waiting for disk space on {volume}: {wanted}, have {size(have)}{writing}")


def size(n: int) -> str:
    """Bytes for people: 684 MB, 1.2 GB."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"


@lru_cache
def parameter_count() -> int:
    """The model's parameters, counted on the meta device (no memory, no time)."""
    return sum(p.numel() for p in build_model(torch.device("meta"), 0).parameters())


def weights_bytes() -> int:
    """About the size of weights.pt."""
    return FP32 * parameter_count()


def checkpoint_bytes(optimizer: str) -> int:
    """About the size of one checkpoint of a job trained with `optimizer`."""
    return weights_bytes() * (1 + OPTIMIZER_BUFFERS[optimizer])


def largest_write(spec: JobSpec) -> int:
    """The biggest file the job still has to write: a checkpoint (every epoch writes one, the last one too)."""
    return checkpoint_bytes(spec.optimizer)


def any_job_needs() -> int:
    """The least room any job needs to go on: its weights.pt, and the rest (checkpoints are skipped where they do not
    fit beside the job's previous one; see `checkpoint_room`)."""
    return weights_bytes() + MARGIN_BYTES


def mount_point(path: Path) -> Path:
    """The mount point of the volume holding `path`: what an operator frees space on."""
    path = path.absolute()
    for folder in (path, *path.parents):
        if folder.exists() and os.path.ismount(folder):
            return folder
    return Path(path.anchor)


def free_bytes(path: Path) -> int:
    """Free space on the volume holding `path` (or its nearest existing parent)."""
    for folder in (path, *path.parents):
        if folder.exists():
            return shutil.disk_usage(folder).free
    return shutil.disk_usage(".").free


def require(path: Path, need: int) -> None:
    """Raise DiskFull unless the volume of `path` has `need` bytes and the margin free."""
    have = free_bytes(path)
    if have < need + MARGIN_BYTES:
        raise DiskFull(path, need + MARGIN_BYTES, have)


def checkpoint_room(path: Path, need: int, replaceable: int) -> bool:
    """Whether a file of `need` bytes fits on the volume of `path` now (True), or would once the job's own older
    checkpoint (`replaceable` bytes on that volume) were gone (False). DiskFull when not even then: only room
    that someone else frees can help."""
    have = free_bytes(path)
    if have >= need + MARGIN_BYTES:
        return True
    if have + replaceable >= need + MARGIN_BYTES:
        return False
    raise DiskFull(path, need + MARGIN_BYTES, have)


def size_on_volume(path: Path | None, volume_of: Path) -> int:
    """The size of file `path` if it lies on the same volume as `volume_of` (an existing folder); else 0."""
    try:
        return path.stat().st_size if path and path.stat().st_dev == volume_of.stat().st_dev else 0
    except FileNotFoundError:
        return 0


def is_out_of_space(exc: BaseException) -> bool:
    """True when `exc`, or an error it was raised from, is ENOSPC or a quota exceeded. torch.save, for one, reports
    a full disk as a RuntimeError about stream positions with the OSError only as its context."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        current = current.__cause__ or current.__context__
    return False


def as_disk_full(exc: BaseException, path: Path) -> DiskFull | None:
    """The DiskFull that `exc`, raised while writing `path`, really was; None if it was something else."""
    if is_out_of_space(exc):
        return DiskFull(path.parent, None, free_bytes(path))
    return None
