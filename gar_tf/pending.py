"""Step-t state kept in variables until the reward arrives at step t+1 (GAR_SPEC §7.1-7.2)."""

from __future__ import annotations

import tensorflow as tf


class PendingState:
    """A list of tensors stored between train steps, batch axis of any length.

    The variables are created the first time :meth:`store` is traced (lifted
    out of the graph), with an unknown batch axis so that a smaller final batch
    needs no masking. ``valid`` is False until something was stored, and after
    :meth:`reset` (start of each ``fit``).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.valid = tf.Variable(False, trainable=False, name=f"{name}_valid")
        self._variables: list[tf.Variable] | None = None
        self._signature: list[tuple] | None = None

    def reset(self) -> None:
        self.valid.assign(False)

    @staticmethod
    def _spec(t: tf.Tensor, batched: bool) -> tuple:
        """dtype and the shape kept static: all of it, or all but a batch axis 0."""
        shape = tuple(t.shape)
        return (t.dtype, (None, *shape[1:]) if batched and shape else shape)

    def _ensure(self, tensors: list[tf.Tensor], batched: list[bool]) -> list[tf.Variable]:
        signature = [self._spec(t, b) for t, b in zip(tensors, batched)]
        if self._signature is None:
            self._signature = signature
        elif signature != self._signature:
            raise ValueError(
                f"{self.name}: the tensors to keep between steps changed (from "
                f"{self._signature} to {signature}); GAR needs the same model graph "
                "and input shapes (except the batch size) at every step."
            )
        if self._variables is None:
            with tf.init_scope():
                self._variables = [
                    tf.Variable(
                        tf.zeros([0 if d is None else d for d in shape], dtype),
                        shape=tf.TensorShape(shape),
                        trainable=False,
                        name=f"{self.name}_{i}",
                    )
                    for i, (dtype, shape) in enumerate(signature)
                ]
        return self._variables

    def store(self, tensors: list[tf.Tensor], batched: list[bool], valid=True) -> None:
        """Keeps ``tensors`` (``batched``: whether axis 0 is the batch, of any size);
        ``valid`` says whether they may be rewarded next step."""
        for variable, t in zip(self._ensure(tensors, batched), tensors):
            variable.assign(t)
        self.valid.assign(valid)

    def read(self, like: list[tf.Tensor], batched: list[bool]) -> list[tf.Tensor]:
        """The stored tensors; ``like`` are this step's tensors of the same structure."""
        return [v.read_value() for v in self._ensure(like, batched)]
