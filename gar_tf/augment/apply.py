"""Per-image op choice for a batch, vectorised by grouping the images by op (docs/augmentation.md).

For each slot, the images are partitioned by op id, each op runs once on its
group and the results are stitched back in batch order: no per-image loop.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from gar_tf.augment.table import Space, get_space

Seed = int | tf.Tensor | None


def _check_images(images: tf.Tensor) -> None:
    """Static checks: rank 4, 1 or 3 channels, uint8 or float."""
    if images.shape.rank != 4:
        raise ValueError(f"images must be [B, H, W, C], got shape {images.shape}")
    if images.shape[-1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got shape {images.shape}")
    if images.dtype != tf.uint8 and not images.dtype.is_floating:
        raise TypeError(f"images must be uint8 or float in [0, 255], got {images.dtype.name}")


def _as_slots(values: tf.Tensor, name: str) -> tf.Tensor:
    """int32 ``[B, K]`` from integer ``[B]`` (one slot) or ``[B, K]``."""
    values = tf.convert_to_tensor(values)
    if not values.dtype.is_integer:
        raise TypeError(f"{name} must be an integer tensor, got {values.dtype.name}")
    if values.shape.rank not in (1, 2) or (values.shape.rank == 2 and values.shape[1] is None):
        raise ValueError(f"{name} must be [B] or [B, K] with a static K, got {values.shape}")
    values = tf.cast(values, tf.int32)
    return values[:, None] if values.shape.rank == 1 else values


def _checked(values: tf.Tensor, size: int, batch: tf.Tensor, name: str) -> tf.Tensor:
    """``values``, checked to have ``batch`` rows in [0, size) (InvalidArgumentError if not)."""
    message = f"{name} must lie in [0, {size - 1}]"
    checks = [
        tf.debugging.assert_equal(
            tf.shape(values)[0], batch, message=f"{name} needs one row per image"
        ),
        tf.debugging.assert_non_negative(values, message=message),
        tf.debugging.assert_less(values, size, message=message),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(values)


def _uniform(shape: list[int | tf.Tensor], seed: Seed) -> tf.Tensor:
    """U[0, 1) draws: stateless from ``seed`` (int or int ``[2]``), else from the global RNG."""
    if seed is None:
        return tf.random.uniform(shape)
    seed = tf.convert_to_tensor(seed)
    if seed.shape.rank == 0:
        seed = tf.stack([seed, tf.zeros_like(seed)])
    return tf.random.stateless_uniform(shape, seed=tf.cast(seed, tf.int64))


def _apply_slot(
    images: tf.Tensor, space: Space, op_ids: tf.Tensor, magnitude: tf.Tensor, noise: tf.Tensor
) -> tf.Tensor:
    """Image i ↦ op ``op_ids[i]`` of ``space`` with ``magnitude[i]``, one op call per group."""
    groups = tf.dynamic_partition(tf.range(tf.shape(images)[0]), op_ids, len(space.ops))
    outputs = [
        tf.cast(
            op.fn(tf.gather(images, g), tf.gather(magnitude, g), tf.gather(noise, g)), tf.float32
        )
        for op, g in zip(space.ops, groups)
    ]
    return tf.ensure_shape(tf.dynamic_stitch(groups, outputs), images.shape)


@tf.autograph.experimental.do_not_convert  # plain graph code: skip the slow AST conversion
def apply_ops(
    images: tf.Tensor,
    op_ids: tf.Tensor,
    levels: tf.Tensor,
    space: str | Space = "wide",
    num_levels: int = 31,
    seed: Seed = None,
) -> tf.Tensor:
    """Applies op ``op_ids[i, k]`` at level ``levels[i, k]`` to image i, slot k = 0, 1, … in turn.

    Args:
        images: ``[B, H, W, C]``, C = 1 or 3, uint8 or float with values in [0, 255].
        op_ids: integer ``[B]`` (one op per image) or ``[B, K]`` (K slots per image),
            indices into ``space_ops(space)``.
        levels: integer, same shape, in [0, num_levels − 1]; level l gives the
            magnitude of ``table.Magnitude`` with L = num_levels − 1.
        space: a named space ("wide": 19 ops, "standard": 14 ops) or a ``Space``.
        num_levels: number of strength levels (PARAMETER_MAX + 1).
        seed: ``None`` draws the ± signs and Cutout centres from TF's global RNG;
            an int or an int ``[2]`` tensor draws them statelessly (same seed, same
            output). In ``tf.data``, pass a per-batch seed.

    Returns:
        The augmented images, same shape and dtype, values in [0, 255].

    Raises:
        ValueError / TypeError: bad image rank, channels or dtype, bad id shapes,
            unknown space name.
        tf.errors.InvalidArgumentError: op ids or levels out of range.
    """
    space = get_space(space)
    images = tf.convert_to_tensor(images)
    _check_images(images)
    batch = tf.shape(images)[0]
    op_ids = _checked(_as_slots(op_ids, "op_ids"), len(space.ops), batch, "op_ids")
    levels = _checked(_as_slots(levels, "levels"), num_levels, batch, "levels")
    if op_ids.shape[1] != levels.shape[1]:
        raise ValueError(f"op_ids {op_ids.shape} and levels {levels.shape} differ in slots")
    table = np.stack([op.magnitude.values(num_levels) for op in space.ops])
    signed = tf.constant([op.magnitude.signed for op in space.ops])
    magnitudes = tf.gather_nd(tf.constant(table), tf.stack([op_ids, levels], axis=-1))
    slots = op_ids.shape[1]
    noise = _uniform([slots, batch, 3], seed)
    flip = tf.gather(signed, op_ids) & (tf.transpose(noise[:, :, 0]) < 0.5)
    magnitudes = tf.where(flip, -magnitudes, magnitudes)
    out = tf.cast(images, tf.float32)
    for k in range(slots):
        out = _apply_slot(out, space, op_ids[:, k], magnitudes[:, k], noise[k, :, 1:])
    out = tf.clip_by_value(out, 0.0, 255.0)
    return tf.cast(out, images.dtype)
