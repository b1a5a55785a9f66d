"""Which workers a host runs: one per GPU, each seeing only its own, or a number of them sharing the host.

A worker's id names its host and GPU (`<host>-gpu0`) or its place (`<host>-w0`), so that the supervisor, which gave
it that id, can take its job back the moment it dies, and /health shows which is which. GPUs are counted without
torch: the supervisor stays a small process, and CUDA starts only in each worker, after its environment is set.
"""

import os
import re
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from service.supervise.supervisor import Child

# What CUDA_VISIBLE_DEVICES accepts: an index, or a GPU's or MIG instance's UUID.
GPU_NAME = re.compile(r"^(\d+|(GPU|MIG)-[\w-]+)$")
NVIDIA_SMI_SECONDS = 10  # it answers in well under a second; a hung driver must not hang the start


def visible_gpus(env: Mapping[str, str] = os.environ) -> list[str]:
    """The GPUs this host lets its processes use: CUDA_VISIBLE_DEVICES's entries when set, else every NVIDIA GPU."""
    if (visible := env.get("CUDA_VISIBLE_DEVICES")) is not None:
        names = [name.strip() for name in visible.split(",")]
        # CUDA ignores everything from the first entry it cannot parse (`-1` is the usual way to hide all GPUs).
        valid = [GPU_NAME.match(name) is not None for name in names] + [False]
        return names[: valid.index(False)]
    try:
        listed = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_SECONDS,
        )
    except (OSError, subprocess.TimeoutExpired):
        listed = None
    if listed is not None and listed.returncode == 0:
        return [line.strip() for line in listed.stdout.splitlines() if line.strip()]
    # A driver without its tools (some containers): it still lists one folder per GPU.
    folder = Path("/proc/driver/nvidia/gpus")
    return [str(i) for i in range(len(list(folder.iterdir())))] if folder.is_dir() else []


def parse_gpus(value: str) -> list[str]:
    """`all` or a comma-separated list (`0,1`, or GPU UUIDs) as GPU names; ValueError when it names none or repeats."""
    gpus = visible_gpus() if value.strip() == "all" else [name.strip() for name in value.split(",") if name.strip()]
    if not gpus:
        raise ValueError("no GPU visible on this host" if value.strip() == "all" else f"no GPU named in {value!r}")
    if bad := [name for name in gpus if not GPU_NAME.match(name)]:
        raise ValueError(f"not a GPU index or UUID: {', '.join(bad)}")
    if len(set(gpus)) != len(gpus):
        raise ValueError(f"a GPU is named twice in {value!r}")
    return gpus


def worker_children(gpus: list[str] | None, count: int = 1, env: Mapping[str, str] = os.environ) -> list[Child]:
    """`python -m worker` once per GPU in `gpus`, each seeing only that one; with no GPUs, `count` workers."""
    host = socket.gethostname()
    if not gpus:
        return [_worker(f"{host}-w{i}", dict(env)) for i in range(count)]
    children = []
    for gpu in gpus:
        own = dict(env, CUDA_VISIBLE_DEVICES=gpu)
        # CUDA numbers GPUs fastest first by default, nvidia-smi by PCI bus: this makes `gpu1` nvidia-smi's GPU 1.
        own.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
        children.append(_worker(f"{host}-gpu{gpu}", own))
    return children


def _worker(worker_id: str, env: dict[str, str]) -> Child:
    return Child(worker_id, (sys.executable, "-m", "worker", "--id", worker_id), env, worker_id=worker_id)
