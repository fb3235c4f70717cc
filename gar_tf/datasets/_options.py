"""The options every loader shares, checked in ``Options`` and applied in ``finish``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
import tensorflow as tf

_NORMALIZE = (None, "unit", "standard")

# Per-channel (mean, std) of a training split, keyed by where the split was read from.
_STATS_CACHE: dict[Hashable, tuple[np.ndarray, np.ndarray]] = {}


@dataclasses.dataclass(frozen=True)
class Options:
    """The shared keyword options (documented in the ``gar_tf.datasets`` docstring).

    Loaders take them as ``**options`` and build this with ``Options.of(loader, options)``.
    """

    limit: int | None = None
    subset_per_class: int | None = None
    validation_size: int = 0
    pad_to: int | None = None
    rgb: bool = False
    normalize: str | None = None
    shuffle: bool = False
    seed: int | None = 0

    def __post_init__(self) -> None:
        if self.limit is not None and self.subset_per_class is not None:
            raise ValueError("pass at most one of limit and subset_per_class")
        for arg in ("limit", "subset_per_class", "pad_to"):
            value = getattr(self, arg)
            if value is not None and value < 1:
                raise ValueError(f"{arg} must be a positive integer, got {value}")
        if self.validation_size < 0:
            raise ValueError(f"validation_size must be >= 0, got {self.validation_size}")
        if self.validation_size and self.seed is None:
            raise ValueError(
                "validation_size needs an integer seed: with seed=None the train and "
                "validation calls would hold out different images"
            )
        if self.normalize not in _NORMALIZE:
            raise ValueError(f"normalize must be one of {_NORMALIZE}, got {self.normalize!r}")

    @classmethod
    def of(cls, loader: str, options: dict[str, Any]) -> Options:
        """The options ``loader`` was called with; ``TypeError`` for any other keyword."""
        names = [field.name for field in dataclasses.fields(cls)]
        unknown = [key for key in options if key not in names]
        if unknown:
            raise TypeError(
                f"{loader}() got an unexpected keyword argument {unknown[0]!r}; the dataset "
                f"options are {', '.join(names)} (see the gar_tf.datasets docstring)"
            )
        return cls(**options)

    def source_split(self, split: str) -> str:
        """The split to read: ``"validation"`` is held out of ``"train"``."""
        if split != "validation":
            return split
        if not self.validation_size:
            raise ValueError(
                'split="validation" is the hold-out carved from "train": '
                "pass validation_size > 0 (the same value, seed and limit as for "
                'split="train")'
            )
        return "train"


def cached_stats(
    key: Hashable, read_train_images: Callable[[], np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std in [0, 1] units of the training images, cached by ``key``."""
    if key not in _STATS_CACHE:
        images = read_train_images()
        channels = images.reshape(-1, images.shape[-1])
        values = np.arange(256, dtype=np.float64)
        mean, std = [], []
        for c in range(channels.shape[1]):  # exact statistics from each channel's histogram
            counts = np.bincount(channels[:, c], minlength=256)
            m = counts @ values / counts.sum()
            mean.append(m / 255)
            std.append(np.sqrt(max(counts @ values**2 / counts.sum() - m * m, 0.0)) / 255)
        std = [s if s > 0 else 1.0 for s in std]
        _STATS_CACHE[key] = (np.float32(mean), np.float32(std))
    return _STATS_CACHE[key]


def holdout_indices(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted indices of ``size`` items, each class held out in proportion to its size."""
    if size >= len(labels):
        raise ValueError(f"validation_size={size} leaves none of the {len(labels)} images to train")
    classes, counts = np.unique(labels, return_counts=True)
    quota = size * counts / len(labels)
    take = np.floor(quota).astype(np.int64)
    take[np.argsort(take - quota, kind="stable")[: size - take.sum()]] += 1  # largest remainders
    rng = np.random.default_rng((seed, 1))
    picks = [
        rng.choice(np.flatnonzero(labels == c), k, replace=False)
        for c, k in zip(classes, take, strict=True)
    ]
    return np.sort(np.concatenate(picks))


def _stratified_indices(
    labels: np.ndarray, num_classes: int, per_class: int, seed: int | None
) -> np.ndarray:
    """Sorted indices of exactly ``per_class`` items of each class (no repeats)."""
    rng = np.random.default_rng(seed)
    picks = []
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise ValueError(
                f"subset_per_class={per_class} but class {c} has only {len(members)} images"
            )
        picks.append(rng.choice(members, per_class, replace=False))
    return np.sort(np.concatenate(picks))


def _pad(images: np.ndarray, size: int) -> np.ndarray:
    height, width = images.shape[1:3]
    if size < max(height, width):
        raise ValueError(f"pad_to={size} is smaller than the {height}x{width} images")
    top, left = (size - height) // 2, (size - width) // 2
    return np.pad(images, ((0, 0), (top, size - height - top), (left, size - width - left), (0, 0)))


def finish(
    images: np.ndarray,
    labels: np.ndarray,
    split: str,
    num_classes: int,
    options: Options,
    train_stats: Callable[[], tuple[np.ndarray, np.ndarray]],
    as_numpy: bool,
) -> tuple[np.ndarray, np.ndarray] | tf.data.Dataset:
    """Applies ``options`` to the images (uint8 ``[N, H, W, C]``) read for ``split``.

    Order: validation hold-out, ``subset_per_class``, shuffle, ``pad_to``, ``rgb``,
    ``normalize``. ``train_stats`` gives the per-channel statistics for "standard".
    """
    keep = np.arange(len(labels))
    if options.validation_size and split in ("train", "validation"):
        held = holdout_indices(labels, options.validation_size, options.seed)
        keep = held if split == "validation" else np.setdiff1d(keep, held)
    if options.subset_per_class is not None:
        keep = keep[
            _stratified_indices(labels[keep], num_classes, options.subset_per_class, options.seed)
        ]
    if options.shuffle:
        seed = None if options.seed is None else (options.seed, 2)
        keep = np.random.default_rng(seed).permutation(keep)
    images, labels = images[keep], labels[keep].astype(np.int64)

    if options.pad_to is not None:
        images = _pad(images, options.pad_to)
    if options.rgb and images.shape[-1] != 3:
        if images.shape[-1] != 1:
            raise ValueError(f"rgb=True needs 1 or 3 channels, the images have {images.shape[-1]}")
        images = np.repeat(images, 3, axis=-1)
    if options.normalize == "unit":
        images = np.divide(images, 255, dtype=np.float32)
    elif options.normalize == "standard":
        mean, std = train_stats()
        images = (np.divide(images, 255, dtype=np.float32) - mean) / std

    if as_numpy:
        return images, labels
    return tf.data.Dataset.from_tensor_slices((images, labels))
