"""Step-t state kept in variables until the reward arrives at step t+1 (docs/method.md §7).

What is kept is a named structure ``{"examples": ..., "fixed": ...}`` of tensors
(any ``tf.nest`` of dicts and lists): every tensor under ``"examples"`` has the
batch on axis 0, of any length; tensors under ``"fixed"`` keep their whole shape.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import tensorflow as tf

# Under tf.distribute each replica keeps its own batch t (docs/method.md §8): sync-on-read
# variables hold one independent copy per replica; outside a replica, the first is read.
_PER_REPLICA = dict(
    synchronization=tf.VariableSynchronization.ON_READ,
    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
)
BATCHED = "examples"  # the part of the structure whose tensors have the batch on axis 0
FIXED = "fixed"


def _per_replica_variable(value, name: str, shape=None) -> tf.Variable:
    return tf.Variable(value, shape=shape, trainable=False, name=name, **_PER_REPLICA)


def _keyed(structure) -> list[tuple[str, tf.Tensor]]:
    """``[(path, tensor)]`` in ``tf.nest`` order; paths like ``examples.calls.0.inputs.0``."""
    return [(".".join(map(str, p)), t) for p, t in keras.tree.flatten_with_path(structure)]


class PendingState:
    """A named structure of tensors stored between train steps.

    The variables are created the first time :meth:`store` or :meth:`read` is
    traced (lifted out of the graph), with an unknown batch axis for the
    ``"examples"`` tensors so that a smaller final batch needs no masking.
    ``valid`` is False until something was stored, and after :meth:`reset` (start
    of each ``fit``). The initial values take the batch size of the first batch when
    it is static: XLA cannot change a variable's shape, so under ``jit_compile``
    every batch must have that size.

    Two buffers alternate: a step reads the one written last and writes the
    other. In a ``tf.function``, the *shape* of a variable read is not ordered
    with a later assignment in the same step (only its value is), so a smaller
    batch written after a read would change the shapes seen by the read, e.g. in
    the REINFORCE gradient; with two buffers no step reads what it writes.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.valid = _per_replica_variable(False, f"{name}_valid")
        self._last = _per_replica_variable(0, f"{name}_last")
        self._buffers: tuple[list[tf.Variable], list[tf.Variable]] | None = None
        self._signature: list[tuple] | None = None
        self._restored: dict[str, np.ndarray] | None = None

    def reset(self) -> None:
        self.valid.assign(False)

    @property
    def nbytes(self) -> int:
        """Bytes held by both buffers (0 before the first step): the memory GAR keeps
        between steps, for the last stored batch size."""
        if self._buffers is None:
            return 0
        # The declared shapes leave the batch axis open: read each variable's own size.
        return sum(int(tf.size(v)) * v.dtype.size for buffer in self._buffers for v in buffer)

    def checkpoint(self) -> dict[str, np.ndarray]:
        """``{"valid": ..., path: value}`` of the last stored tensors, for a checkpoint.
        With several replicas (one state each) only ``valid=False`` is kept."""
        valid = bool(self.valid.numpy()) and tf.distribute.get_strategy().num_replicas_in_sync == 1
        if not valid or self._buffers is None:
            return {"valid": np.array(False)}
        latest = self._buffers[int(self._last.numpy())]
        keys = [key for key, _, _ in self._signature]
        return {"valid": np.array(True), **{k: v.numpy() for k, v in zip(keys, latest)}}

    def restore(self, values: dict[str, np.ndarray]) -> None:
        """Loads what :meth:`checkpoint` returned; before the variables exist (a new
        process), they are created from it at the first step. A state that does not
        fit this model is dropped with a warning (the next step gets no reward)."""
        valid = bool(np.asarray(values.get("valid", False)))
        tensors = {k: np.asarray(v) for k, v in values.items() if k != "valid"}
        if valid and self._buffers is not None:
            if self._fits(tensors):
                self._last.assign(0)
                for (key, _, _), variable in zip(self._signature, self._buffers[0]):
                    variable.assign(tensors[key])
            else:
                self._warn_unfit()
                valid = False
        self._restored = tensors if valid and self._buffers is None else None
        self.valid.assign(valid)

    def store(self, structure, valid=True) -> None:
        """Keeps ``structure``; ``valid`` says whether it may be rewarded next step."""
        keyed = _keyed(structure)
        buffers = self._ensure(keyed)

        def write(buffer):
            for variable, (_, t) in zip(buffer, keyed):
                variable.assign(t)

        tf.cond(self._last == 0, lambda: write(buffers[1]), lambda: write(buffers[0]))
        with tf.control_dependencies([t for _, t in keyed]):  # a failed step keeps the last
            self._last.assign(1 - self._last)
            self.valid.assign(valid)

    def read(self, like):
        """The stored structure; ``like`` is this step's structure of the same shape."""
        buffers = self._ensure(_keyed(like))
        flat = tf.cond(
            self._last == 0,
            lambda: [v.read_value() for v in buffers[0]],
            lambda: [v.read_value() for v in buffers[1]],
        )
        return tf.nest.pack_sequence_as(like, flat)

    @staticmethod
    def _spec(key: str, t: tf.Tensor) -> tuple:
        """Path, dtype and the shape kept static: all of it, or all but a batch axis 0."""
        shape = tuple(t.shape)
        if key.split(".")[0] == BATCHED and shape:
            shape = (None, *shape[1:])
        return key, t.dtype, shape

    def _ensure(self, keyed: list[tuple[str, tf.Tensor]]) -> tuple[list, list]:
        signature = [self._spec(k, t) for k, t in keyed]
        if self._signature is None:
            self._signature = signature
        elif signature != self._signature:
            raise ValueError(
                f"{self.name}: the tensors to keep between steps changed (from "
                f"{self._signature} to {signature}); GAR needs the same model graph "
                "and input shapes (except the batch size) at every step."
            )
        if self._buffers is None:
            initial = self._initial_values()
            with tf.init_scope():
                self._buffers = tuple(
                    [
                        _per_replica_variable(
                            initial[key]
                            if buffer == 0 and initial
                            else tf.zeros([d or 0 for d in t.shape], dtype),
                            f"{self.name}_{buffer}_{i}",
                            shape=tf.TensorShape(shape),
                        )
                        for i, ((key, dtype, shape), (_, t)) in enumerate(zip(signature, keyed))
                    ]
                    for buffer in (0, 1)
                )
        return self._buffers

    def _fits(self, values: dict[str, np.ndarray]) -> bool:
        return set(values) == {key for key, _, _ in self._signature} and all(
            np.dtype(values[key].dtype) == dtype.as_numpy_dtype
            and len(values[key].shape) == len(shape)
            and all(d is None or d == n for d, n in zip(shape, values[key].shape))
            for key, dtype, shape in self._signature
        )

    def _warn_unfit(self) -> None:
        warnings.warn(
            f"{self.name}: the restored pending state does not fit this model; the "
            "first step after the restore gets no reward.",
            stacklevel=4,
        )

    def _initial_values(self) -> dict[str, np.ndarray] | None:
        """The restored tensors if they fit the signature, else None (and not valid)."""
        restored, self._restored = self._restored, None
        if restored is None:
            return None
        if not self._fits(restored):
            self._warn_unfit()
            with tf.init_scope():
                self.valid.assign(False)
            return None
        return restored
