"""`python -m worker.inside.server`: looks inside trained networks for the API (`service.api.inside`).

One request a line on stdin, one answer a line on stdout, both `service.contracts` models. The most recently used
models and test sets stay loaded. The strongest images of every filter take one pass over the test images (20 s
for 1,000 at 224 px on 2 busy cores): the pass runs on a thread of its own, so that a request for it answers at
once with how far it has come, and other requests are answered meanwhile; its result is kept on disk, so it is
computed once per job's weights.
"""

import base64
import functools
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ValidationError
from torch import nn

from service.contracts import (
    INSIDE_REQUEST,
    ActivationsRequest,
    DatasetRef,
    Drawn,
    ExplainRequest,
    Failure,
    FilterRequest,
    FiltersAnswer,
    FiltersRequest,
    LabelsAnswer,
    LabelsRequest,
    ModelRef,
    OverviewRequest,
)
from worker.data import Dataset, load_dataset
from worker.inside import answers
from worker.inside.activations import receptive_field
from worker.inside.filters import FilterIndex, build_index, load_index, save_index
from worker.model import build_model
from worker.synthetic import SIDE

# Two models of 228 MB stay loaded: a job's weights and, say, another job's to compare.
MODELS_KEPT = 2
# The strongest images of a filter are looked for among the first 1,000 of a job's test images (its seeded subset, in
# the dataset's order, which mixes the classes): 20 s on 2 CPU cores at 224 px, where all 10,000 would take ~4 min.
FILTER_IMAGES = 1_000
# One thread, as predictions use: the cores are usually training. On 2 busy cores a second thread made one image's
# activations and Grad-CAM take 0.6–1.2 s against a steady 0.4 s, and did not speed up the filter pass either.
THREADS = 1


class Models:
    """Trained networks by key, the least recently used dropped beyond MODELS_KEPT."""

    def __init__(self) -> None:
        self.loaded: OrderedDict[str, nn.Module] = OrderedDict()

    def get(self, ref: ModelRef) -> nn.Module:
        """The network `ref` names: `weights.pt`'s state_dict, or a checkpoint's, loaded once per key."""
        if ref.key in self.loaded:
            self.loaded.move_to_end(ref.key)
            return self.loaded[ref.key]
        state = torch.load(ref.path, map_location="cpu", weights_only=True)
        if "model" in state:  # a training checkpoint: the weights, the optimizer's state, the position, …
            state = state["model"]
        model = build_model(torch.device("meta"), seed=0)  # no memory and no random init: the trained tensors follow
        model.load_state_dict(state, assign=True)
        model.eval().requires_grad_(False)  # gradients are taken with respect to activations and inputs only
        self.loaded[ref.key] = model.to(memory_format=torch.channels_last)
        while len(self.loaded) > MODELS_KEPT:
            self.loaded.popitem(last=False)
        return self.loaded[ref.key]


@functools.lru_cache(maxsize=2)
def _dataset(data: DatasetRef) -> Dataset:
    return load_dataset(data.dataset, Path(data.data_dir), data.train_samples, data.test_samples, data.seed)


@functools.lru_cache(maxsize=4)
def _index(path: str, mtime: float) -> FilterIndex:
    return load_index(Path(path))


class Pass:
    """One filter pass in progress on its own thread."""

    def __init__(self, total: int) -> None:
        self.done, self.total, self.began = 0, total, time.monotonic()
        self.error: str | None = None
        self.seconds: float | None = None

    def status(self) -> FiltersAnswer:
        """How far the pass has come, as the API reports it."""
        failed = self.error is not None
        seconds = self.seconds if self.seconds is not None else time.monotonic() - self.began
        state = "failed" if failed else "computing"
        return FiltersAnswer(state=state, done=self.done, total=self.total, seconds=round(seconds, 2), error=self.error)


