"""CIFAR-10 from its official python batches, a learnable synthetic stand-in, and seeded subsets of either."""

from __future__ import annotations

import importlib
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from worker import synthetic
from worker.synthetic import NUM_CLASSES, SIDE

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
FOLDER_NAME = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
BATCH_FILES = (*TRAIN_BATCHES, "test_batch", "batches.meta")
# CIFAR-10's sizes; the synthetic set defaults to the same so a job behaves alike on either.
FULL_TRAIN, FULL_TEST = 50_000, 10_000


class DataError(Exception):
    """The dataset cannot be provided; the message is shown to users as the job's error."""


@dataclass(frozen=True, eq=False)  # eq=False: comparing numpy arrays with == has no single truth value
class Dataset:
    """Images as uint8 (N, 3, 32, 32) in C order, labels as int64 (N,), and the 10 class names."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: tuple[str, ...]


def load_dataset(name: str, data_dir: Path, train_samples: int | None, test_samples: int | None, seed: int) -> Dataset:
    """The dataset a job names ("cifar10" or "synthetic"), cut to the requested sizes (None means all)."""
    if name == "cifar10":
        return subset(load_cifar10(data_dir), train_samples, test_samples, seed)
    if name == "synthetic":
        # Generate just what is asked for: drawing 60,000 images to keep a few would waste the job's time.
        train = FULL_TRAIN if train_samples is None else _check_count("train_samples", train_samples, None)
        test = FULL_TEST if test_samples is None else _check_count("test_samples", test_samples, None)
        return make_synthetic(train, test, seed)
    raise DataError(f"unknown dataset {name!r}; expected 'cifar10' or 'synthetic'")


def subset(ds: Dataset, train_samples: int | None, test_samples: int | None, seed: int) -> Dataset:
    """A seeded random subset, drawn without replacement and independently for train and test."""
    train_rng, test_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    train_x, train_y = _pick(ds.train_images, ds.train_labels, train_samples, train_rng, "train_samples")
    test_x, test_y = _pick(ds.test_images, ds.test_labels, test_samples, test_rng, "test_samples")
    return Dataset(train_x, train_y, test_x, test_y, ds.classes)


def _pick(
    images: np.ndarray, labels: np.ndarray, count: int | None, rng: np.random.Generator, what: str
) -> tuple[np.ndarray, np.ndarray]:
    if count is None:
        return images, labels
    _check_count(what, count, len(labels))
    # Sorted, so the subset keeps the source order and the gather reads memory front to back.
    idx = np.sort(rng.choice(len(labels), size=count, replace=False))
    return images[idx], labels[idx]


def _check_count(what: str, count: int, available: int | None) -> int:
    if count < 1:
        raise DataError(f"{what} must be at least 1, got {count}")
    if available is not None and count > available:
        raise DataError(f"{what}={count} is more than the {available} images available")
    return count


# --- CIFAR-10 -------------------------------------------------------------------------------------------


def load_cifar10(data_dir: Path, download: bool = True, md5: str = CIFAR10_MD5) -> Dataset:
    """CIFAR-10 from `data_dir`, extracting the archive there or downloading it first when needed."""
    data_dir = Path(data_dir).expanduser().resolve()
    try:
        if not all((data_dir / FOLDER_NAME / name).is_file() for name in BATCH_FILES):
            _fetch(data_dir, download, md5)
        return _read_folder(data_dir / FOLDER_NAME)
    except DataError as exc:
        archive, folder = data_dir / ARCHIVE_NAME, data_dir / FOLDER_NAME
        raise DataError(
            f"CIFAR-10 could not be loaded: {exc}. Download {CIFAR10_URL} and put it at {archive} "
            f"(removing any damaged {folder}); it is verified and extracted on the next run."
        ) from exc


def _fetch(data_dir: Path, download: bool, md5: str) -> None:
    """Make `data_dir/cifar-10-batches-py` complete from the archive, downloading that if allowed."""
    from torchvision.datasets.utils import check_integrity, download_and_extract_archive, extract_archive

    archive = data_dir / ARCHIVE_NAME
    if archive.is_file():
        if not check_integrity(str(archive), md5):
            raise DataError(f"{archive} does not have the expected md5 {md5} (a partial or different file)")
        # torchvision raises whatever tarfile, gzip or the OS raise; none of that should reach the user raw.
        try:
            extract_archive(str(archive), str(data_dir))
        except Exception as exc:
            raise DataError(f"extracting {archive} failed ({_short(exc)})") from exc
    elif download:
        try:
            download_and_extract_archive(CIFAR10_URL, str(data_dir), filename=ARCHIVE_NAME, md5=md5)
        except Exception as exc:
            raise DataError(f"downloading failed ({_short(exc)})") from exc
    else:
        raise DataError(f"{data_dir / FOLDER_NAME} is missing or incomplete, and downloading is off")
    missing = [name for name in BATCH_FILES if not (data_dir / FOLDER_NAME / name).is_file()]
    if missing:
        raise DataError(f"the archive did not provide {FOLDER_NAME}/{', '.join(missing)}")


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 200 else text[:197] + "..."  # 200: enough for a cause, short for a status line


def _read_folder(folder: Path) -> Dataset:
    meta = _unpickle(folder / "batches.meta")
    names = meta.get("label_names")
    if not isinstance(names, list) or len(names) != NUM_CLASSES:
        raise DataError(f"{folder / 'batches.meta'} has no list of {NUM_CLASSES} label_names")
    train = [_read_batch(folder / name) for name in TRAIN_BATCHES]
    test_x, test_y = _read_batch(folder / "test_batch")
    return Dataset(
        train_images=np.concatenate([x for x, _ in train]),
        train_labels=np.concatenate([y for _, y in train]),
        test_images=test_x,
        test_labels=test_y,
        classes=tuple(_text(n) for n in names),
    )


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * SIDE**2:
        raise DataError(f"{path} has no uint8 'data' array of shape (N, {3 * SIDE**2})")
    try:
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path} has non-integer labels") from exc
    if y.shape != (len(data),):
        raise DataError(f"{path} has {y.size} labels for {len(data)} images")
    if y.size and (y.min() < 0 or y.max() >= NUM_CLASSES):
        raise DataError(f"{path} has labels outside 0..{NUM_CLASSES - 1}")
    return np.ascontiguousarray(data.reshape(-1, 3, SIDE, SIDE)), y


def _unpickle(path: Path) -> dict[str, Any]:
    """A CIFAR-10 pickle as a dict with str keys, however its strings were pickled."""
    # A damaged pickle can raise almost anything (EOFError, struct.error, ValueError...); all mean "corrupt".
    try:
        with path.open("rb") as f:
            # latin1 turns Python 2 str into str and keeps every byte, which numpy needs for the raw pixels.
            obj = _BatchUnpickler(f, encoding="latin1").load()
    except Exception as exc:
        raise DataError(f"{path} is unreadable ({_short(exc)})") from exc
    if not isinstance(obj, dict):
        raise DataError(f"{path} does not hold a dict")
    return {_text(k): v for k, v in obj.items()}


def _text(value: object) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def _array_reconstruct() -> Any:
    try:
        return importlib.import_module("numpy._core.multiarray")._reconstruct  # numpy >= 2
    except ImportError:
        return importlib.import_module("numpy.core.multiarray")._reconstruct  # numpy 1.x


class _BatchUnpickler(pickle.Unpickler):
    """Resolves only the globals a CIFAR-10 batch needs, so a stray pickle cannot run arbitrary code."""

    def find_class(self, module: str, name: str) -> Any:
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return _array_reconstruct()  # the files name numpy's Python 2 era module path
        if (module, name) in {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"unexpected object {module}.{name}")


# --- synthetic ------------------------------------------------------------------------------------------


def make_synthetic(train_size: int, test_size: int, seed: int) -> Dataset:
    """Procedural CIFAR-shaped images: each class a colour and a pattern, jittered and noisy per image."""
    train_rng, test_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    train_x, train_y = synthetic.draw(train_size, train_rng)
    test_x, test_y = synthetic.draw(test_size, test_rng)
    return Dataset(train_x, train_y, test_x, test_y, synthetic.CLASS_NAMES)
