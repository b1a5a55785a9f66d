"""The learning curves (worker/pictures/charts.py): loss and accuracy per epoch and per step, readably."""

from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from service.spec import compact_number, run_title
from tests.pictures import assert_readable_png, record
from worker.pictures import charts

THREE_EPOCHS = [record(1, 1.95, 1.62, 0.41), record(2, 1.45, 1.31, 0.53), record(3, 1.18, 1.15, 0.60)]


def test_curves_with_three_epochs_show_loss_and_accuracy_panels(tmp_path: Path, drawn: list[Figure]) -> None:
    path = tmp_path / "curves.png"
    charts.draw_curves(THREE_EPOCHS, path, title="job 7")
    pixels = assert_readable_png(path)
    assert pixels.shape[:2] == (400, 1000)
    fig = drawn[0]
    assert fig.get_suptitle() == "job 7 — 3 epochs"
    loss_ax, acc_ax = fig.axes[:2]
    assert (loss_ax.get_title(), loss_ax.get_xlabel(), loss_ax.get_ylabel()) == (
        "Loss",
        "epoch",
        "loss (NLL, nats)",
    )
    assert [line.get_label() for line in loss_ax.get_lines()] == [
        "train loss (epoch mean)",
        "test loss",
        "chance (ln 10)",
    ]
    assert acc_ax.get_title() == "Test accuracy"
    assert acc_ax.get_ylim() == (0.0, 100.0)
    accuracy, chance = acc_ax.get_lines()
    assert list(np.asarray(accuracy.get_ydata())) == pytest.approx([41.0, 53.0, 60.0])
    assert chance.get_label() == "chance (10 %)"
    assert chance.get_linestyle() == "--"
    assert set(np.asarray(chance.get_ydata())) == {10.0}
    assert all(float(tick).is_integer() for tick in loss_ax.get_xticks())


def test_curves_with_one_epoch_show_the_single_point_on_an_integer_tick(tmp_path: Path, drawn: list[Figure]) -> None:
    path = tmp_path / "curves.png"
    charts.draw_curves(THREE_EPOCHS[:1], path)
    assert_readable_png(path)
    fig = drawn[0]
    assert fig.get_suptitle() == "AlexNet on CIFAR-10 — 1 epoch"
    for ax in fig.axes[:2]:
        low, high = ax.get_xlim()
        assert low < 1 < high
        assert [tick for tick in ax.get_xticks() if low <= tick <= high] == [1.0]
        assert ax.get_lines()[0].get_marker() == "o"


def test_curves_with_no_epochs_draw_empty_axes_with_a_note(tmp_path: Path, drawn: list[Figure]) -> None:
    path = tmp_path / "curves.png"
    charts.draw_curves([], path)
    assert_readable_png(path)
    fig = drawn[0]
    assert fig.get_suptitle() == "AlexNet on CIFAR-10 — 0 epochs"
    for ax in fig.axes[:2]:
        assert [text.get_text() for text in ax.texts] == ["no epoch finished yet"]
        # An accuracy line with no point once made the layout squeeze both panels into slivers at the edges.
        assert ax.get_position().width > 0.35


def test_curves_with_a_thousand_epochs_drop_the_markers(tmp_path: Path, drawn: list[Figure]) -> None:
    many = [record(i, 2.0 / i, 2.2 / i, 0.8 - 0.7 / i) for i in range(1, 1001)]
    path = tmp_path / "curves.png"
    charts.draw_curves(many, path)
    assert_readable_png(path)
    loss_ax = drawn[0].axes[0]
    assert {line.get_marker() for line in loss_ax.get_lines()} == {"None"}
    assert len(np.asarray(loss_ax.get_lines()[0].get_xdata())) == 1000


def test_curves_with_a_diverged_loss_leave_a_gap_instead_of_failing(tmp_path: Path, drawn: list[Figure]) -> None:
    epochs = [*THREE_EPOCHS, record(4, float("inf"), float("nan"), 0.1)]
    path = tmp_path / "curves.png"
    charts.draw_curves(epochs, path)
    assert_readable_png(path)
    loss_ax, acc_ax = drawn[0].axes[:2]
    train, test = (np.asarray(line.get_ydata(), dtype=np.float64) for line in loss_ax.get_lines()[:2])
    # The diverged epoch is a gap (NaN, which matplotlib leaves undrawn); the epochs before it are drawn as they were.
    assert np.isnan(train[3]) and np.isnan(test[3])
    assert train[:3].tolist() == [1.95, 1.45, 1.18]
    assert test[:3].tolist() == [1.62, 1.31, 1.15]
    # So the loss axis spans the finite losses, not up to infinity.
    assert np.isfinite(loss_ax.get_ylim()).all()
    assert loss_ax.get_ylim()[1] < 10
    accuracy = np.asarray(acc_ax.get_lines()[0].get_ydata(), dtype=np.float64)
    assert accuracy.tolist() == pytest.approx([41.0, 53.0, 60.0, 10.0])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("synthetic", "adam", 1e-4, 512, 64, "bf16"), "synthetic · Adam lr 1e-4 · batch 512 · 64 px · bf16"),
        (("cifar10", "sgd", 0.01, 128, 224, "fp32"), "CIFAR-10 · SGD lr 1e-2 · batch 128 · 224 px · fp32"),
    ],
)
def test_run_title_names_dataset_optimizer_rate_batch_size_and_precision(
    args: tuple[str, str, float, int, int, str], expected: str
) -> None:
    assert run_title(*args) == expected


