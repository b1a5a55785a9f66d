"""Pictures and checkpoints are written whole (worker/atomic.py): a reader sees the old file or the new one, and a
failed write leaves no temporary file behind."""

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from tests.test_curves import THREE_EPOCHS
from worker import checkpoint
from worker.atomic import atomic_write
from worker.pictures import charts, evolution, kernels


def test_writes_create_folders_and_leave_no_temp_files(tmp_path: Path) -> None:
    folder = tmp_path / "jobs" / "7"
    charts.draw_curves(THREE_EPOCHS, folder / "curves.png")
    charts.draw_curves(THREE_EPOCHS[:2], folder / "curves.png")  # overwrite in place
    weights = np.random.default_rng(0).normal(0.0, 0.05, kernels.CONV1_SHAPE).astype(np.float32)
    kernels.draw_conv1(weights, "initial", 0, folder / "conv1_initial.png")
    assert sorted(p.name for p in folder.iterdir()) == ["conv1_initial.png", "curves.png"]


def test_a_failed_write_keeps_the_old_picture_and_removes_the_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "curves.png"
    charts.draw_curves(THREE_EPOCHS, path)
    before = path.read_bytes()

    def half_written(self: Figure, fname: Path, **kwargs: object) -> None:
        Path(fname).write_bytes(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", half_written)
    with pytest.raises(OSError, match="disk full"):
        charts.draw_curves(THREE_EPOCHS[:1], path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]


def test_a_failed_gif_keeps_the_old_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "conv2.gif"
    history = [np.full(kernels.CONV2_SHAPE, k, dtype=np.float32) for k in (0.1, 0.2)]
    evolution.draw_evolution("conv2", "trained", history, path)
    before = path.read_bytes()

    def half_written(self: Image.Image, fp: Path, *args: object, **kwargs: object) -> None:
        Path(fp).write_bytes(b"GIF89a half")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", half_written)
    with pytest.raises(OSError, match="disk full"):
        evolution.draw_evolution("conv2", "trained", history[:1], path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["conv2.gif"]


def test_a_checkpoint_that_fails_mid_write_leaves_the_previous_one_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "checkpoints" / "c.pt"
    checkpoint.save({"step": 1, "w": torch.ones(3)}, path)

    def cut_short(obj: object, f: object) -> None:
        f.write(b"PK\x03\x04 cut")  # type: ignore[attr-defined]
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    monkeypatch.setattr(torch, "save", cut_short)
    with pytest.raises(RuntimeError, match="file write failed"):
        checkpoint.save({"step": 2, "w": torch.zeros(3)}, path)
    assert checkpoint.load(path)["step"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["c.pt"]


def test_a_durable_write_is_in_place_when_the_block_ends(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b.txt"
    with atomic_write(path, durable=True) as tmp:
        tmp.write_text("whole")
        assert not path.exists(), "nothing is at the path until the write is complete"
    assert path.read_text() == "whole"
    assert [p.name for p in path.parent.iterdir()] == ["b.txt"]
