"""REINFORCE from GAR rewards as pure functions (docs/method.md §5)."""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf


def _identity(tensors: list[tf.Tensor]) -> list[tf.Tensor]:
    return tensors


def standardise(
    rewards: tf.Tensor,
    groups: int = 1,
    epsilon: float = 1e-8,
    all_reduce: Callable[[list[tf.Tensor]], list[tf.Tensor]] = _identity,
) -> tf.Tensor:
    """``w = (r - mean(r)) / (std(r) + eps)`` within each of ``groups`` contiguous slices.

    Example i belongs to slice ``i * groups // B`` (slices differ by at most one
    example when B is not a multiple of ``groups``). ``std`` is the unbiased
    estimate, as in the reference; a slice of one example gets weight 0.
    ``all_reduce`` sums the per-slice counts, sums and squares over replicas, so
    that slice g of every replica is standardised as one group (docs/method.md §8).
    """
    r = tf.cast(rewards, tf.float32)
    n = tf.shape(r)[0]
    slices = tf.range(n) * groups // tf.maximum(n, 1)
    count, total = all_reduce(
        [
            tf.math.unsorted_segment_sum(tf.ones_like(r), slices, groups),
            tf.math.unsorted_segment_sum(r, slices, groups),
        ]
    )
    centred = r - tf.gather(total / tf.maximum(count, 1.0), slices)
    (var,) = all_reduce([tf.math.unsorted_segment_sum(tf.square(centred), slices, groups)])
    std = tf.sqrt(var / tf.maximum(count - 1.0, 1.0))
    return centred / (tf.gather(std, slices) + epsilon)


def reinforce_loss(weights: tf.Tensor, log_probs: tf.Tensor, count=None) -> tf.Tensor:
    """``J = -(1/N) sum_i w_i log pi(a_i)``, N = ``count`` (default: the batch size;
    the global batch size when each replica sums its own examples); its gradient raises
    the probability of actions with above-average reward (docs/method.md §5, including the sign)."""
    total = tf.reduce_sum(tf.stop_gradient(weights) * log_probs)
    count = tf.cast(tf.size(weights) if count is None else count, total.dtype)
    return -total / count
