"""What the trainers (and benchmarks/quality.py) build after parsing: data, models, policies.

Imports TensorFlow, so import it only once the flags are parsed and checked (``_cli``).
"""

from __future__ import annotations

import argparse
import sys

import keras
import numpy as np
import tensorflow as tf

import gar_tf


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
    """An ``AugmentationPolicy`` with the ``_cli.add_policy`` flags' ensemble and optimizer."""
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


def held_out_batches(x: np.ndarray, y: np.ndarray, share: float, batch_size: int, seed: int):
    """``(pairs, (x_train, y_train), (x_held, y_held))`` for ``clean_comparison="held_out"``:
    a stratified ``share`` held out (``gar_tf.datasets.held_out_split``), training batches
    of the rest each paired with a held-out batch, round-robin (``gar_tf.with_comparison``)."""
    train, held = gar_tf.datasets.held_out_split(x, y, share, seed=seed)
    pairs = gar_tf.with_comparison(
        batches(*train, batch_size, seed), batches(*held, batch_size, seed + 1)
    )
    return pairs, train, held


def verbosity() -> int:
    """``fit``'s ``verbose``: a progress bar on a terminal, one line per epoch otherwise."""
    return 1 if sys.stdout.isatty() else 2
