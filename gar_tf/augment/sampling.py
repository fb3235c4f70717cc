"""Stateless draws of augmentation actions from policy logits, and applying them.

Shared by the learned policy (``gar_tf.policies.augmentation``) and its SavedModel export
(``gar_tf.export``). An action row is ``(n - 1, ops[K], levels[K])`` for K op slots; slots
past ``n`` are Identity (op 0).
"""

from __future__ import annotations

import tensorflow as tf

from gar_tf.augment.apply import apply_ops


def member_of(batch_size, members: int) -> tf.Tensor:
    """Ensemble member of each example: E contiguous slices of the batch."""
    return tf.range(batch_size) * members // batch_size


def sample_actions(count_logits, op_logits, level_logits, batch_size, seed) -> tf.Tensor:
    """Stateless draw of int32 actions ``[B, 1 + 2K]``: ``(n - 1, ops[K], levels[K])``."""
    members, k = count_logits.shape[0], count_logits.shape[1]
    member = member_of(batch_size, members)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    count = tf.random.stateless_categorical(
        tf.gather(count_logits, member), 1, seeds[0], dtype=tf.int32
    )
    ops = tf.random.stateless_categorical(tf.gather(op_logits, member), k, seeds[1], dtype=tf.int32)
    level_logits = tf.gather_nd(level_logits, tf.stack([tf.tile(member[:, None], [1, k]), ops], -1))
    levels = tf.random.stateless_categorical(
        tf.reshape(level_logits, [-1, level_logits.shape[-1]]), 1, seeds[2], dtype=tf.int32
    )
    return tf.concat([count, ops, tf.reshape(levels, [-1, k])], axis=1)


def active_ops(actions: tf.Tensor, max_ops: int) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """``(active [B, K] bool, ops with inactive slots set to Identity (0), levels)``."""
    count, ops, levels = actions[:, 0], actions[:, 1 : 1 + max_ops], actions[:, 1 + max_ops :]
    active = tf.range(max_ops)[None] <= count[:, None]
    return active, tf.where(active, ops, 0), levels


def augment_with(
    images, count_logits, op_logits, level_logits, seed, space, num_levels
) -> tf.Tensor:
    """Samples actions from the logits with ``seed`` and applies them (all stateless)."""
    batch = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
    actions = sample_actions(count_logits, op_logits, level_logits, batch, seeds[0])
    return apply_actions(images, actions, space, num_levels, seeds[1])


def apply_actions(images, actions, space, num_levels, seed) -> tf.Tensor:
    """Applies each image's active ops at their levels (the ± signs drawn from ``seed``)."""
    max_ops = (actions.shape[1] - 1) // 2
    _, ops, levels = active_ops(tf.cast(actions, tf.int32), max_ops)
    return apply_ops(images, ops, levels, space, num_levels, seed=seed)
