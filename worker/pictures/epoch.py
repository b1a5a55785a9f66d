"""What a job draws and keeps as it trains: the pictures of its latest state, and the numbers behind its history.

After each epoch: the learning curves (per epoch and per step), the kernel grids (trained, and the change since
initialisation), the confusion matrix, how far each layer moved, the test images it got wrong, metrics.csv,
and the drawn kernels' numbers for that epoch (`history/kernels/eNNNN.npz`, epoch 0 being the initialisation),
from which the API draws any epoch's grids and the evolution GIFs. Runs on the publisher's thread.
"""

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from service import artifacts
from service.artifacts import Stage
from service.contracts import EpochRecord
from service.spec import JobSpec, run_title
from worker.data import Dataset
from worker.model import Kernels
from worker.pictures import charts, confusion, kernels, mistakes
from worker.publish import ArtifactWriter


def save_kernels(k: Kernels, path: Path) -> None:
    """The drawn kernels' numbers, as float16 (enough for a picture; half the disk of float32)."""
    with open(path, "wb") as f:
        np.savez_compressed(f, conv1=k.conv1.astype(np.float16), conv2=k.conv2.astype(np.float16))


def step_points(rows: Sequence[EpochRecord]) -> list[tuple[float, float]]:
    """Each step's loss at its place in epochs: step i (from 1) of n in epoch e sits at e − 1 + i / n."""
    points = []
    for row in rows:
        losses = row.step_losses
        points += [(row.epoch - 1 + (i + 1) / len(losses), loss) for i, loss in enumerate(losses)]
    return points


class JobPictures:
    """Draws and publishes one job's pictures; `title` names the run in every chart."""

    def __init__(self, files: ArtifactWriter, spec: JobSpec, data: Dataset) -> None:
        self.files, self.spec, self.data = files, spec, data
        self.title = ""

    def start(self, precision: str, initial: Kernels) -> None:
        """Before the first step (or again on a resume): the initial grids and epoch 0's numbers."""
        s = self.spec
        self.title = run_title(s.dataset, s.optimizer, s.learning_rate, s.batch_size, s.image_size, precision)
        self._publish_all(
            [*self._kernels("initial", initial, 0), (artifacts.kernel_history(0), lambda p: save_kernels(initial, p))]
        )

    def epoch(self, rows: Sequence[EpochRecord], initial: Kernels, trained: Kernels) -> None:
        """After an epoch: `rows` are every epoch's records so far, the last one this epoch's.

        Each file is published on its own: one that fails does not cost the others (the first error is raised
        once all were tried).
        """
        last, total = rows[-1], self.spec.epochs
        epoch = last.epoch
        diff = Kernels(conv1=trained.conv1 - initial.conv1, conv2=trained.conv2 - initial.conv2)
        files: list[tuple[str, Callable[[Path], object]]] = [
            (artifacts.kernel_history(epoch), lambda p: save_kernels(trained, p)),
            (
                artifacts.CURVES,
                lambda p: charts.draw_curves(rows, p, self.title, steps=step_points(rows), epochs_total=total),
            ),
            (artifacts.METRICS_CSV, lambda p: p.write_text(artifacts.metrics_csv(rows))),
            *self._kernels("trained", trained, epoch),
            *self._kernels("diff", diff, epoch),
            (artifacts.WEIGHT_CHANGE, lambda p: charts.draw_weight_change(rows, p, self.title)),
        ]
        if last.classes:
            files += [
                (
                    artifacts.CONFUSION,
                    lambda p: confusion.draw_confusion(last.confusion, last.classes, epoch, p, self.title),
                ),
                (artifacts.MISTAKES, lambda p: self._mistakes(last, p)),
            ]
        self._publish_all(files)

    def _publish_all(self, files: list[tuple[str, Callable[[Path], object]]]) -> None:
        first: Exception | None = None
        for name, write in files:
            try:
                self.files.publish(name, write)
            except Exception as exc:
                first = first or exc
        if first is not None:
            raise first

    def _kernels(self, stage: Stage, k: Kernels, epoch: int) -> list[tuple[str, Callable[[Path], object]]]:
        f = self.spec.conv2_filter
        return [
            (artifacts.kernel_image("conv1", stage), lambda p: kernels.draw_conv1(k.conv1, stage, epoch, p)),
            (artifacts.kernel_image("conv2", stage), lambda p: kernels.draw_conv2(k.conv2, stage, epoch, f, p)),
        ]

    def _mistakes(self, record: EpochRecord, path: Path) -> None:
        wrong = record.mistakes
        indices = np.asarray(wrong.indices, dtype=np.int64)
        mistakes.draw_mistakes(
            self.data.test_images[indices],
            self.data.test_labels[indices].tolist(),
            wrong.predicted,
            record.classes,
            record.epoch,
            path,
            title=self.title,
            total=wrong.count,
        )