@pytest.mark.parametrize(
    ("rate", "text"), [(1e-4, "1e-4"), (3e-4, "3e-4"), (0.01, "1e-2"), (2.5e-3, "2.5e-3"), (0.1, "1e-1"), (1.0, "1")]
)
def test_learning_rates_are_written_in_compact_exponent_form(rate: float, text: str) -> None:
    assert compact_number(rate) == text


def test_curves_title_says_which_epoch_of_how_many_until_the_last(tmp_path: Path, drawn: list[Figure]) -> None:
    charts.draw_curves(THREE_EPOCHS, tmp_path / "running.png", title="job 7", epochs_total=10)
    charts.draw_curves(THREE_EPOCHS, tmp_path / "done.png", title="job 7", epochs_total=3)
    assert [fig.get_suptitle() for fig in drawn] == ["job 7 — epoch 3 of 10", "job 7 — 3 epochs"]


def test_curves_loss_axis_starts_at_zero_so_a_flat_run_reads_flat(tmp_path: Path, drawn: list[Figure]) -> None:
    flat = [record(e, loss, loss - 0.0005, 0.1) for e, loss in enumerate([2.3020, 2.3008, 2.2997, 2.2985], start=1)]
    charts.draw_curves(flat, tmp_path / "curves.png")
    loss_ax = drawn[0].axes[0]
    low, high = loss_ax.get_ylim()
    assert low == 0.0
    # A 0.15 % change in the loss fills well under 1 % of the axis instead of all of it.
    assert (2.3020 - 2.2985) / (high - low) < 0.01
    chance = loss_ax.get_lines()[-1]
    assert chance.get_label() == "chance (ln 10)"
    assert chance.get_linestyle() == "--"
    assert np.asarray(chance.get_ydata()).tolist() == pytest.approx([np.log(10)] * 2)
    assert high > np.log(10)  # the reference line is inside the frame
    assert "chance (ln 10)" in [t.get_text() for t in loss_ax.get_legend().get_texts()]


def test_curves_draw_per_step_losses_as_a_thin_lighter_line_under_the_epoch_points(
    tmp_path: Path, drawn: list[Figure]
) -> None:
    # Four steps per epoch: step g sits at g / 4 epochs; one step diverged.
    losses = [2.31, 2.2, 2.1, 2.05, 1.9, float("inf"), 1.6, 1.5, 1.3, 1.2, 1.25, 1.1]
    steps = [((g + 1) / 4, loss) for g, loss in enumerate(losses)]
    charts.draw_curves(THREE_EPOCHS, tmp_path / "curves.png", steps=steps)
    loss_ax, acc_ax = drawn[0].axes[:2]
    by_label = {line.get_label(): line for line in loss_ax.get_lines()}
    per_step, per_epoch = by_label["train loss per step"], by_label["train loss (epoch mean)"]
    assert np.asarray(per_step.get_xdata()).tolist() == [s[0] for s in steps]
    y = np.asarray(per_step.get_ydata(), dtype=np.float64)
    assert np.isnan(y[5]), "a diverged step is a gap"
    assert np.delete(y, 5).tolist() == [loss for i, loss in enumerate(losses) if i != 5]
    assert per_step.get_linewidth() < per_epoch.get_linewidth()
    assert (per_step.get_alpha() or 1.0) < 1.0
    assert per_step.get_zorder() < per_epoch.get_zorder()
    assert per_step.get_color() == per_epoch.get_color()
    # The first step, a quarter into epoch 1, is inside the frame, and both panels share one epoch axis.
    assert loss_ax.get_xlim()[0] <= 0.25
    assert acc_ax.get_xlim() == loss_ax.get_xlim()
    assert loss_ax.get_ylim()[1] >= 2.31


def test_curves_show_steps_before_the_first_epoch_ends(tmp_path: Path, drawn: list[Figure]) -> None:
    path = tmp_path / "curves.png"
    charts.draw_curves([], path, title="job 7", steps=[(0.25, 2.31), (0.5, 2.2)], epochs_total=5)
    assert_readable_png(path)
    fig = drawn[0]
    assert fig.get_suptitle() == "job 7 — epoch 0 of 5"
    loss_ax = fig.axes[0]
    per_step = next(line for line in loss_ax.get_lines() if line.get_label() == "train loss per step")
    assert np.asarray(per_step.get_ydata()).tolist() == [2.31, 2.2]
    assert len(loss_ax.get_yticks()) > 0, "the steps need a loss scale"
