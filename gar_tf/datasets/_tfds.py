"""``load_tfds``: datasets prepared by tensorflow-datasets, downloaded only on request."""

from __future__ import annotations

import difflib
import os
import socket
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from gar_tf.datasets._options import Options, cached_stats, finish

_CONNECT_TIMEOUT = 5.0  # seconds per download host, checked before download_and_prepare


def _builder(tfds: Any, name: str, data_dir: str | os.PathLike[str] | None) -> Any:
    """``tfds.builder`` (no network: GCS stays off), with a short error for unknown names."""
    try:
        return tfds.builder(name, data_dir=data_dir, try_gcs=False)
    except tfds.core.DatasetNotFoundError as e:
        known = tfds.list_builders(with_community_datasets=False)
        close = difflib.get_close_matches(name.split("/")[0].split(":")[-1], known, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        reason = next((line for line in str(e).splitlines() if line.strip()), "")
        root = data_dir or tfds.core.constants.DATA_DIR
        raise ValueError(
            f"unknown tfds dataset {name!r} ({reason.strip()}): no tfds builder has that "
            f"name and {root} holds no prepared dataset of that name.{hint} "
            "tfds.list_builders() lists the known names."
        ) from None


def _how_to_get(name: str, builder: Any) -> str:
    relative = Path(builder.data_dir).relative_to(builder.data_dir_root)
    return (
        "To get it:\n"
        f"  - on a machine with internet: tfds build {name} --data_dir DIR, then copy "
        f"DIR/{relative} to {builder.data_dir} (or pass data_dir=DIR);\n"
        "  - or, where internet is available, pass download=True."
    )


def _check_reachable(name: str, builder: Any) -> None:
    """Raises ``ConnectionError`` at once when a download host cannot be reached.

    Without this, tfds retries each unreachable URL for minutes. Skipped when a proxy is
    configured or the builder lists no download URLs.
    """
    if urllib.request.getproxies():
        return
    hosts = set()
    for url in getattr(builder, "url_infos", None) or {}:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme in ("http", "https") and parts.hostname:
            hosts.add((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)))
    for host, port in sorted(hosts):
        try:
            socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT).close()
        except OSError as e:
            raise ConnectionError(
                f"cannot download tfds dataset {name!r}: {host}:{port} is unreachable ({e}).\n"
                + _how_to_get(name, builder)
            ) from e


def _supervised_keys(builder: Any) -> tuple[str, str]:
    keys = builder.info.supervised_keys or ("image", "label")
    features = builder.info.features
    if len(keys) != 2 or not all(isinstance(k, str) and k in features for k in keys):
        raise ValueError(
            f"tfds dataset {builder.name!r} has no (image, label) pair: supervised_keys "
            f"{builder.info.supervised_keys}, features {list(features)}"
        )
    shape = features[keys[0]].shape
    if len(shape) != 3 or None in shape:
        raise ValueError(
            f"tfds dataset {builder.name!r}: load_tfds reads fixed-size images [H, W, C], "
            f"{keys[0]!r} has shape {shape}"
        )
    return keys[0], keys[1]


def _read(builder: Any, split: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    image_key, label_key = _supervised_keys(builder)
    ds = builder.as_dataset(split=split, shuffle_files=False)
    if limit is not None:
        ds = ds.take(limit)
    ds = ds.map(lambda example: (example[image_key], example[label_key]))
    batches = list(ds.batch(4096).as_numpy_iterator())
    images = np.concatenate([b[0] for b in batches]) if batches else None
    if images is None or images.dtype != np.uint8:
        raise ValueError(
            f"tfds dataset {builder.name!r} split {split!r}: expected uint8 images, got "
            + ("no images" if images is None else str(images.dtype))
        )
    return images, np.concatenate([b[1] for b in batches]).astype(np.int64)


def load_tfds(
    name: str,
    split: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = False,
    as_numpy: bool = False,
    **options: Any,
) -> tuple[np.ndarray, np.ndarray] | tf.data.Dataset:
    """Loads an image-classification dataset prepared by tensorflow-datasets.

    The whole split is read into memory (fine for CIFAR/SVHN-sized data, not for
    ImageNet); only datasets of fixed-size uint8 images with an (image, label) pair work.

    Args:
        name: tfds name, e.g. ``"cifar10"``, ``"cifar100"``, ``"svhn_cropped"``; may carry a
            config and version (``"name/config:1.2.3"``). A dataset stored under
            ``data_dir`` without a tfds builder (e.g. written by
            ``tfds.dataset_builders.store_as_tfds_dataset``) is found by its name too.
        split: a tfds split (``"train"``, ``"test"``, ``"train[:10%]"``, ...) or
            ``"validation"``, the ``validation_size`` images held out of ``"train"``. A
            dataset's own validation split is ``"validation[:]"``.
        data_dir: tfds data directory (default: ``$TFDS_DATA_DIR``, else
            ``~/tensorflow_datasets``).
        download: download and prepare the dataset when it is not in ``data_dir``. Off by
            default, so nothing touches the network; when on, a download host that cannot
            be reached raises ``ConnectionError`` within seconds.
        as_numpy: return numpy arrays instead of a ``tf.data.Dataset``.
        **options: the shared keyword options described in the ``gar_tf.datasets``
            docstring, as for ``load_fashion_mnist`` (``normalize="standard"`` reads the
            whole ``"train"`` split once).

    Returns:
        As ``load_fashion_mnist``: images uint8 ``[N, H, W, C]`` and labels int64 ``[N]``.

    Raises:
        FileNotFoundError: the dataset is not prepared in ``data_dir`` and ``download`` is
            off; the message names the directory and how to get the data.
        TypeError: a keyword that is not one of the options.
        ValueError: unknown dataset name, unsupported dataset or bad arguments.
        ConnectionError: ``download=True`` but a download host is unreachable.
    """
    options = Options.of("load_tfds", options)
    source = options.source_split(split)
    if options.validation_size and source != "train" and source.startswith("train"):
        raise ValueError(
            f"split={split!r} with validation_size: the hold-out is carved from the whole "
            '"train" split; use split="train" with limit instead of slicing'
        )
    import tensorflow_datasets as tfds  # ~0.2 s once TensorFlow is imported

    builder = _builder(tfds, name, data_dir)
    if not builder.is_prepared():
        if not download:
            env = "" if os.environ.get("TFDS_DATA_DIR") else ", $TFDS_DATA_DIR is not set"
            raise FileNotFoundError(
                f"tfds dataset {name!r} is not prepared: {builder.data_dir} does not hold it "
                f"(searched data_dir {builder.data_dir_root}{env}; nothing is downloaded "
                "unless download=True).\n" + _how_to_get(name, builder)
            )
        _check_reachable(name, builder)
        builder.download_and_prepare()

    images, labels = _read(builder, source, options.limit)
    label_feature = builder.info.features[_supervised_keys(builder)[1]]
    num_classes = getattr(label_feature, "num_classes", None)
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0

    def train_stats() -> tuple[np.ndarray, np.ndarray]:
        key = ("tfds", os.fspath(builder.data_dir))
        return cached_stats(key, lambda: _read(builder, "train", None)[0])

    return finish(images, labels, split, num_classes, options, train_stats, as_numpy)
