"""The evidence rule of a learned categorical as pure functions (docs/method.md §6, §10).

Used for the splits of a mixture and for the ops of an augmentation policy. Per category k,
each step adds the sum ``S_k`` and count ``n_k`` of the standardised rewards of the examples
drawn from k; the statistics are discounted by ``decay`` per step. From them the
mean advantage ``a_k`` with a batch-clustered standard error ``se_k``, the part of its gap to
the best split beyond ``confidence`` standard errors (once a split's statistics span
``min_steps`` effective steps), and the logits ``z_k = shrunk_k / T``
(T raised where needed so that no logit is more than ``max_log_ratio`` below the best).
Statistics may carry leading axes (one categorical per row, e.g. per ensemble member): the
comparisons are along the last axis.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

#: The rule's options and their defaults (chosen for split mixtures: docs/split_mixture.md).
OPTIONS = {
    "temperature": 0.1,
    "confidence": 1.75,
    "horizon": 300.0,
    "max_log_ratio": 3.0,
    "min_steps": 30.0,
}
_BOUNDS = {
    "temperature": (lambda v: v > 0, "> 0"),
    "confidence": (lambda v: v >= 0, ">= 0"),
    "horizon": (lambda v: v > 1, "> 1 (1 would keep one step: no spread between steps)"),
    "max_log_ratio": (lambda v: v > 0, "> 0 (inf: no cap)"),
    "min_steps": (lambda v: v >= 1, ">= 1 (1: from the second step, when se is first finite)"),
}

#: ``G`` within this of 1 counts as one step (float32 round-off of ``N^2 / NN``); two equal
#: steps give ``G = (1 + g)^2 / (1 + g^2) > 1`` for any horizon > 1 (decay g > 0).
_ONE_STEP = 1e-3

#: Halvings of ``(0, 1)`` in :func:`student_t_quantile`: float32 resolution of ``x``.
_BISECTIONS = 30

#: The discounted statistics per split, in the order :func:`accumulate` keeps them.
STATISTICS = ("count", "total", "total_sq", "total_count", "count_sq")


def options(**given) -> dict[str, float]:
    """The rule's options with defaults for those not given (or None); raises for an
    unknown option or a value out of range."""
    unknown = sorted(set(given) - set(OPTIONS))
    if unknown:
        raise ValueError(
            f"Unknown evidence option(s) {unknown}: the rule takes {', '.join(OPTIONS)}."
        )
    checked = {}
    for key, default in OPTIONS.items():
        value = default if given.get(key) is None else given[key]
        ok, bound = _BOUNDS[key]
        number = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
        finite = number and (np.isfinite(value) or (key == "max_log_ratio" and value == np.inf))
        if not finite or not ok(value):
            raise ValueError(f"{key} must be a number {bound}, got {value!r}.")
        checked[key] = float(value)
    most = 2.0 * checked["horizon"] - 1.0  # G of infinitely many equal steps: (1 + g) / (1 - g)
    if checked["min_steps"] > most:
        raise ValueError(
            f"min_steps={checked['min_steps']:g} can never be reached with "
            f"horizon={checked['horizon']:g}: the statistics span at most 2 H - 1 = {most:g} "
            "effective steps. Lower min_steps or raise horizon."
        )
    return checked


def step_sums(weights: tf.Tensor, ids: tf.Tensor, k: int) -> tuple[tf.Tensor, tf.Tensor]:
    """``(S, n)``: ``S_k = sum_{i: s_i = k} w_i`` and ``n_k = #{i: s_i = k}`` of one step."""
    ids = tf.cast(ids, tf.int32)
    weights = tf.cast(weights, tf.float32)
    return (
        tf.math.unsorted_segment_sum(weights, ids, k),
        tf.math.unsorted_segment_sum(tf.ones_like(weights), ids, k),
    )


def accumulate(
    stats: list[tf.Tensor], sums: tf.Tensor, counts: tf.Tensor, decay: float
) -> list[tf.Tensor]:
    """Discounted sums over steps t with weights ``g^(T-t)``, ``g = decay``:
    ``N = sum g n``, ``M = sum g S``, ``SS = sum g^2 S^2``, ``SN = sum g^2 S n``,
    ``NN = sum g^2 n^2`` (docs/method.md §10)."""
    count, total, total_sq, total_count, count_sq = stats
    g, g2 = decay, decay * decay
    return [
        g * count + counts,
        g * total + sums,
        g2 * total_sq + sums * sums,
        g2 * total_count + sums * counts,
        g2 * count_sq + counts * counts,
    ]


