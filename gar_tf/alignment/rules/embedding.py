"""Rule for Embedding: ``z = E[ids]`` so ``dz = V[ids]`` (docs/method.md §2)."""

from keras import layers, ops

from gar_tf.alignment.registry import RuleRegistry

RULES = RuleRegistry()


@RULES.register(layers.Embedding, weights=("embeddings",), activation=None)
def _embedding(layer, inputs, direction, weights):
    ids = ops.cast(inputs, "int32")
    return {"embeddings": ops.take(direction["embeddings"], ids, axis=0)}
