"""Checkpoints and other files, written atomically: temp file in the same folder, fsync, rename."""

import os
from pathlib import Path
from typing import Any

import torch


def fsync_replace(tmp: Path, path: Path) -> None:
    """Make `tmp` durable and move it onto `path` in one step, so readers see the old file or the new one."""
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash only once the folder is synced
    finally:
        os.close(dir_fd)


def save(obj: dict[str, Any], path: Path) -> int:
    """torch.save `obj` atomically; returns the file's size. A kill mid-write leaves no file at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp)
        fsync_replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path.stat().st_size


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint this service wrote; weights_only refuses anything but tensors and plain data."""
    loaded: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return loaded
