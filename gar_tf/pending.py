"""Step-t state kept in variables until the reward arrives at step t+1 (GAR_SPEC §7.1-7.2)."""

from __future__ import annotations

import warnings

import numpy as np
import tensorflow as tf

# Under tf.distribute each replica keeps its own batch t (GAR_SPEC §1.4): sync-on-read
# variables hold one independent copy per replica; outside a replica, the first is read.
_PER_REPLICA = dict(
    synchronization=tf.VariableSynchronization.ON_READ,
    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
)


def _per_replica_variable(value, name: str, shape=None) -> tf.Variable:
    return tf.Variable(value, shape=shape, trainable=False, name=name, **_PER_REPLICA)


class PendingState:
    """A list of tensors stored between train steps, batch axis of any length.

    The variables are created the first time :meth:`store` is traced (lifted
    out of the graph), with an unknown batch axis so that a smaller final batch
    needs no masking. ``valid`` is False until something was stored, and after
    :meth:`reset` (start of each ``fit``). The initial values take the batch size
    of the first batch when it is static: XLA cannot change a variable's shape, so
    under ``jit_compile`` every batch must have that size.

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
        self._restored: list[np.ndarray] | None = None

    def reset(self) -> None:
        self.valid.assign(False)

    def checkpoint(self) -> dict[str, np.ndarray]:
        """The last stored tensors and ``valid``, for a checkpoint: ``{"valid": ..., "0":
        ...}``. With several replicas (one state each) only ``valid=False`` is kept."""
        valid = bool(self.valid.numpy()) and tf.distribute.get_strategy().num_replicas_in_sync == 1
        if not valid or self._buffers is None:
            return {"valid": np.array(False)}
        latest = self._buffers[int(self._last.numpy())]
        return {"valid": np.array(True), **{str(i): v.numpy() for i, v in enumerate(latest)}}

    def restore(self, values: dict[str, np.ndarray]) -> None:
        """Loads what :meth:`checkpoint` returned; before the variables exist (a new
        process), they are created from it at the first step."""
        valid = bool(np.asarray(values.get("valid", False)))
        tensors = [np.asarray(values[str(i)]) for i in range(len(values) - 1)] if valid else []
        if valid and self._buffers is not None:
            if len(tensors) != len(self._buffers[0]):
                valid = False
            else:
                self._last.assign(0)
                for variable, value in zip(self._buffers[0], tensors):
                    variable.assign(value)
        self._restored = tensors if valid and self._buffers is None else None
        self.valid.assign(valid)

    @staticmethod
    def _spec(t: tf.Tensor, batched: bool) -> tuple:
        """dtype and the shape kept static: all of it, or all but a batch axis 0."""
        shape = tuple(t.shape)
        return (t.dtype, (None, *shape[1:]) if batched and shape else shape)

    def _ensure(self, tensors: list[tf.Tensor], batched: list[bool]) -> tuple[list, list]:
        signature = [self._spec(t, b) for t, b in zip(tensors, batched)]
        if self._signature is None:
            self._signature = signature
        elif signature != self._signature:
            raise ValueError(
                f"{self.name}: the tensors to keep between steps changed (from "
                f"{self._signature} to {signature}); GAR needs the same model graph "
                "and input shapes (except the batch size) at every step."
            )
        if self._buffers is None:
            initial = self._initial_values(signature)
            with tf.init_scope():
                self._buffers = tuple(
                    [
                        _per_replica_variable(
                            initial[i]
                            if buffer == 0 and initial
                            else tf.zeros([d or 0 for d in tensors[i].shape], dtype),
                            f"{self.name}_{buffer}_{i}",
                            shape=tf.TensorShape(shape),
                        )
                        for i, (dtype, shape) in enumerate(signature)
                    ]
                    for buffer in (0, 1)
                )
        return self._buffers

    def _initial_values(self, signature: list[tuple]) -> list[np.ndarray] | None:
        """The restored tensors if they fit ``signature``, else None (and not valid)."""
        restored, self._restored = self._restored, None
        if restored is None:
            return None
        fits = len(restored) == len(signature) and all(
            np.dtype(value.dtype) == dtype.as_numpy_dtype
            and len(value.shape) == len(shape)
            and all(d is None or d == n for d, n in zip(shape, value.shape))
            for value, (dtype, shape) in zip(restored, signature)
        )
        if not fits:
            warnings.warn(
                f"{self.name}: the restored pending state does not fit this model; the "
                "first step after the restore gets no reward.",
                stacklevel=3,
            )
            with tf.init_scope():
                self.valid.assign(False)
            return None
        return restored

    def store(self, tensors: list[tf.Tensor], batched: list[bool], valid=True) -> None:
        """Keeps ``tensors`` (``batched``: whether axis 0 is the batch, of any size);
        ``valid`` says whether they may be rewarded next step."""
        buffers = self._ensure(tensors, batched)

        def write(buffer):
            for variable, t in zip(buffer, tensors):
                variable.assign(t)

        tf.cond(self._last == 0, lambda: write(buffers[1]), lambda: write(buffers[0]))
        with tf.control_dependencies(tensors):  # a step that fails keeps the last state
            self._last.assign(1 - self._last)
            self.valid.assign(valid)

    def read(self, like: list[tf.Tensor], batched: list[bool]) -> list[tf.Tensor]:
        """The stored tensors; ``like`` are this step's tensors of the same structure."""
        buffers = self._ensure(like, batched)
        return tf.cond(
            self._last == 0,
            lambda: [v.read_value() for v in buffers[0]],
            lambda: [v.read_value() for v in buffers[1]],
        )
