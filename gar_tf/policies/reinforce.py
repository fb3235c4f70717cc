"""REINFORCE from GAR rewards as pure functions (GAR_SPEC §2)."""

from __future__ import annotations

import tensorflow as tf


def standardise(rewards: tf.Tensor, groups: int = 1, epsilon: float = 1e-8) -> tf.Tensor:
    """``w = (r - mean(r)) / (std(r) + eps)`` within each of ``groups`` contiguous slices.

    ``std`` is the unbiased estimate, as in the reference; a slice of one
    example gets weight 0. The batch size must be divisible by ``groups``.
    """
    r = tf.reshape(tf.cast(rewards, tf.float32), [groups, -1])
    n = tf.cast(tf.shape(r)[1], tf.float32)
    centred = r - tf.reduce_mean(r, axis=1, keepdims=True)
    var = tf.reduce_sum(tf.square(centred), axis=1, keepdims=True) / tf.maximum(n - 1.0, 1.0)
    return tf.reshape(centred / (tf.sqrt(var) + epsilon), [-1])


def reinforce_loss(weights: tf.Tensor, log_probs: tf.Tensor) -> tf.Tensor:
    """``J = -mean_i(w_i log pi(a_i))``; its gradient raises the probability of
    actions with above-average reward (GAR_SPEC §2, sign per §7.5)."""
    return -tf.reduce_mean(tf.stop_gradient(weights) * log_probs)
