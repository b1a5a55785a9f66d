"""`python -m bench.files`: what an epoch's files cost the worker, each on its own.

After each epoch a job writes, beside the next epoch's training, a checkpoint (the model and Adam's moments:
684 MB for AlexNet) and its pictures (PNGs and the kernel numbers), and copies the checkpoint's tensors to host
memory in the epoch hook itself. Where epochs take about a second (a GPU), these decide how long a job waits
between epochs. This trains a tiny job for its real `EpochEnd`s (the model is full size whatever the images'),
then times, for each epoch, every picture's drawing (through `worker.pictures.JobPictures`, publishing to a
folder instead of the store), the host copy, the checkpoint's atomic save and, once, `weights.pt`.
"""

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from service.spec import JobSpec
from worker import checkpoint
from worker.data import make_synthetic
from worker.hooks import EpochEnd, QuietHooks, StartInfo
from worker.pictures.epoch import JobPictures
from worker.train import fit


class _Kept(QuietHooks):
    """Hooks that keep each epoch's end and a host copy of its checkpoint, as the worker takes it."""

    def __init__(self) -> None:
        self.start: StartInfo | None = None
        self.ends: list[tuple[EpochEnd, checkpoint.Checkpoint, float]] = []

    def on_start(self, info: StartInfo) -> None:
        self.start = info

    def on_epoch_end(self, end: EpochEnd) -> None:
        began = time.perf_counter()
        snapshot = end.checkpoint().on_host()
        self.ends.append((end, snapshot, time.perf_counter() - began))


class _Folder:
    """Stands in for the worker's ArtifactWriter: each file written into a folder, its seconds noted by name."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.seconds: dict[str, list[float]] = {}

    def publish(self, name: str, write: Any) -> None:
        began = time.perf_counter()
        write(self.root / name.replace("/", "-"))
        # An epoch's own names (history/kernels/e0003.npz) count as one file.
        self.seconds.setdefault(re.sub(r"e\d{4}", "e<epoch>", name), []).append(time.perf_counter() - began)


def measure(epochs: int, folder: Path) -> list[tuple[str, float]]:
    """(what, median seconds an epoch) for each picture, the pictures together, the host copy, the checkpoint and
    weights.pt, measured over `epochs` epochs of a tiny job."""
    spec = JobSpec(epochs=epochs, batch_size=16, image_size=63, seed=0, device="cpu", precision="fp32")
    data = make_synthetic(16, 200, seed=0)  # 200 test images: enough mistakes for a full grid
    kept = _Kept()
    fit(spec, data, kept)
    assert kept.start is not None
    files = _Folder(folder)
    pictures = JobPictures(files, spec, data)  # type: ignore[arg-type]  # only publish() is used
    pictures.start(kept.start.precision, kept.start.initial)
    files.seconds.clear()
    drawn, saved = [], []
    for end, snapshot, _ in kept.ends:
        began = time.perf_counter()
        pictures.epoch(end.history, end.initial, end.trained)
        drawn.append(time.perf_counter() - began)
        began = time.perf_counter()
        checkpoint.save(snapshot.to_dict(), folder / "checkpoint.pt")
        saved.append(time.perf_counter() - began)
    began = time.perf_counter()
    checkpoint.save(kept.ends[-1][0].state_dict(), folder / "weights.pt")
    weights = time.perf_counter() - began
    each = sorted(((name, statistics.median(s)) for name, s in files.seconds.items()), key=lambda kv: -kv[1])
    return [
        *each,
        ("**the pictures together**", statistics.median(drawn)),
        ("checkpoint copied to host memory (in the epoch hook)", statistics.median(c for _, _, c in kept.ends)),
        ("**checkpoint saved** (atomic, fsynced)", statistics.median(saved)),
        ("weights.pt saved (after the last epoch)", weights),
    ]


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.files", description=__doc__)
    p.add_argument("--epochs", type=int, default=3, help="epochs to time (the table shows each file's median)")
    p.add_argument("--dir", type=Path, help="where to write (default: a temporary folder, as the worker's staging)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="alexnet-jobs-files-", dir=args.dir) as tmp:
        rows = measure(args.epochs, Path(tmp))
    print(f"\n## An epoch's files\n\nMedian of {args.epochs} epochs.\n\n| file | seconds an epoch |\n|---|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} |")


if __name__ == "__main__":
    main()