def advantage(stats: list[tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """``(a, se, G - 1)``: ``a = M / N``, the ratio estimator's variance clustered by step
    with the small-sample factor ``G / (G - 1)``, ``G = N^2 / NN`` the effective number of
    steps: ``se^2 = G / (G - 1) (SS - 2 a SN + a^2 NN) / N^2``, and the degrees of freedom
    ``G - 1`` of that estimate (docs/method.md §10). ``se = inf`` and ``G - 1 = 0`` until a
    split has been drawn in two steps (one step says nothing about the spread between steps)."""
    count, total, total_sq, total_count, count_sq = stats
    seen = count > 0
    n = tf.where(seen, count, 1.0)
    a = tf.where(seen, total / n, 0.0)
    steps = n * n / tf.where(seen, count_sq, 1.0)
    spread = tf.logical_and(seen, steps > 1.0 + _ONE_STEP)
    factor = steps / tf.where(spread, steps - 1.0, 1.0)
    var = tf.maximum(total_sq - 2.0 * a * total_count + a * a * count_sq, 0.0) / (n * n)
    se = tf.where(spread, tf.sqrt(factor * var), float("inf"))
    return a, se, tf.where(spread, steps - 1.0, 0.0)


def student_t_quantile(confidence: float, dof: tf.Tensor) -> tf.Tensor:
    """``t_k``: Student's t quantile with ``dof`` degrees of freedom at the normal level
    ``Phi(c)``, ``c = confidence``, so a bound of ``t_k se_k`` is as sure with an estimated
    ``se_k`` as ``c se`` with a known one (docs/method.md §10). ``dof > 0``; by bisection of
    ``I_x(dof/2, 1/2) = 2 (1 - Phi(c))``, ``x = dof / (dof + t^2)``."""
    dof = tf.convert_to_tensor(dof, tf.float32)
    tail = tf.math.erfc(tf.constant(confidence / np.sqrt(2.0), tf.float32))
    low, high = tf.zeros_like(dof), tf.ones_like(dof)
    for _ in range(_BISECTIONS):
        mid = 0.5 * (low + high)
        below = tf.math.betainc(0.5 * dof, tf.fill(tf.shape(dof), 0.5), mid) < tail
        low, high = tf.where(below, mid, low), tf.where(below, high, mid)
    x = 0.5 * (low + high)
    return tf.sqrt(dof * (1.0 - x) / x)


def shrunk_advantage(
    a: tf.Tensor, se: tf.Tensor, dof: tf.Tensor, confidence: float, min_steps: float
) -> tf.Tensor:
    """``min(a_k + t_k se_k - max_j (a_j - t_j se_j), 0)``, ``t_k`` the Student's t
    quantile of ``confidence`` at split k's degrees of freedom (:func:`student_t_quantile`):
    how far split k's upper confidence bound lies below the best lower bound, i.e. the part
    of its gap to the best split that noise does not explain. Splits whose statistics span
    fewer than ``min_steps`` effective steps (``G_k = dof_k + 1``) are not compared yet:
    0, and they do not set the best (docs/method.md §10)."""
    seen = tf.logical_and(tf.math.is_finite(se), dof >= min_steps - 1.0)
    multiplier = student_t_quantile(confidence, tf.where(seen, dof, 1.0))
    margin = tf.where(seen, multiplier * se, 0.0)
    best = tf.reduce_max(tf.where(seen, a - margin, -float("inf")), -1, keepdims=True)
    gap = tf.minimum(a + margin - best, 0.0)
    return tf.where(tf.logical_and(seen, tf.math.is_finite(best)), gap, 0.0)


def step(
    stats: list[tf.Tensor], sums: tf.Tensor, counts: tf.Tensor, apply, options: dict
) -> tuple[list[tf.Tensor], tf.Tensor]:
    """One step of the rule: the statistics with ``(sums, counts)`` added (:func:`accumulate`,
    decay ``1 - 1/horizon``; unchanged where ``apply`` is False) and the logits of them
    (:func:`evidence_logits` with the other :data:`OPTIONS`)."""
    new = accumulate(stats, sums, counts, 1.0 - 1.0 / options["horizon"])
    new = [tf.where(apply, n, o) for n, o in zip(new, stats)]
    return new, evidence_logits(new, options)


def gaps(stats: list[tf.Tensor], options: dict) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """``(a, se, d)``: :func:`advantage`'s mean and standard error and the shrunk gap d
    (:func:`shrunk_advantage` with ``options``' confidence and min_steps; docs/method.md §10)."""
    a, se, dof = advantage(stats)
    return a, se, shrunk_advantage(a, se, dof, options["confidence"], options["min_steps"])


def evidence_logits(stats: list[tf.Tensor], options: dict) -> tf.Tensor:
    """``z = d / max(T, -min(d) / L)`` for the shrunk gaps d (:func:`gaps`), so ``p ∝ exp(z)``
    with log-probabilities linear in the gap and at most ``L = max_log_ratio`` below the best
    split's (docs/method.md §10)."""
    gap = gaps(stats, options)[2]
    bound = -tf.reduce_min(gap, -1, keepdims=True) / options["max_log_ratio"]
    return gap / tf.maximum(options["temperature"], bound)
