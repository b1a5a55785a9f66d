"""CIFAR-10 loading (worker/data.py): from Python 2 pickles, from an archive checked by md5, and what it says when it
cannot."""

from __future__ import annotations

import hashlib
import io
import pickle
import pickletools
import urllib.error
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.cifar_files import LABEL_NAMES, make_batches, write_cifar10, write_py2_pickle
from worker.data import (
    ARCHIVE_NAME,
    CIFAR10_URL,
    FOLDER_NAME,
    DataError,
    Dataset,
    load_cifar10,
)


def _expected(train_per_batch: int, test_size: int, seed: int) -> tuple[np.ndarray, ...]:
    batches = make_batches(train_per_batch, test_size, seed)
    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    test_data, test_labels = batches["test_batch"]
    return (
        np.concatenate([d for d, _ in train]).reshape(-1, 3, 32, 32),
        np.concatenate([np.array(y) for _, y in train]),
        test_data.reshape(-1, 3, 32, 32),
        np.array(test_labels),
    )


def _assert_matches_written(ds: Dataset, train_per_batch: int, test_size: int, seed: int) -> None:
    train_x, train_y, test_x, test_y = _expected(train_per_batch, test_size, seed)
    assert ds.train_images.shape == (5 * train_per_batch, 3, 32, 32)
    assert ds.test_images.shape == (test_size, 3, 32, 32)
    assert ds.train_images.dtype == ds.test_images.dtype == np.uint8
    assert ds.train_labels.dtype == ds.test_labels.dtype == np.int64
    assert ds.train_images.flags.c_contiguous
    np.testing.assert_array_equal(ds.train_images, train_x)
    np.testing.assert_array_equal(ds.train_labels, train_y)
    np.testing.assert_array_equal(ds.test_images, test_x)
    np.testing.assert_array_equal(ds.test_labels, test_y)
    assert ds.classes == LABEL_NAMES


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Make torchvision's download fail as it does without a network; return the attempted calls."""
    calls: list[tuple[Any, ...]] = []

    def refuse(*args: Any, **kwargs: Any) -> None:
        calls.append(args)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", refuse)
    return calls


# --- the test files really are Python 2 pickles ---------------------------------------------------------


def test_written_batches_use_python2_str_opcodes_and_numpy_1_array_path(tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path, train_per_batch=3, test_size=3)
    opcodes = {op.name for op, _, _ in pickletools.genops((folder / "data_batch_1").read_bytes())}
    assert {"SHORT_BINSTRING", "BINSTRING"} <= opcodes
    assert not opcodes & {"BINUNICODE", "SHORT_BINUNICODE", "BINBYTES", "SHORT_BINBYTES"}
    text = io.StringIO()
    pickletools.dis((folder / "data_batch_1").read_bytes(), out=text)
    assert "numpy.core.multiarray _reconstruct" in text.getvalue()
    assert "_codecs" not in text.getvalue()


@pytest.mark.parametrize(("encoding", "key"), [("bytes", b"data"), ("latin1", "data")])
def test_written_batches_unpickle_like_python2_files_in_either_encoding(
    tmp_path: Path, encoding: str, key: str | bytes
) -> None:
    folder = write_cifar10(tmp_path, train_per_batch=4, test_size=2)
    with (folder / "data_batch_2").open("rb") as f:
        batch = pickle.load(f, encoding=encoding)
    with (folder / "batches.meta").open("rb") as f:
        meta = pickle.load(f, encoding=encoding)
    assert all(type(k) is type(key) for k in batch)
    data, labels = make_batches(4, 2)["data_batch_2"]
    np.testing.assert_array_equal(batch[key], data)
    labels_key = b"labels" if isinstance(key, bytes) else "labels"
    assert batch[labels_key] == labels
    names_key = b"label_names" if isinstance(key, bytes) else "label_names"
    assert [n.decode() if isinstance(n, bytes) else n for n in meta[names_key]] == list(LABEL_NAMES)


# --- load_cifar10 ---------------------------------------------------------------------------------------


def test_load_cifar10_round_trips_pixels_and_labels_from_python2_batches(tmp_path: Path) -> None:
    write_cifar10(tmp_path, train_per_batch=20, test_size=30, seed=3)
    ds = load_cifar10(tmp_path, download=False)
    _assert_matches_written(ds, 20, 30, 3)


@pytest.mark.parametrize("flavour", ["python3_bytes_keys", "python3_str_keys"])
def test_load_cifar10_accepts_batches_repickled_by_python3(tmp_path: Path, flavour: str) -> None:
    folder = write_cifar10(tmp_path, train_per_batch=5, test_size=5)
    for path in folder.iterdir():
        with path.open("rb") as f:
            obj = pickle.load(f, encoding="bytes")
        if flavour == "python3_str_keys":
            obj = {k.decode(): v for k, v in obj.items()}
        # Protocol 2 writes bytes as _codecs.encode(...), the form a Python 3 re-save of the batches takes.
        path.write_bytes(pickle.dumps(obj, protocol=2))
    _assert_matches_written(load_cifar10(tmp_path, download=False), 5, 5, 0)


