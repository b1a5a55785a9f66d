"""How far each layer's weights moved (worker/pictures/charts.py): from initialisation and per epoch, on log axes."""

from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from service.contracts import EpochRecord
from tests.pictures import assert_readable_png, record
from worker.measures import LAYER_NAMES
from worker.pictures import charts

LAYERS = list(LAYER_NAMES)


def weight_change_epochs(count: int, **changed: dict[str, float]) -> list[EpochRecord]:
    """Layer i moves 10^-(1 + i/3) of its size per epoch; from initialisation that grows with √epoch. `changed`:
    other values for some epochs' classifier.6 (`e2={"from_previous": 0.0}`)."""
    return [
        record(
            epoch,
            weight_change={
                layer: {"from_initial": 10 ** -(1 + i / 3) * epoch**0.5, "from_previous": 10 ** -(1 + i / 3) / epoch}
                | (changed.get(f"e{epoch}", {}) if layer == "classifier.6" else {})
                for i, layer in enumerate(LAYERS)
            },
        )
        for epoch in range(1, count + 1)
    ]


def test_weight_change_draws_one_line_per_layer_in_two_log_panels(tmp_path: Path, drawn: list[Figure]) -> None:
    epochs = weight_change_epochs(5)
    path = tmp_path / "weight_change.png"
    charts.draw_weight_change(epochs, path, title="job 7")
    assert_readable_png(path)
    fig = drawn[0]
    assert fig.get_suptitle() == "job 7 — relative weight change per layer"
    initial_ax, previous_ax = fig.axes
    assert "W_0" in initial_ax.get_title()
    assert "previous epoch" in previous_ax.get_title()
    expected_labels = [
        "conv1 (features.0)",
        "conv2 (features.3)",
        "conv3 (features.6)",
        "conv4 (features.8)",
        "conv5 (features.10)",
        "fc1 (classifier.1)",
        "fc2 (classifier.4)",
        "fc3 (classifier.6)",
    ]
    for ax, key in [(initial_ax, "from_initial"), (previous_ax, "from_previous")]:
        assert ax.get_yscale() == "log"
        assert ax.get_xlabel() == "epoch"
        assert "relative change" in ax.get_ylabel()
        lines = ax.get_lines()
        assert [line.get_label() for line in lines] == expected_labels
        for line, layer in zip(lines, LAYERS, strict=True):
            assert np.asarray(line.get_xdata()).tolist() == [1, 2, 3, 4, 5]
            expected = [getattr(e.weight_change[layer], key) for e in epochs]
            assert np.asarray(line.get_ydata()).tolist() == pytest.approx(expected)
        low, high = ax.get_xlim()
        assert [tick for tick in ax.get_xticks() if low <= tick <= high] == [1, 2, 3, 4, 5]
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == expected_labels
    # Fully connected layers are dashed so that eight lines can be told apart by more than colour.
    assert {line.get_linestyle() for line in initial_ax.get_lines()[:5]} == {"-"}
    assert {line.get_linestyle() for line in initial_ax.get_lines()[5:]} == {"--"}


def test_weight_change_leaves_a_gap_for_a_layer_that_did_not_move(tmp_path: Path, drawn: list[Figure]) -> None:
    epochs = weight_change_epochs(3, e2={"from_previous": 0.0}, e3={"from_previous": float("inf")})
    charts.draw_weight_change(epochs, tmp_path / "weight_change.png")
    fig = drawn[0]
    assert fig.get_suptitle() == "Relative weight change per layer"
    fc3 = fig.axes[1].get_lines()[-1]
    y = np.asarray(fc3.get_ydata(), dtype=np.float64)
    assert np.isfinite(y[0]) and np.isnan(y[1]) and np.isnan(y[2])
    assert np.isfinite(fig.axes[1].get_ylim()).all()


def test_weight_change_with_no_epochs_draws_empty_panels_with_a_note(tmp_path: Path, drawn: list[Figure]) -> None:
    path = tmp_path / "weight_change.png"
    charts.draw_weight_change([], path)
    assert_readable_png(path)
    for ax in drawn[0].axes:
        assert [text.get_text() for text in ax.texts] == ["no epoch finished yet"]
        assert len(ax.get_yticks()) == 0
        assert len(ax.get_yticks(minor=True)) == 0
