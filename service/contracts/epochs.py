"""An epoch's record: what the worker fills, `service.records` stores and the API reads back."""

from pydantic import (
    Field,
    model_validator,
)

from service.contracts.base import Contract

# ---------------------------------------------------------------- an epoch's record


class WeightChange(Contract):
    """How far one layer's weights have moved."""

    from_initial: float = Field(description="‖W_t − W_0‖ / ‖W_0‖: how far the layer has moved from its initialisation.")
    from_previous: float = Field(description="‖W_t − W_{t−1}‖ / ‖W_{t−1}‖: how far it moved in this epoch.")


class Mistakes(Contract):
    """The first misclassified test images of an epoch (by index in the job's test set), and how many there were."""

    count: int = Field(0, ge=0)
    indices: list[int] = []
    predicted: list[int] = Field([], description="The class predicted for each of `indices`, by index in `classes`.")

    @model_validator(mode="after")
    def _paired(self) -> "Mistakes":
        if len(self.indices) != len(self.predicted):
            raise ValueError(f"{len(self.indices)} indices but {len(self.predicted)} predicted classes")
        return self


class EpochScalars(Contract):
    """One number each: what a table row, a line of metrics.csv and an epoch of `GET /jobs/{id}/metrics` hold. A new
    per-epoch number is a new field here: stored (in `details`, unless given a column), written to metrics.csv and
    shown by the API without another edit."""

    epoch: int = Field(ge=1)
    train_loss: float = Field(description="Mean training loss over the epoch (NLL).")
    test_loss: float
    test_accuracy: float = Field(description="0–1.")
    seconds: float = Field(description="Training and evaluation.")
    images_per_second: float = Field(description="Training images per second.")


# The scalars' names, in order: metrics.csv's first columns.
EPOCH_SCALARS = tuple(EpochScalars.model_fields)


class EpochRecord(EpochScalars):
    """What one epoch measured: the scalars, and the measurements too big for a column of their own."""

    # Every training step's loss, in order (the epoch's share of the per-step curve).
    step_losses: list[float] = []
    # Test-set confusion matrix: confusion[true][predicted] counts, in the order of `classes`.
    confusion: list[list[int]] = []
    classes: list[str] = []
    # For each weight layer (torchvision's names: features.0 is conv1, classifier.6 the last).
    weight_change: dict[str, WeightChange] = {}
    mistakes: Mistakes = Mistakes()

    def scalars(self) -> dict[str, float]:
        """The scalars by name (`epoch` among them)."""
        return self.model_dump(include=set(EPOCH_SCALARS))

    def per_class_accuracy(self) -> dict[str, float] | None:
        """Each class's share of its test images predicted right (None without a matrix that fits the classes)."""
        if not self.confusion or len(self.confusion) != len(self.classes):
            return None
        return {
            name: (row[i] / total if (total := sum(row)) else 0.0)
            for i, (name, row) in enumerate(zip(self.classes, self.confusion, strict=True))
        }
