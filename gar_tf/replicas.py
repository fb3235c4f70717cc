"""Cross-replica pieces of a GAR step under ``tf.distribute`` (docs/method.md §8).

Called in a replica context (inside ``train_step``). Without a strategy they
reduce to the identity and a plain ``tf.cond``, so one code path serves both.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from gar_tf._compat import strategy_supports_no_merge_call


def num_replicas() -> int:
    """Replicas in sync under the current strategy (1 without one)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def replica_id() -> tf.Tensor:
    """This replica's index in its sync group (0 without a strategy)."""
    context = tf.distribute.get_replica_context()
    index = 0 if context is None else context.replica_id_in_sync_group
    return tf.cast(index, tf.int32)


def all_reduce_sum(tensors: list[tf.Tensor]) -> list[tf.Tensor]:
    """``sum over replicas`` of each tensor (they are returned as is with one replica)."""
    context = tf.distribute.get_replica_context()
    if context is None or num_replicas() == 1 or not tensors:
        return list(tensors)
    return list(context.all_reduce(tf.distribute.ReduceOp.SUM, list(tensors)))


def apply_if(
    condition: tf.Tensor,
    optimizer: keras.optimizers.Optimizer,
    grads: list[tf.Tensor],
    variables: list,
) -> None:
    """``optimizer.apply(grads, variables)`` when ``condition`` (the same on every
    replica), else nothing; ``grads`` are already summed over replicas.

    Keras sums gradients over replicas inside ``apply``, so each replica passes
    ``grads / R``. Strategies that synchronise by ``merge_call`` cannot run it under
    a ``tf.cond`` in a replica context: the condition is then taken in the
    cross-replica context, as Keras' ``LossScaleOptimizer`` does.
    """
    replicas = num_replicas()
    if replicas > 1:
        grads = [g / replicas for g in grads]

    def apply(grads):
        optimizer.apply(grads, variables)

    context = tf.distribute.get_replica_context()
    if context is None or not tf.distribute.has_strategy() or strategy_supports_no_merge_call():
        tf.cond(condition, lambda: apply(grads), lambda: None)
        return

    def cross_replica(strategy, condition, grads):
        first = strategy.experimental_local_results(condition)[0]
        tf.cond(
            first,
            lambda: strategy.extended.call_for_each_replica(apply, args=(grads,)),
            lambda: None,
        )

    context.merge_call(cross_replica, args=(condition, grads))