def test_archive_with_matching_md5_is_extracted_and_loaded(tmp_path: Path) -> None:
    archive = write_cifar10(tmp_path, train_per_batch=10, test_size=10, seed=1, archive=True)
    assert archive == tmp_path / ARCHIVE_NAME
    assert not (tmp_path / FOLDER_NAME).exists()
    md5 = _md5(archive)
    ds = load_cifar10(tmp_path, download=False, md5=md5)
    assert (tmp_path / FOLDER_NAME / "test_batch").is_file()
    _assert_matches_written(ds, 10, 10, 1)


def test_incomplete_folder_is_restored_from_the_archive(tmp_path: Path) -> None:
    archive = write_cifar10(tmp_path, train_per_batch=10, test_size=10, archive=True)
    write_cifar10(tmp_path, train_per_batch=10, test_size=10)
    (tmp_path / FOLDER_NAME / "data_batch_4").unlink()
    ds = load_cifar10(tmp_path, download=False, md5=_md5(archive))
    _assert_matches_written(ds, 10, 10, 0)


def test_archive_with_wrong_md5_raises_data_error_naming_the_archive(
    tmp_path: Path, offline: list[tuple[Any, ...]]
) -> None:
    archive = write_cifar10(tmp_path, train_per_batch=2, test_size=2, archive=True)
    with pytest.raises(DataError) as err:
        load_cifar10(tmp_path)
    message = str(err.value)
    assert "md5" in message
    assert str(archive.resolve()) in message
    assert CIFAR10_URL in message
    assert offline == []  # a bad archive is reported, not silently replaced by a download


def test_nothing_present_without_download_says_where_to_put_the_archive(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load_cifar10(tmp_path / "data", download=False)
    message = str(err.value)
    assert str((tmp_path / "data" / ARCHIVE_NAME).resolve()) in message
    assert CIFAR10_URL in message
    assert "downloading is off" in message


def test_relative_data_dir_is_reported_as_an_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as err:
        load_cifar10(Path("var/data"), download=False)
    assert str(tmp_path.resolve() / "var" / "data" / ARCHIVE_NAME) in str(err.value)


def test_offline_download_becomes_data_error_with_path_url_and_reason(
    tmp_path: Path, offline: list[tuple[Any, ...]]
) -> None:
    with pytest.raises(DataError) as err:
        load_cifar10(tmp_path, download=True)
    assert len(offline) == 1
    assert offline[0][0] == CIFAR10_URL
    message = str(err.value)
    assert "downloading failed" in message
    assert "URLError" in message
    assert "Temporary failure in name resolution" in message
    assert str((tmp_path / ARCHIVE_NAME).resolve()) in message
    assert CIFAR10_URL in message


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _rewrite(path: Path, change: Any) -> None:
    with path.open("rb") as f:
        batch = pickle.load(f, encoding="bytes")
    change(batch)
    write_py2_pickle(path, batch)


def _evil(path: Path) -> None:
    path.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")  # a pickle that would run a shell command


CORRUPTIONS = {
    "truncated": _truncate,
    "not_a_pickle": lambda p: p.write_bytes(b"\x00garbage" * 100),
    "foreign_global": _evil,
    "not_a_dict": lambda p: write_py2_pickle(p, [1, 2, 3]),
    "label_out_of_range": lambda p: _rewrite(p, lambda b: b[b"labels"].__setitem__(0, 10)),
    "negative_label": lambda p: _rewrite(p, lambda b: b[b"labels"].__setitem__(0, -1)),
    "labels_missing": lambda p: _rewrite(p, lambda b: b.pop(b"labels")),
    "labels_not_integers": lambda p: _rewrite(p, lambda b: b.__setitem__(b"labels", [b"cat"] * 3)),
    "label_count_mismatch": lambda p: _rewrite(p, lambda b: b[b"labels"].pop()),
    "data_wrong_width": lambda p: _rewrite(p, lambda b: b.__setitem__(b"data", b[b"data"][:, :100].copy())),
    "data_missing": lambda p: _rewrite(p, lambda b: b.pop(b"data")),
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_corrupt_batch_raises_data_error_naming_the_file(tmp_path: Path, corruption: str) -> None:
    folder = write_cifar10(tmp_path, train_per_batch=3, test_size=3)
    CORRUPTIONS[corruption](folder / "data_batch_3")
    with pytest.raises(DataError) as err:
        load_cifar10(tmp_path, download=False)
    assert "data_batch_3" in str(err.value)
    assert CIFAR10_URL in str(err.value)


def test_meta_without_ten_label_names_raises_data_error(tmp_path: Path) -> None:
    folder = write_cifar10(tmp_path, train_per_batch=3, test_size=3)
    write_py2_pickle(folder / "batches.meta", {b"label_names": [b"cat", b"dog"]})
    with pytest.raises(DataError, match="label_names"):
        load_cifar10(tmp_path, download=False)
