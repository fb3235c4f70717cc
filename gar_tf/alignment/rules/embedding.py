"""Rule for Embedding: ``z = E[ids]`` so ``dz = V[ids]`` (GAR_SPEC §1.2)."""

from keras import layers, ops

from gar_tf.alignment.registry import register_rule


@register_rule(layers.Embedding, weights=("embeddings",), activation=None)
def _embedding(layer, inputs, direction, weights):
    ids = ops.cast(inputs, "int32")
    return {"embeddings": ops.take(direction["embeddings"], ids, axis=0)}
