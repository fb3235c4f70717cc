"""Command-line pieces the trainers (and benchmarks/quality.py) share: flags, data, models."""

from __future__ import annotations

import argparse
import sys

import keras
import numpy as np
import tensorflow as tf

import gar_tf

DATASETS = ("fashion_mnist", "mnist")


def parser(
    doc: str, formatter_class: type = argparse.RawDescriptionHelpFormatter
) -> argparse.ArgumentParser:
    """An argument parser described by the script's docstring, with the dataset options."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0], formatter_class=formatter_class)
    p.add_argument(
        "--dataset",
        choices=DATASETS,
        default="fashion_mnist",
        help="real offline dataset (see gar_tf.datasets for where it is read from)",
    )
    p.add_argument("--data-dir", default=None, help="directory holding the dataset's IDX files")
    return p


def add_backbone(p: argparse.ArgumentParser, *, per_class: int, model: str) -> None:
    """``--per-class`` (training subset) and ``--model`` (a ``gar_tf.backbones`` name)."""
    p.add_argument(
        "--per-class", type=int, default=per_class, help="training images per class (stratified)"
    )
    p.add_argument("--model", default=model, help=gar_tf.backbones.NAMES)


def add_training(
    p: argparse.ArgumentParser,
    *,
    epochs: int | None,
    learning_rate: float = 1e-3,
    epochs_help: str = "passes over the training subset",
    learning_rate_help: str = "model Adam learning rate",
) -> None:
    """``--epochs`` (unless ``epochs`` is None), ``--batch-size`` and ``--learning-rate``."""
    if epochs is not None:
        p.add_argument("--epochs", type=int, default=epochs, help=epochs_help)
    p.add_argument("--batch-size", type=int, default=128, help="examples per batch")
    p.add_argument("--learning-rate", type=float, default=learning_rate, help=learning_rate_help)


def add_policy(p: argparse.ArgumentParser) -> None:
    """``--policy-lr`` and ``--ensemble`` of an ``AugmentationPolicy`` (see ``policy``)."""
    p.add_argument("--policy-lr", type=float, default=0.01, help="policy Adam learning rate")
    p.add_argument("--ensemble", type=int, default=1, help="independent samplers per batch")


def add_logging(
    p: argparse.ArgumentParser,
    *,
    logdir: str,
    logdir_help: str,
    log_every: int | None = None,
    log_every_help: str = "",
) -> None:
    """``--log-every`` (unless ``log_every`` is None) and ``--logdir``."""
    if log_every is not None:
        p.add_argument("--log-every", type=int, default=log_every, help=log_every_help)
    p.add_argument("--logdir", default=logdir, help=logdir_help)


def load(args: argparse.Namespace, split: str, **options):
    """``(images uint8 [N, 28, 28, 1], labels)`` of ``args.dataset``'s ``split``."""
    loader = getattr(gar_tf.datasets, f"load_{args.dataset}")
    return loader(args.data_dir, split, as_numpy=True, **options)


def backbone(name: str, input_shape, num_classes: int = 10) -> keras.Model:
    """``gar_tf.backbones.from_name(name)`` behind a Rescaling(1/255): policies work on
    [0, 255] pixels."""
    core = gar_tf.backbones.from_name(name, input_shape, num_classes)
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, core(keras.layers.Rescaling(1 / 255)(inputs)), name=core.name)


def policy(args: argparse.Namespace, *, ops, max_ops: int, seed: int, **options):
    """An ``AugmentationPolicy`` with the ``add_policy`` flags' ensemble and optimizer."""
    return gar_tf.AugmentationPolicy(
        ops=ops,
        max_ops=max_ops,
        ensemble=args.ensemble,
        seed=seed,
        policy_optimizer=keras.optimizers.Adam(args.policy_lr),
        **options,
    )


def compile_classifier(model: keras.Model, learning_rate) -> keras.Model:
    """Adam(``learning_rate``: a float or a schedule), sparse cross-entropy, accuracy."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> tf.data.Dataset:
    """Shuffled full batches of ``(float32 images, int32 labels)``, not prefetched."""
    return (
        tf.data.Dataset.from_tensor_slices((x.astype(np.float32), y.astype(np.int32)))
        .shuffle(len(y), seed=seed)
        .batch(batch_size, drop_remainder=True)
    )


def verbosity() -> int:
    """``fit``'s ``verbose``: a progress bar on a terminal, one line per epoch otherwise."""
    return 1 if sys.stdout.isatty() else 2
