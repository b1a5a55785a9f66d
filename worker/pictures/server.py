"""`python -m worker.pictures.server`: draws, on request, the pictures of a job's history that the API serves.

The API never loads numpy or matplotlib; it keeps one of these processes and sends it one JSON request a line
on stdin, naming the files to read (the numbers each epoch left, see `worker.pictures.epoch`) and the PNG or GIF to
write; the answer is one JSON line on stdout: `{"id": …, "ok": true}` or `{"id": …, "error": "…"}`. The
pictures are the same functions the worker draws its latest pictures with.
"""

import functools
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from worker.data import Dataset, load_dataset
from worker.pictures import charts, compare, evolution, kernels, mistakes


def load_kernels(path: str) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {layer: f[layer].astype(np.float32) for layer in ("conv1", "conv2")}


def draw_kernels(request: dict[str, Any], out: Path) -> None:
    """One kernel grid at one epoch: `trained` (the weights then) or `diff` (their change since epoch 0)."""
    layer, stage, epoch = request["layer"], request["stage"], request["epoch"]
    weights = load_kernels(request["sources"][-1])[layer]
    if stage == "diff":
        weights = weights - load_kernels(request["sources"][0])[layer]
    elif epoch == 0:
        stage = "initial"
    if layer == "conv1":
        kernels.draw_conv1(weights, stage, epoch, out)
    else:
        kernels.draw_conv2(weights, stage, epoch, request["filter"], out)


def draw_evolution(request: dict[str, Any], out: Path) -> None:
    """The GIF of a layer's kernels over every epoch."""
    history = [load_kernels(path)[request["layer"]] for path in request["sources"]]
    evolution.draw_evolution(
        request["layer"], request["stage"], history, out, filter_index=request["filter"], title=request["title"]
    )


def draw_confusion(request: dict[str, Any], out: Path) -> None:
    charts.draw_confusion(request["matrix"], request["classes"], request["epoch"], out, request["title"])


@functools.lru_cache(maxsize=2)
def test_set(dataset: str, data_dir: str, train_samples: int | None, test_samples: int | None, seed: int) -> Dataset:
    """The job's test images, as it drew them (the same files, subset and seed)."""
    return load_dataset(dataset, Path(data_dir), train_samples, test_samples, seed)


def draw_mistakes(request: dict[str, Any], out: Path) -> None:
    """The test images one epoch got wrong, read again from the job's dataset."""
    spec = request["spec"]
    data = test_set(spec["dataset"], request["data_dir"], spec["train_samples"], spec["test_samples"], spec["seed"])
    indices = np.asarray(request["indices"], dtype=np.int64)
    mistakes.draw_mistakes(
        data.test_images[indices],
        data.test_labels[indices].tolist(),
        request["predicted"],
        request["classes"],
        request["epoch"],
        out,
        title=request["title"],
        total=request["count"],
    )


def draw_compare(request: dict[str, Any], out: Path) -> None:
    """One metric of several jobs, a line per job (see `service.api.compare`)."""
    compare.draw_compare(request["series"], request["metric"], out, shared=request.get("shared", ""))


DRAW = {
    "kernels": draw_kernels,
    "evolution": draw_evolution,
    "confusion": draw_confusion,
    "mistakes": draw_mistakes,
    "compare": draw_compare,
}


def answer(line: str) -> dict[str, Any]:
    """Carry out one request; every failure is an answer, never the end of the process."""
    request: dict[str, Any] = {}
    try:
        request = json.loads(line)
        out = Path(request["out"])
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp{out.suffix}")
        try:
            DRAW[request["kind"]](request, tmp)
            os.replace(tmp, out)  # the API serves whatever is at `out`: only ever a whole file
        finally:
            tmp.unlink(missing_ok=True)
        return {"id": request.get("id"), "ok": True}
    except Exception as exc:
        return {"id": request.get("id"), "error": f"{type(exc).__name__}: {exc}"}


def main() -> None:
    for line in sys.stdin:
        print(json.dumps(answer(line)), flush=True)


if __name__ == "__main__":
    main()