class Server:
    """Answers one request at a time; filter passes run beside it."""

    def __init__(self) -> None:
        self.models = Models()
        self.passes: dict[str, Pass] = {}

    def answer(self, line: str) -> BaseModel:
        """Carry out one request; every failure is an answer, never the end of the process."""
        try:
            request = INSIDE_REQUEST.validate_json(line)
            if isinstance(request, ActivationsRequest | ExplainRequest):
                return self.look(request)
            if isinstance(request, FilterRequest | OverviewRequest):
                return self.filter(request)
            if isinstance(request, LabelsRequest):
                data = _dataset(request.data)
                return LabelsAnswer(classes=list(data.classes), labels=data.test_labels.tolist())
            return self.filters(request)
        except ValidationError as exc:
            return Failure(invalid=False, message=f"a malformed request: {exc}")
        except answers.Unknown as exc:
            return Failure(invalid=True, message=str(exc))
        except Exception as exc:
            return Failure(invalid=False, message=f"{type(exc).__name__}: {exc}")

    def look(self, request: ActivationsRequest | ExplainRequest) -> BaseModel:
        """One image's activations, or its Grad-CAM and saliency: the numbers, and the picture when asked for."""
        data = _dataset(request.data)
        image, label = self._image(request, data)
        classes = request.classes or list(data.classes)
        seen = {
            "used": request.model.used,
            "image_size": request.model.image_size,
            "test_index": request.image.test_index,
            "label": None if label is None else classes[label],
        }
        model = self.models.get(request.model)
        out = Path(request.out) if request.out else None
        what = "your image" if label is None else f"test image {request.image.test_index} ({classes[label]})"
        title = f"{request.title} · {what}" if request.title else what
        if isinstance(request, ExplainRequest):
            return answers.explanation(model, image, seen, classes, request.class_name, out, title)
        return answers.activations(model, image, seen, classes, out, title)

    @staticmethod
    def _image(request: ActivationsRequest | ExplainRequest, data: Dataset) -> tuple[np.ndarray, int | None]:
        if request.image.pixels is not None:
            pixels = np.frombuffer(base64.b64decode(request.image.pixels), dtype=np.uint8)
            return pixels.reshape(SIDE, SIDE, 3).transpose(2, 0, 1), None  # CIFAR's layout, as training holds it
        k = request.image.test_index
        assert k is not None
        if k >= len(data.test_images):
            raise answers.Unknown(f"the job has {len(data.test_images)} test images (0–{len(data.test_images) - 1})")
        return data.test_images[k], int(data.test_labels[k])

    def filters(self, request: FiltersRequest) -> FiltersAnswer:
        """The pass's state, starting it when it has neither run nor begun."""
        path = Path(request.index)
        if path.is_file():
            index = _index(str(path), path.stat().st_mtime)
            running = self.passes.get(request.index)
            seconds = running.seconds if running and running.seconds is not None else 0.0
            return FiltersAnswer(state="ready", done=index.images, total=index.images, seconds=seconds)
        running = self.passes.get(request.index)
        # Not begun, failed, or done but its file gone since (the API's cache keeps so many): (again) from the start.
        if running is None or running.error is not None or running.seconds is not None:
            self._start(request, path)
        return self.passes[request.index].status()

    def _start(self, request: FiltersRequest, path: Path) -> None:
        images = _dataset(request.data).test_images[:FILTER_IMAGES]
        model = self.models.get(request.model)
        running = self.passes[request.index] = Pass(len(images))

        def progress(done: int, total: int) -> None:
            running.done = done

        def work() -> None:
            try:
                save_index(build_index(model, images, request.model.image_size, progress), path)
                running.seconds = round(time.monotonic() - running.began, 2)
            except Exception as exc:
                running.error = f"{type(exc).__name__}: {exc}"

        threading.Thread(target=work, name=f"filters {path.name}", daemon=True).start()

    def filter(self, request: FilterRequest | OverviewRequest) -> BaseModel:
        """A filter's strongest images (or a layer's overview picture) once the pass is done; its progress before."""
        status = self.filters(request)
        if status.state != "ready":
            return status
        path = Path(request.index)
        index = _index(str(path), path.stat().st_mtime)
        data = _dataset(request.data)
        model = self.models.get(request.model)
        size = request.model.image_size
        if isinstance(request, OverviewRequest):
            answers.draw_overview(
                model, index, request.layer, request.count, data.test_images, size, request.title, Path(request.out)
            )
            return Drawn()
        classes = request.classes or list(data.classes)
        test = (data.test_images, data.test_labels)
        found = answers.strongest_images(
            model, index, request.layer, request.channel, test, classes, request.model.used, size
        )
        if request.out:
            field = receptive_field(model, request.layer)
            answers.draw_filter(found, data.test_images, field.size, request.title, Path(request.out))
        return found


def main() -> None:
    torch.set_num_threads(THREADS)
    server = Server()
    for line in sys.stdin:
        print(server.answer(line).model_dump_json(by_alias=True), flush=True)


if __name__ == "__main__":
    main()
