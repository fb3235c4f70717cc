"""REINFORCE from GAR rewards as pure functions (GAR_SPEC §2)."""

from __future__ import annotations

import tensorflow as tf


def standardise(rewards: tf.Tensor, groups: int = 1, epsilon: float = 1e-8) -> tf.Tensor:
    """``w = (r - mean(r)) / (std(r) + eps)`` within each of ``groups`` contiguous slices.

    Example i belongs to slice ``i * groups // B`` (slices differ by at most one
    example when B is not a multiple of ``groups``). ``std`` is the unbiased
    estimate, as in the reference; a slice of one example gets weight 0.
    """
    r = tf.cast(rewards, tf.float32)
    n = tf.shape(r)[0]
    slices = tf.range(n) * groups // tf.maximum(n, 1)
    count = tf.math.unsorted_segment_sum(tf.ones_like(r), slices, groups)
    mean = tf.math.unsorted_segment_sum(r, slices, groups) / tf.maximum(count, 1.0)
    centred = r - tf.gather(mean, slices)
    var = tf.math.unsorted_segment_sum(tf.square(centred), slices, groups)
    std = tf.sqrt(var / tf.maximum(count - 1.0, 1.0))
    return centred / (tf.gather(std, slices) + epsilon)


def reinforce_loss(weights: tf.Tensor, log_probs: tf.Tensor) -> tf.Tensor:
    """``J = -mean_i(w_i log pi(a_i))``; its gradient raises the probability of
    actions with above-average reward (GAR_SPEC §2, sign per §7.5)."""
    return -tf.reduce_mean(tf.stop_gradient(weights) * log_probs)
