"""`python -m worker.pictures.server`: draws, on request, the pictures of a job's history that the API serves.

The API never loads numpy or matplotlib; it keeps one of these processes and sends it one `DrawOrder`
(`service.contracts`) a line on stdin: the picture, naming the files to read (the numbers each epoch left, see
`worker.pictures.epoch`), and the PNG or GIF to write. Each line is validated here with the same model before anything
is drawn; the answer is one `DrawAnswer` a line on stdout, whose `error` names the field at fault when the order was
not valid. The pictures are the same functions the worker draws its latest pictures with.
"""

import functools
import sys
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from service.contracts import (
    DRAW_ORDER,
    CompareDraw,
    ConfusionDraw,
    DrawAnswer,
    DrawRequest,
    EvolutionDraw,
    KernelsDraw,
    MistakesDraw,
    problems,
)
from worker.data import Dataset, load_dataset
from worker.pictures import compare, confusion, evolution, kernels, mistakes


def load_kernels(path: str) -> dict[str, np.ndarray]:
    """The drawn kernels' numbers an epoch left (`worker.pictures.epoch.save_kernels`), as float32."""
    with np.load(path) as f:
        return {layer: f[layer].astype(np.float32) for layer in ("conv1", "conv2")}


def draw_kernels(request: KernelsDraw, out: Path) -> None:
    """One kernel grid at one epoch: `trained` (the weights then) or `diff` (their change since epoch 0)."""
    weights = load_kernels(request.sources[-1])[request.layer]
    stage: str = request.stage
    if stage == "diff":
        weights = weights - load_kernels(request.sources[0])[request.layer]
    elif request.epoch == 0:
        stage = "initial"
    if request.layer == "conv1":
        kernels.draw_conv1(weights, stage, request.epoch, out)
    else:
        kernels.draw_conv2(weights, stage, request.epoch, request.filter, out)


def draw_evolution(request: EvolutionDraw, out: Path) -> None:
    """The GIF of a layer's kernels over every epoch."""
    history = [load_kernels(path)[request.layer] for path in request.sources]
    evolution.draw_evolution(
        request.layer, request.stage, history, out, filter_index=request.filter, title=request.title
    )


def draw_confusion(request: ConfusionDraw, out: Path) -> None:
    """The test set's confusion matrix after one epoch."""
    confusion.draw_confusion(request.matrix, request.classes, request.epoch, out, request.title)


@functools.lru_cache(maxsize=2)
def test_set(dataset: str, data_dir: str, train_samples: int | None, test_samples: int | None, seed: int) -> Dataset:
    """The job's test images, as it drew them (the same files, subset and seed)."""
    return load_dataset(dataset, Path(data_dir), train_samples, test_samples, seed)


def draw_mistakes(request: MistakesDraw, out: Path) -> None:
    """The test images one epoch got wrong, read again from the job's dataset."""
    spec = request.spec
    data = test_set(spec.dataset, request.data_dir, spec.train_samples, spec.test_samples, spec.seed)
    indices = np.asarray(request.mistakes.indices, dtype=np.int64)
    mistakes.draw_mistakes(
        data.test_images[indices],
        data.test_labels[indices].tolist(),
        request.mistakes.predicted,
        request.classes,
        request.epoch,
        out,
        title=request.title,
        total=request.mistakes.count,
    )


def draw_compare(request: CompareDraw, out: Path) -> None:
    """One metric of several jobs, a line per job (see `service.api.compare`)."""
    compare.draw_compare(request.series, request.metric, out, shared=request.shared)


def draw(picture: DrawRequest, out: Path) -> None:
    """Draw `picture` into `out` (each drawing writes its file whole: the API serves whatever is there)."""
    match picture:
        case KernelsDraw():
            draw_kernels(picture, out)
        case EvolutionDraw():
            draw_evolution(picture, out)
        case ConfusionDraw():
            draw_confusion(picture, out)
        case MistakesDraw():
            draw_mistakes(picture, out)
        case CompareDraw():
            draw_compare(picture, out)


def answer(line: str) -> DrawAnswer:
    """Carry out one order; every failure is an answer, never the end of the process."""
    try:
        order = DRAW_ORDER.validate_json(line)
    except ValidationError as exc:
        return DrawAnswer(error=f"invalid order: {problems(exc)}")
    try:
        draw(order.picture, Path(order.out))
    except FileNotFoundError as exc:
        return DrawAnswer(error=f"{type(exc).__name__}: {exc}", missing=True)
    except Exception as exc:
        return DrawAnswer(error=f"{type(exc).__name__}: {exc}")
    return DrawAnswer()


def main() -> None:
    for line in sys.stdin:
        print(answer(line).model_dump_json(), flush=True)


if __name__ == "__main__":
    main()
