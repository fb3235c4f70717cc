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
from gar_tf_trainers import _cli


def load(args: argparse.Namespace, split: str, **options):
    """``(images uint8 [N, H, W, C], labels)`` of ``args.dataset``'s ``split``: the IDX
    files of ``--data-dir``, or the tfds dataset prepared in ``--tfds-data-dir``."""
    if args.dataset in _cli.TFDS_DATASETS:
        return gar_tf.datasets.load_tfds(
            args.dataset, split, args.tfds_data_dir, as_numpy=True, **options
        )
    loader = getattr(gar_tf.datasets, f"load_{args.dataset}")
    return loader(args.data_dir, split, as_numpy=True, **options)


class _TrainingAugmentation(keras.layers.Layer):
    """A fixed augmentation at the start of a model: ``augment`` in training, else identity."""

    def __init__(self, seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training: bool = False):
        return self.augment(images) if training else images

    def get_config(self) -> dict:
        return {**super().get_config(), "seed": self.seed}


class CropFlip(_TrainingAugmentation):
    """``gar_tf.augment.baselines.crop_flip``: zero-pad by ``pad``, crop back at a uniform
    offset, mirror left-right with p = 1/2, per image (in training)."""

    def __init__(self, pad: int, seed: int | None = None, **kwargs) -> None:
        super().__init__(seed, **kwargs)
        self.pad = int(pad)

    def augment(self, images):
        seed = keras.random.randint((2,), 0, 2**31 - 1, seed=self.generator)
        return gar_tf.augment.baselines.crop_flip(images, seed, self.pad)

    def get_config(self) -> dict:
        return {**super().get_config(), "pad": self.pad}


class Cutout(_TrainingAugmentation):
    """Zeroes one ``side`` x ``side`` square per image (in training; DeVries & Taylor 2017,
    the reference's ``CutoutDefault``): centre (y, x) uniform over the pixels, rows
    [y - side/2, y + side/2) and the same columns, clipped at the border."""

    def __init__(self, side: int, seed: int | None = None, **kwargs) -> None:
        super().__init__(seed, **kwargs)
        self.side = int(side)

    def augment(self, images):
        shape = tf.shape(images)
        rows = keras.random.randint((shape[0], 1), 0, shape[1], seed=self.generator)
        cols = keras.random.randint((shape[0], 1), 0, shape[2], seed=self.generator)

        def span(centre, size):
            positions = tf.range(size)[None]
            return (positions >= centre - self.side // 2) & (positions < centre + self.side // 2)

        square = span(rows, shape[1])[:, :, None] & span(cols, shape[2])[:, None, :]
        return tf.where(square[..., None], tf.zeros_like(images), images)

    def get_config(self) -> dict:
        return {**super().get_config(), "side": self.side}


def backbone(
    name: str, input_shape, num_classes: int = 10, crop_pad: int = 0, cutout: int = 0
) -> keras.Model:
    """``gar_tf.backbones.from_name(name)`` behind a Rescaling(1/255): policies work on
    [0, 255] pixels. ``crop_pad`` > 0 puts ``CropFlip(crop_pad)`` first, ``cutout`` > 0
    then ``Cutout(cutout)``: both act in training only, after the policy's ops (the
    reference's order)."""
    core = gar_tf.backbones.from_name(name, input_shape, num_classes)
    inputs = keras.Input(input_shape)
    h = CropFlip(crop_pad, name="crop_flip")(inputs) if crop_pad else inputs
    h = Cutout(cutout, name="cutout")(h) if cutout else h
    return keras.Model(inputs, core(keras.layers.Rescaling(1 / 255)(h)), name=core.name)


def policy(
    args: argparse.Namespace, *, ops, max_ops: int, seed: int, op_rule: str | None = None, **options
):
    """An ``AugmentationPolicy`` with the ``_cli.add_policy`` flags' ensemble, level model,
    op floor, optimizer and op rule (``op_rule`` given: that one)."""
    return gar_tf.AugmentationPolicy(
        ops=ops,
        max_ops=max_ops,
        ensemble=args.ensemble,
        levels=args.levels,
        op_rule=op_rule or args.op_rule,
        min_op_probability=args.min_op_probability,
        seed=seed,
        policy_optimizer=keras.optimizers.Adam(args.policy_lr, beta_1=args.policy_beta1),
        **options,
    )


class CoupledDecaySGD(keras.optimizers.SGD):
    """SGD whose weight decay is L2 added to the gradient, ``g + weight_decay * w``, before
    momentum (PyTorch's ``SGD(weight_decay=...)``), on every trainable variable; Keras'
    own ``weight_decay`` is decoupled (``w -= lr * wd * w``, outside the momentum)."""

    def __init__(self, *args, l2: float = 0.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.l2 = float(l2)

    def update_step(self, gradient, variable, learning_rate):
        l2 = tf.cast(self.l2, variable.dtype)
        super().update_step(gradient + l2 * variable, variable, learning_rate)

    def get_config(self) -> dict:
        return {**super().get_config(), "l2": self.l2}


def sgd_nesterov(learning_rate, weight_decay: float = 0.0) -> CoupledDecaySGD:
    """SGD with Nesterov momentum 0.9 and coupled L2 ``weight_decay`` (the reference's model
    optimizer on CIFAR)."""
    return CoupledDecaySGD(learning_rate, momentum=0.9, nesterov=True, l2=weight_decay)


def compile_classifier(model: keras.Model, learning_rate, optimizer=None) -> keras.Model:
    """``optimizer`` (default Adam(``learning_rate``: a float or a schedule)), sparse
    cross-entropy, accuracy."""
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(learning_rate),
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
