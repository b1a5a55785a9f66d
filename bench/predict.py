"""`python -m bench.predict`: how fast a trained job answers POST /jobs/{id}/predict, cold and warm.

The API's side (checking and reducing the upload, `service.api.images`) and the inference process's side
(`service.api.predictor` → `python -m worker.predict`) are timed as the route runs them, on two model files of the
real size (228 MB each; untrained weights cost the same to load and run as trained ones):

- cold: the first prediction, which starts the inference process (importing torch) and loads the model;
- a new model: the process is running, the model is not loaded yet;
- warm: the model is loaded (the median of many).
"""

import argparse
import asyncio
import io
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from service.api.predictor import Predictor
from worker.model import build_model

# The image size the quick demo trains at (64) and the lecture's (224): inference upscales to the job's size.
SIZES = (64, 224)


def photo(width: int, height: int, fmt: str) -> bytes:
    """An image of the given size and format with a photo's mix of smooth areas and fine detail (and file size)."""
    rng = np.random.default_rng(0)
    coarse = Image.fromarray(rng.integers(0, 256, (height // 40, width // 40, 3), dtype=np.uint8))
    smooth = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC), dtype=np.int16)
    grain = rng.integers(-12, 13, (height, width, 1), dtype=np.int16)
    out = io.BytesIO()
    Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8)).save(out, format=fmt, quality=85)
    return out.getvalue()


async def times(folder: Path, warm_repeats: int) -> dict[str, float]:
    weights = []
    for seed in (0, 1):
        path = folder / f"weights-{seed}.pt"
        torch.save(build_model(torch.device("cpu"), seed).state_dict(), path)
        weights.append(path)
    upload = photo(1600, 1200, "JPEG")
    predictor = Predictor()
    out: dict[str, float] = {}
    try:
        await predictor.prepare(upload)  # the thread pool starts: not part of any request after the first
        for label, data in (("12 MP JPEG", photo(4000, 3000, "JPEG")), ("1 MP PNG", photo(1000, 1000, "PNG"))):
            began = time.perf_counter()
            await predictor.prepare(data)
            out[f"checking and reducing a {len(data) / 1e6:.1f} MB {label} (API)"] = time.perf_counter() - began
        for size in SIZES:
            first, second = (f"{p}@{size}" for p in weights)
            await predictor.close()  # cold: a fresh inference process
            began = time.perf_counter()
            await predictor.probabilities(weights[0], first, size, await predictor.prepare(upload))
            out[f"{size} px: cold (process starts, torch loads, model loads)"] = time.perf_counter() - began
            began = time.perf_counter()
            await predictor.probabilities(weights[1], second, size, await predictor.prepare(upload))
            out[f"{size} px: another job's model, process running"] = time.perf_counter() - began
            warm = []
            for _ in range(warm_repeats):
                began = time.perf_counter()
                await predictor.probabilities(weights[1], second, size, await predictor.prepare(upload))
                warm.append(time.perf_counter() - began)
            out[f"{size} px: warm, median of {warm_repeats} (a 1.9 MP JPEG upload)"] = statistics.median(warm)
            out[f"{size} px: warm, slowest of {warm_repeats}"] = max(warm)
    finally:
        await predictor.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.predict", description=__doc__)
    parser.add_argument("--repeats", type=int, default=20, help="warm predictions timed per image size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="alexnet-jobs-predict-") as tmp:
        for what, seconds in asyncio.run(times(Path(tmp), args.repeats)).items():
            print(f"{what}: {seconds:.3f} s", flush=True)


if __name__ == "__main__":
    main()
