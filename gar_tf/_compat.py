"""The one door to private Keras / TensorFlow API: every private access of gar_tf is here.

Each accessor checks that what it reaches for exists and otherwise raises
:class:`IncompatibleVersionError`, which names the missing piece and the tested
versions (``setup.py``), instead of an ``AttributeError`` deep in a train step.
``tests/test_compat.py`` calls every accessor, so a Keras/TF upgrade that removes
one fails there first.
"""

from __future__ import annotations

import importlib

import keras
import tensorflow as tf

#: The release series gar_tf is tested with; keep in step with ``setup.py``.
TESTED = "tensorflow>=2.16,<2.22 and keras>=3.15,<3.16"


class IncompatibleVersionError(RuntimeError):
    """A private Keras/TF piece gar_tf relies on is missing from the installed version."""


def _missing(what: str) -> IncompatibleVersionError:
    return IncompatibleVersionError(
        f"gar_tf needs {what}, which the installed Keras {keras.__version__} / "
        f"TensorFlow {tf.__version__} does not provide. gar_tf is tested with {TESTED}: "
        "install versions in that range."
    )


def _attribute(obj, name: str, what: str):
    try:
        return getattr(obj, name)
    except AttributeError:
        raise _missing(what) from None


def _private(module: str, name: str):
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise _missing(f"{module}.{name}") from None


# --- Keras model internals used by GARModel.train_step -----------------------------------------


def compute_loss(model: keras.Model, x, y, y_pred, sample_weight, training: bool = True):
    """``model.compute_loss`` as Keras' own train step calls it (``Trainer._compute_loss``
    also serves user overrides of ``compute_loss`` without a ``training`` argument)."""
    fn = _attribute(model, "_compute_loss", "keras.Model._compute_loss")
    return fn(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)


def compiled_loss(model: keras.Model, y, y_pred, sample_weight):
    """The compiled loss alone (no regularisation losses), weighted by ``sample_weight``."""
    fn = _attribute(model, "_compile_loss", "keras.Model._compile_loss")
    if fn is None:
        raise ValueError("The model has no compiled loss: call compile(loss=...) first.")
    return fn(y, y_pred, sample_weight)


def loss_tracker(model: keras.Model) -> keras.metrics.Metric:
    """The ``loss`` metric Keras reports in the logs."""
    return _attribute(model, "_loss_tracker", "keras.Model._loss_tracker")


def unscale_loss_for_distribution(loss: tf.Tensor) -> tf.Tensor:
    """Undoes Keras' per-replica scaling of a loss (``loss * replicas``)."""
    return _private("keras.src.losses.loss", "unscale_loss_for_distribution")(loss)


def model_strategy(model: keras.Model) -> tf.distribute.Strategy | None:
    """The strategy the model was created under, or None without one."""
    return _attribute(model, "_distribute_strategy", "keras.Model._distribute_strategy")


def optimizer_strategy(optimizer: keras.optimizers.Optimizer) -> tf.distribute.Strategy | None:
    """The strategy a Keras optimizer was created under (None if unknown)."""
    return getattr(optimizer, "_distribution_strategy", None)


class SymbolicBuildFromFirstReplica:
    """Mixin for a ``keras.Model`` subclass: overrides Keras' private build hooks.

    Under a ``tf.distribute`` strategy Keras builds the model from one batch, which it
    first averages over replicas; ``MultiWorkerMirroredStrategy`` cannot
    (keras-team/keras#20585). Shapes are all the build needs: take the first local
    replica's batch. :meth:`batch_for_build` lets the model drop parts of a batch
    the build does not read.
    """

    def batch_for_build(self, data_batch):
        return data_batch

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None and data_batch is None and model_strategy(self):
            strategy = self.distribute_strategy
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda v: _first_replica(strategy, v), next(batches)
                )
                break
            iterator = None
        build = _attribute(super(), "_maybe_symbolic_build", "Trainer._maybe_symbolic_build")
        return build(iterator=iterator, data_batch=data_batch)

    def _symbolic_build(self, iterator=None, data_batch=None):
        if data_batch is not None:
            data_batch = self.batch_for_build(data_batch)
        build = _attribute(super(), "_symbolic_build", "Trainer._symbolic_build")
        return build(iterator=iterator, data_batch=data_batch)


def _first_replica(strategy: tf.distribute.Strategy, value):
    """The first local replica's component of a distributed value, else the value."""
    if isinstance(value, tf.distribute.DistributedValues):
        return strategy.experimental_local_results(value)[0]
    return value


# --- Layers -------------------------------------------------------------------------------------


def sublayers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    """The layers tracked directly by ``layer`` (one level down)."""
    return list(_attribute(layer, "_layers", "keras.layers.Layer._layers"))


def causal_padding(layer: keras.layers.Layer):
    """The padding a causal Conv1D applies before a "valid" convolution."""
    return _attribute(layer, "_compute_causal_padding", "Conv1D._compute_causal_padding")()


def keras_logits(t: tf.Tensor) -> tf.Tensor | None:
    """The logits Keras attaches to a softmax/sigmoid output (its losses read them)."""
    return getattr(t, "_keras_logits", None)


def autocast_scope(dtype):
    """The variable autocast scope ``Layer.__call__`` opens for mixed precision."""
    return _private("keras.src.backend", "AutocastScope")(dtype)


def in_stateless_scope() -> bool:
    """Whether a ``keras.StatelessScope`` is open (variables read from its mapping)."""
    return _private("keras.src.backend.common.stateless_scope", "in_stateless_scope")()


# --- tf.distribute ------------------------------------------------------------------------------


def strategy_supports_no_merge_call() -> bool:
    """Whether the current strategy synchronises without ``merge_call``."""
    internal = _attribute(tf, "__internal__", "tf.__internal__")
    distribute = _attribute(internal, "distribute", "tf.__internal__.distribute")
    fn = _attribute(
        distribute,
        "strategy_supports_no_merge_call",
        "tf.__internal__.distribute.strategy_supports_no_merge_call",
    )
    return fn()
