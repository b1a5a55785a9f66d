"""The synthetic set and seeded subsets (worker/data.py), and `load_dataset`, which serves a job either."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.cifar_files import write_cifar10
from worker.data import DataError, Dataset, load_cifar10, load_dataset, make_synthetic, subset

# --- make_synthetic -------------------------------------------------------------------------------------


def test_synthetic_is_deterministic_per_seed_and_differs_across_seeds() -> None:
    a, b, c = (
        make_synthetic(300, 100, seed=7),
        make_synthetic(300, 100, seed=7),
        make_synthetic(300, 100, seed=8),
    )
    assert a.train_images.tobytes() == b.train_images.tobytes()
    assert a.test_images.tobytes() == b.test_images.tobytes()
    np.testing.assert_array_equal(a.train_labels, b.train_labels)
    assert a.train_images.tobytes() != c.train_images.tobytes()
    assert a.test_images.tobytes() != c.test_images.tobytes()


def test_synthetic_train_and_test_come_from_separate_streams() -> None:
    small, large = make_synthetic(10, 50, seed=1), make_synthetic(200, 50, seed=1)
    # The test set does not depend on how much training data was asked for ...
    np.testing.assert_array_equal(small.test_images, large.test_images)
    # ... and is not a copy of the training images.
    assert not np.array_equal(large.train_images[:50], large.test_images)


def test_synthetic_has_cifar_shapes_dtypes_and_all_ten_classes() -> None:
    ds = make_synthetic(2000, 500, seed=0)
    assert ds.train_images.shape == (2000, 3, 32, 32)
    assert ds.test_images.shape == (500, 3, 32, 32)
    assert ds.train_images.dtype == ds.test_images.dtype == np.uint8
    assert ds.train_labels.dtype == ds.test_labels.dtype == np.int64
    assert ds.train_images.flags.c_contiguous
    assert len(ds.classes) == len(set(ds.classes)) == 10
    counts = np.bincount(ds.train_labels, minlength=10)
    assert counts.min() > 120  # ~200 per class expected; 120 would be a wildly unbalanced draw
    assert set(np.unique(ds.test_labels)) == set(range(10))


def test_synthetic_images_vary_within_a_class() -> None:
    ds = make_synthetic(500, 10, seed=2)
    per_image_std = ds.train_images.reshape(500, -1).std(axis=1)
    assert per_image_std.min() > 10  # a pattern plus noise, never a flat image
    first_two = ds.train_images[ds.train_labels == 0][:2]
    assert not np.array_equal(first_two[0], first_two[1])


def test_synthetic_classes_are_learnable_by_nearest_class_mean_on_raw_pixels() -> None:
    ds = make_synthetic(3000, 1000, seed=5)
    train = ds.train_images.reshape(len(ds.train_images), -1).astype(np.float32)
    test = ds.test_images.reshape(len(ds.test_images), -1).astype(np.float32)
    means = np.stack([train[ds.train_labels == k].mean(axis=0) for k in range(10)])
    distances = (test**2).sum(1, keepdims=True) - 2 * test @ means.T + (means**2).sum(1)
    accuracy = (distances.argmin(axis=1) == ds.test_labels).mean()
    assert accuracy > 0.6  # chance is 0.1; a CNN does far better than this linear baseline


# --- subset and load_dataset ----------------------------------------------------------------------------


def _indexed(n_train: int, n_test: int) -> Dataset:
    """A dataset whose first pixel records each image's index, so subsets can be traced back."""
    train = np.zeros((n_train, 3, 32, 32), np.uint8)
    train[:, 0, 0, 0] = np.arange(n_train)
    test = np.zeros((n_test, 3, 32, 32), np.uint8)
    test[:, 0, 0, 0] = np.arange(n_test)
    return Dataset(train, np.arange(n_train) % 10, test, np.arange(n_test) % 10, tuple("abcdefghij"))


def test_subset_is_seeded_without_replacement_and_keeps_pairs() -> None:
    ds = _indexed(200, 100)
    a, b, c = subset(ds, 50, 20, seed=3), subset(ds, 50, 20, seed=3), subset(ds, 50, 20, seed=4)
    np.testing.assert_array_equal(a.train_images, b.train_images)
    np.testing.assert_array_equal(a.test_labels, b.test_labels)
    assert not np.array_equal(a.train_images, c.train_images)
    picked = a.train_images[:, 0, 0, 0].astype(np.int64)
    assert len(set(picked)) == 50
    np.testing.assert_array_equal(a.train_labels, picked % 10)
    assert (a.train_images.shape, a.test_images.shape) == ((50, 3, 32, 32), (20, 3, 32, 32))
    assert a.classes == ds.classes


def test_subset_none_keeps_everything_and_sides_are_independent() -> None:
    ds = _indexed(200, 100)
    whole_test = subset(ds, 30, None, seed=0)
    assert whole_test.test_images is ds.test_images
    assert len(whole_test.train_labels) == 30
    # Asking for a different test size does not change which training images are drawn.
    np.testing.assert_array_equal(whole_test.train_images, subset(ds, 30, 10, seed=0).train_images)


@pytest.mark.parametrize(("train", "test"), [(201, None), (None, 101), (0, None), (None, -1)])
def test_subset_out_of_bounds_raises_data_error(train: int | None, test: int | None) -> None:
    with pytest.raises(DataError, match="samples"):
        subset(_indexed(200, 100), train, test, seed=0)


def test_subset_of_exactly_all_is_allowed() -> None:
    ds = subset(_indexed(200, 100), 200, 100, seed=0)
    assert sorted(ds.train_images[:, 0, 0, 0]) == list(range(200))


def test_load_dataset_synthetic_generates_only_the_requested_sizes(tmp_path: Path) -> None:
    ds = load_dataset("synthetic", tmp_path, 64, 32, seed=9)
    assert (len(ds.train_labels), len(ds.test_labels)) == (64, 32)
    assert ds.test_images.tobytes() == make_synthetic(64, 32, seed=9).test_images.tobytes()
    assert list(tmp_path.iterdir()) == []  # no data directory is needed or touched


def test_load_dataset_cifar10_reads_and_subsets(tmp_path: Path) -> None:
    write_cifar10(tmp_path, train_per_batch=10, test_size=20)
    full = load_cifar10(tmp_path, download=False)
    ds = load_dataset("cifar10", tmp_path, 15, None, seed=2)
    assert len(ds.train_labels) == 15
    np.testing.assert_array_equal(ds.test_images, full.test_images)
    np.testing.assert_array_equal(ds.train_images, subset(full, 15, None, seed=2).train_images)


def test_load_dataset_rejects_unknown_names_and_bad_synthetic_sizes(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("imagenet", tmp_path, None, None, seed=0)
    with pytest.raises(DataError, match="train_samples"):
        load_dataset("synthetic", tmp_path, 0, 10, seed=0)
