"""Writes small CIFAR-10 folders and archives byte-compatible with the official Python 2 pickles."""

from __future__ import annotations

import pickle
import shutil
import struct
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

FOLDER_NAME = "cifar-10-batches-py"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
LABEL_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def make_batches(train_per_batch: int = 100, test_size: int = 100, seed: int = 0) -> dict[str, Any]:
    """The (data, labels) of every batch `write_cifar10` writes for these arguments, keyed by file name."""
    rng = np.random.default_rng(seed)
    # A colour per class plus noise: enough for a model to learn, and every pixel value checkable.
    palette = rng.integers(0, 200, (10, 3))
    batches: dict[str, Any] = {}
    for name, n in [*((b, train_per_batch) for b in TRAIN_BATCHES), ("test_batch", test_size)]:
        labels = rng.integers(0, 10, n)
        pixels = palette[labels][:, :, None] + rng.integers(0, 56, (n, 3, 1024))
        # Official layout: one row per image, 1024 red then 1024 green then 1024 blue bytes.
        batches[name] = (pixels.reshape(n, 3072).astype(np.uint8), [int(v) for v in labels])
    return batches


def write_cifar10(
    root: Path, train_per_batch: int = 100, test_size: int = 100, seed: int = 0, archive: bool = False
) -> Path:
    """Write `root/cifar-10-batches-py/`, or with `archive` only `root/cifar-10-python.tar.gz`; return it."""
    folder = Path(root) / FOLDER_NAME
    folder.mkdir(parents=True, exist_ok=True)
    for name, (data, labels) in make_batches(train_per_batch, test_size, seed).items():
        batch = {
            b"batch_label": f"{name} of 5".encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [f"image_{i:05d}.png".encode() for i in range(len(labels))],
        }
        write_py2_pickle(folder / name, batch)
    meta = {
        b"num_cases_per_batch": train_per_batch,
        b"label_names": [n.encode() for n in LABEL_NAMES],
        b"num_vis": 3072,
    }
    write_py2_pickle(folder / "batches.meta", meta)
    if not archive:
        return folder
    path = Path(root) / ARCHIVE_NAME
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname=FOLDER_NAME)
    shutil.rmtree(folder)
    return path


def write_py2_pickle(path: Path, obj: Any) -> None:
    """Pickle `obj` as Python 2's cPickle with numpy 1.x did: bytes become Py2 `str`, arrays raw buffers."""
    with path.open("wb") as f:
        _Py2Pickler(f, protocol=2).dump(obj)


def _save_py2_str(pickler: _Py2Pickler, obj: bytes) -> None:
    # Python 2's str opcodes; Python 3 would write bytes as _codecs.encode(...) at protocol 2.
    if len(obj) < 256:
        pickler.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
    else:
        pickler.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
    pickler.memoize(obj)


_RECONSTRUCT = np.empty(0).__reduce__()[0]  # numpy's array-unpickling function, wherever it lives now


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler, whose dispatch table can be extended
    dispatch = pickle._Pickler.dispatch.copy()
    dispatch[bytes] = _save_py2_str

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            # numpy 1.x's ndarray.__reduce__: (version, shape, dtype, is_fortran, raw bytes as a Py2 str).
            data = np.ascontiguousarray(obj)
            return _RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, data.shape, data.dtype, False, data.tobytes())
        if isinstance(obj, np.dtype):
            assert obj == np.uint8, "only the uint8 pixels of CIFAR-10 are needed"
            return np.dtype, (b"u1", 0, 1), (3, b"|", None, None, None, -1, -1, 0)
        return NotImplemented

    def save_global(self, obj: Any, name: Any = None) -> None:
        if obj is _RECONSTRUCT:
            # The module path numpy had when CIFAR-10 was pickled; numpy 2 still resolves it.
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
        else:
            super().save_global(obj, name)
