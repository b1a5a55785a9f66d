"""What an epoch measures on the test set: the mean loss, the accuracy, the confusion matrix and the first
misclassified images, computed on the training device with one sync for all of them."""

from dataclasses import dataclass

import torch
from torch import nn

from service.contracts import Mistakes
from worker.batches import DeviceImages
from worker.measures import confusion_counts
from worker.model import NUM_CLASSES, lecture_loss
from worker.tuning import Tuning, use_cudnn_benchmark

# Misclassified test images kept per epoch: an 8×8 grid of them is what a picture can show.
MAX_MISTAKES = 64


@dataclass(frozen=True)
class Evaluation:
    """The test set's mean loss, accuracy (0–1), confusion matrix and first mistakes."""

    loss: float
    accuracy: float
    confusion: list[list[int]]
    mistakes: Mistakes


@torch.inference_mode()
def evaluate(
    model: nn.Module, images: DeviceImages, labels: torch.Tensor, bf16: bool, tuning: Tuning, train_batch: int
) -> Evaluation:
    """Mean test loss, accuracy (0–1) and the confusion matrix over the whole test set, with one sync.

    `model` may be the compiled wrapper; `train_batch`, the training batch size, is for cuDNN's choices."""
    model.eval()
    device = labels.device
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    confusion = torch.zeros(NUM_CLASSES * NUM_CLASSES, device=device, dtype=torch.int64)
    predicted = torch.empty(len(images), device=device, dtype=torch.int64)
    for start in range(0, len(images), tuning.eval_batch):
        part = slice(start, start + tuning.eval_batch)
        x, y = images.batch(part), labels[part]
        use_cudnn_benchmark(device, tuning, len(y), train_batch)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss_sum += lecture_loss(logits, y, reduction="sum").double()
        predicted[part] = logits.argmax(dim=1)
        confusion += confusion_counts(y, predicted[part], NUM_CLASSES)
    n = max(1, len(images))
    counts = confusion.view(NUM_CLASSES, NUM_CLASSES)
    wrong = (predicted != labels).nonzero().flatten()  # the one sync: everything below is already computed
    loss, hits, matrix = loss_sum.item(), int(counts.diagonal().sum().item()), counts.tolist()
    shown = wrong[:MAX_MISTAKES]
    mistakes = Mistakes(count=len(wrong), indices=shown.tolist(), predicted=predicted[shown].tolist())
    return Evaluation(loss=loss / n, accuracy=hits / n, confusion=matrix, mistakes=mistakes)
