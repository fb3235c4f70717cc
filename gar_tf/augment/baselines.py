"""Fixed augmentation baselines on the same op library, for fair comparisons with learned
policies (they learn nothing, so they are not ``gar_tf.policies``).

``crop_flip`` is the standard base augmentation. RandAugment, TrivialAugment-Wide and
UniformAugment are each a pair: a stateless sampler of ``(op_ids, levels)`` ``[B, K]``
(``*_actions``) and a function that applies it to a batch with
``gar_tf.augment.apply_ops``. All take a ``seed``
(int ``[2]``), so in ``tf.data`` pass a per-batch seed, e.g. from ``Dataset.enumerate``.
"""

from __future__ import annotations

import tensorflow as tf

from gar_tf.augment.apply import apply_ops
from gar_tf.augment.table import build_space, get_space, space_ops

#: TrivialAugment-Wide's space: the 14 RandAugment ops with the wide ranges.
TRIVIAL_WIDE = build_space(space_ops("standard"))


def _uniform_ints(shape, high: int, seed) -> tf.Tensor:
    return tf.random.stateless_uniform(shape, seed, 0, high, dtype=tf.int32)


def _seeds(seed, n: int) -> tf.Tensor:
    return tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), n)


def crop_flip(images, seed, pad: int = 4, flip: bool = True) -> tf.Tensor:
    """The standard base augmentation: zero-pad by ``pad`` px, crop back to ``H x W`` at
    a uniform offset, mirror left-right with p = 1/2 (unless ``flip=False``, e.g. for
    digits); per image, batched ``[B, H, W, C]``."""
    s = _seeds(seed, 3)
    batch, height, width = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    rows = _uniform_ints([batch, 1], 2 * pad + 1, s[0]) + tf.range(height)[None]
    cols = _uniform_ints([batch, 1], 2 * pad + 1, s[1]) + tf.range(width)[None]
    cropped = tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
    if not flip:
        return cropped
    mirror = tf.random.stateless_uniform([batch, 1, 1, 1], s[2]) < 0.5
    return tf.where(mirror, tf.reverse(cropped, [2]), cropped)


def rand_augment_actions(batch_size, seed, num_ops: int = 2, magnitude: int = 9, space="standard"):
    """RandAugment(N, M): N ops per image, uniform over the space, all at level M."""
    ops = _uniform_ints([batch_size, num_ops], len(get_space(space).ops), seed)
    return ops, tf.fill(tf.shape(ops), magnitude)


def trivial_augment_actions(batch_size, seed, num_levels: int = 31):
    """TrivialAugment-Wide: one op per image, uniform over the 14 ops, uniform level."""
    s = _seeds(seed, 2)
    ops = _uniform_ints([batch_size, 1], len(TRIVIAL_WIDE.ops), s[0])
    return ops, _uniform_ints([batch_size, 1], num_levels, s[1])


def uniform_augment_actions(
    batch_size, seed, num_ops: int = 2, num_levels: int = 31, space="standard"
):
    """UniformAugment: N ops per image, uniform op and level, each kept with p = 1/2
    (a dropped slot is Identity, op 0)."""
    s = _seeds(seed, 3)
    ops = _uniform_ints([batch_size, num_ops], len(get_space(space).ops), s[0])
    keep = tf.random.stateless_uniform([batch_size, num_ops], s[1]) < 0.5
    return tf.where(keep, ops, 0), _uniform_ints([batch_size, num_ops], num_levels, s[2])


def rand_augment(images, seed, num_ops: int = 2, magnitude: int = 9, num_levels: int = 31):
    """Applies RandAugment(N=num_ops, M=magnitude) on the standard space."""
    s = _seeds(seed, 2)
    ops, levels = rand_augment_actions(tf.shape(images)[0], s[0], num_ops, magnitude)
    return apply_ops(images, ops, levels, "standard", num_levels, seed=s[1])


def trivial_augment_wide(images, seed, num_levels: int = 31):
    """Applies TrivialAugment-Wide."""
    s = _seeds(seed, 2)
    ops, levels = trivial_augment_actions(tf.shape(images)[0], s[0], num_levels)
    return apply_ops(images, ops, levels, TRIVIAL_WIDE, num_levels, seed=s[1])


def uniform_augment(images, seed, num_ops: int = 2, num_levels: int = 31):
    """Applies UniformAugment on the standard space."""
    s = _seeds(seed, 2)
    ops, levels = uniform_augment_actions(tf.shape(images)[0], s[0], num_ops, num_levels)
    return apply_ops(images, ops, levels, "standard", num_levels, seed=s[1])
