"""``fit`` and ``evaluate`` under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585).

Keras 3 reduces each step's logs over workers with ``strategy.reduce("MEAN", v, axis=0)``,
which also averages along axis 0 and so fails on the scalar logs of every model
("Invalid reduction dimension 0 for input with 0 dimensions"). :func:`step_function`
builds the train (or test) function with the logs averaged over replicas only, as Keras
does on one worker. :func:`is_chief` and :func:`worker_path` tell each worker where its
callbacks write (docs/distributed.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import keras
import tensorflow as tf

Logs = dict[str, tf.Tensor]


def is_multi_worker(strategy: tf.distribute.Strategy | None) -> bool:
    """Whether ``strategy`` is a ``MultiWorkerMirroredStrategy`` (whose logs Keras cannot
    reduce); with one worker the function built here is equivalent to Keras'."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def mean_over_replicas(strategy: tf.distribute.Strategy, logs: Logs) -> Logs:
    """``(1/R) sum_r logs_r`` for each log of the R replicas of all workers, shapes kept
    (``axis=None``: Keras' ``axis=0`` would also average a log along its first axis)."""
    return tf.nest.map_structure(
        lambda v: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None), logs
    )


def step_function(model: keras.Model, step: Callable[[object], Logs]):
    """A train/test function as Keras builds it: ``function(iterator)`` runs up to
    ``model.steps_per_execution`` steps of ``step`` on the distributed iterator and returns
    the last step's logs averaged over replicas (:func:`mean_over_replicas`)."""
    strategy = model.distribute_strategy

    def one_step(data) -> Logs:
        return mean_over_replicas(strategy, strategy.run(step, args=(data,)))

    def next_step(iterator) -> Logs:
        return one_step(iterator.get_next())

    if not model.run_eagerly:
        one_step = tf.function(one_step, reduce_retracing=True, jit_compile=model.jit_compile)
        next_step = tf.function(next_step, reduce_retracing=True)

    def function(iterator) -> Logs:
        if not isinstance(iterator, (tf.data.Iterator, tf.distribute.DistributedIterator)):
            return _steps_on_batches(one_step, iterator, model.steps_per_execution)
        logs = next_step(iterator)  # OutOfRangeError here ends the epoch (Keras catches it)
        for _ in range(model.steps_per_execution - 1):
            try:
                logs = next_step(iterator)
            except tf.errors.OutOfRangeError:
                break
        return logs

    return function


def _steps_on_batches(one_step, batches, steps: int) -> Logs:
    """Keras' path for a Python iterable of batches: ``one_step`` on up to ``steps`` of them."""
    logs = None
    for _, data in zip(range(steps), batches):
        logs = one_step(data)
    if logs is None:
        raise StopIteration
    return logs


def _resolver(strategy: tf.distribute.Strategy | None):
    """The cluster resolver of ``strategy`` (a multi-worker one), else the one ``TF_CONFIG``
    describes (none set: a resolver without a task)."""
    strategy = strategy or tf.distribute.get_strategy()
    if is_multi_worker(strategy) and strategy.cluster_resolver is not None:
        return strategy.cluster_resolver
    return tf.distribute.cluster_resolver.TFConfigClusterResolver()


def _task(strategy: tf.distribute.Strategy | None = None) -> tuple[str | None, int]:
    """``(task type, task index)`` of this process in its cluster (``(None, 0)`` without one)."""
    resolver = _resolver(strategy)
    return resolver.task_type or None, int(resolver.task_id or 0)


def is_chief(strategy: tf.distribute.Strategy | None = None) -> bool:
    """Whether this process is the chief: task ``chief``, or ``worker`` 0 in a cluster
    without one; True outside a cluster. ``strategy``: a ``MultiWorkerMirroredStrategy``
    (default: the current one, else the cluster in ``TF_CONFIG``)."""
    task_type, index = _task(strategy)
    if task_type in (None, "chief"):
        return True
    has_chief = "chief" in _resolver(strategy).cluster_spec().as_dict()
    return task_type == "worker" and index == 0 and not has_chief


def worker_path(path: str | os.PathLike, strategy: tf.distribute.Strategy | None = None) -> str:
    """``path`` on the chief; ``<parent>/<task>_<index>/<name>`` on the other workers, so
    that each worker's ``ModelCheckpoint`` / ``BackupAndRestore`` writes its own files."""
    path = os.fspath(path)
    if is_chief(strategy):
        return path
    task_type, index = _task(strategy)
    parent, name = os.path.split(path.rstrip(os.sep))
    return os.path.join(parent, f"{task_type}_{index}", name)
