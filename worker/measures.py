"""What an epoch measures besides the loss: which classes the network confuses, and how far each layer moved.

Pure functions on tensors, computed on the training device; the caller syncs once per epoch for all of them.
"""

import torch
from torch import nn

# The 8 layers with weights: five convolutions, then three fully connected layers (torchvision's names).
WEIGHT_LAYERS = (
    "features.0",
    "features.3",
    "features.6",
    "features.8",
    "features.10",
    "classifier.1",
    "classifier.4",
    "classifier.6",
)
# torchvision's AlexNet names its layers by position; people know them as conv1…conv5 and fc1…fc3.
LAYER_NAMES = dict(zip(WEIGHT_LAYERS, ("conv1", "conv2", "conv3", "conv4", "conv5", "fc1", "fc2", "fc3"), strict=True))


def layer_weights(model: nn.Module) -> list[torch.Tensor]:
    """The weight tensors of WEIGHT_LAYERS (the parameters themselves, not copies)."""
    weights = []
    for name in WEIGHT_LAYERS:
        weight = model.get_submodule(name).weight
        assert isinstance(weight, torch.Tensor)
        weights.append(weight)
    return weights


def snapshot(weights: list[torch.Tensor]) -> list[torch.Tensor]:
    """Detached copies, to compare later weights against."""
    return [w.detach().clone() for w in weights]


@torch.no_grad()
def relative_change(now: list[torch.Tensor], reference: list[torch.Tensor]) -> torch.Tensor:
    """‖W − W_ref‖ / ‖W_ref‖ for each layer, as one tensor on the device (no sync)."""
    return torch.stack([(w.float() - r.float()).norm() / r.float().norm() for w, r in zip(now, reference, strict=True)])


def confusion_counts(labels: torch.Tensor, predicted: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The flattened num_classes × num_classes confusion matrix (row: true class, column: predicted), int64."""
    return torch.bincount(labels * num_classes + predicted, minlength=num_classes * num_classes)
