"""`python -m bench.files`: each of an epoch's files timed on its own, as the worker writes them."""

from pathlib import Path

import pytest

from bench.files import measure


@pytest.mark.slow
def test_every_file_of_an_epoch_is_timed_and_the_checkpoint_is_written_whole(tmp_path: Path) -> None:
    rows = dict(measure(2, tmp_path))
    pictures = ["confusion.png", "mistakes.png", "weight-change.png", "curves.png", "kernels/conv1/trained.png"]
    for name in [*pictures, "metrics.csv", "history/kernels/e<epoch>.npz"]:
        assert name in rows, sorted(rows)
    assert all(seconds > 0 for seconds in rows.values())
    together = rows["**the pictures together**"]
    assert together >= max(rows[name] for name in pictures)  # the sum of its parts, never less than one of them
    assert rows["**checkpoint saved** (atomic, fsynced)"] > 0
    # What was timed was really written: a full AlexNet with Adam's two moments, and its weights alone.
    checkpoint, weights = (tmp_path / "checkpoint.pt").stat().st_size, (tmp_path / "weights.pt").stat().st_size
    assert checkpoint > 2.9 * weights > 2.9 * 220e6
    assert (tmp_path / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
