"""Rule for Embedding: ``z = E[ids]`` so ``dz = V[ids]`` (docs/method.md §2)."""

import math

from keras import layers, ops

from gar_tf.alignment.registry import RuleRegistry

RULES = RuleRegistry()


def _flops(layer, input_shape, output_shape) -> int:
    """One example's tangent is a gather: one read per output element."""
    return math.prod(output_shape)


@RULES.register(layers.Embedding, weights=("embeddings",), activation=None, flops=_flops)
def _embedding(layer, inputs, direction, weights):
    ids = ops.cast(inputs, "int32")
    return {"embeddings": ops.take(direction["embeddings"], ids, axis=0)}
