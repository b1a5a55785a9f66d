"""`python -m bench.history`: what keeping a job's history costs, and how fast the API draws it.

- Per epoch, in `fit`: the weight-change measurement over AlexNet's 57 M parameters (the per-step loss is one
  device-side store a step, the confusion matrix one `bincount` per test batch).
- On disk: one epoch's kernel numbers (`history/kernels/eNNNN.npz`), and what a 1,000-epoch job keeps.
- In the API: a 50-epoch job's evolution GIF and one epoch's kernel grid, drawn by the API's drawing process
  (`service.api.renderer` → `python -m worker.pictures.server`), cold (the process starts) and warm.
"""

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from service.api.renderer import Renderer
from service.contracts import EvolutionDraw, KernelsDraw
from worker.hardware import resolve_device
from worker.measures import layer_weights, relative_change, snapshot
from worker.model import build_model, kernels
from worker.pictures.epoch import save_kernels

# The epoch count the GIF target is stated for, and the job length the disk budget is.
GIF_EPOCHS = 50
LONG_JOB_EPOCHS = 1000


def weight_change_seconds(device: torch.device, repeats: int = 5) -> float:
    """Median time of one epoch's weight-change measurement (both references, and the copy for the next epoch)."""
    model = build_model(device, seed=0)
    weights = layer_weights(model)
    initial, previous = snapshot(weights), snapshot(weights)
    times = []
    for _ in range(repeats + 1):
        began = time.perf_counter()
        torch.stack([relative_change(weights, initial), relative_change(weights, previous)]).tolist()
        for kept, now in zip(previous, weights, strict=True):
            kept.copy_(now.detach())
        times.append(time.perf_counter() - began)
    return statistics.median(times[1:])


def history_files(folder: Path, epochs: int) -> list[Path]:
    """A history like a job's: the initial kernels, drifting a little further each epoch."""
    model = build_model(torch.device("cpu"), seed=0)
    k = kernels(model, conv2_filter=0)
    rng = np.random.default_rng(0)
    paths = []
    for epoch in range(epochs + 1):
        path = folder / f"e{epoch:04d}.npz"
        save_kernels(k, path)
        paths.append(path)
        k.conv1 = k.conv1 + rng.normal(0, 2e-4, k.conv1.shape).astype(np.float32)
        k.conv2 = k.conv2 + rng.normal(0, 2e-4, k.conv2.shape).astype(np.float32)
    return paths


async def draw_times(folder: Path, paths: list[Path]) -> dict[str, float]:
    renderer = Renderer(folder / "cache")
    sources = [str(p) for p in paths]
    times = {}
    try:
        began = time.perf_counter()
        await renderer.draw(
            EvolutionDraw(layer="conv1", stage="diff", filter=0, title="bench", sources=sources), "gif diff", ".gif"
        )
        times["conv1 diff GIF, cold (the drawing process starts)"] = time.perf_counter() - began
        for stage in ("trained", "diff"):
            began = time.perf_counter()
            await renderer.draw(
                EvolutionDraw(layer="conv1", stage=stage, filter=0, title="bench", sources=sources),
                f"gif {stage} again",
                ".gif",
            )
            times[f"conv1 {stage} GIF, warm"] = time.perf_counter() - began
        grid = KernelsDraw(layer="conv1", stage="diff", epoch=25, filter=0, sources=[sources[0], sources[25]])
        began = time.perf_counter()
        await renderer.draw(grid, "grid", ".png")
        times["conv1 diff grid at epoch 25, warm"] = time.perf_counter() - began
    finally:
        await renderer.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__)
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"weight change per epoch on {device}: {weight_change_seconds(device) * 1000:.1f} ms", flush=True)
    with tempfile.TemporaryDirectory(prefix="alexnet-jobs-history-") as tmp:
        folder = Path(tmp)
        paths = history_files(folder, GIF_EPOCHS)
        per_epoch = statistics.mean(p.stat().st_size for p in paths)
        print(
            f"kernel numbers per epoch: {per_epoch / 1e3:.1f} kB; a {LONG_JOB_EPOCHS:,}-epoch job: "
            f"{per_epoch * (LONG_JOB_EPOCHS + 1) / 1e6:.1f} MB",
            flush=True,
        )
        for what, seconds in asyncio.run(draw_times(folder, paths)).items():
            print(f"{what} ({GIF_EPOCHS} epochs): {seconds:.2f} s", flush=True)


if __name__ == "__main__":
    main()
