"""Rules for Dense and EinsumDense: ``z = x W + b`` so ``dz = x V_W + V_b`` (docs/method.md §2)."""

from keras import layers, ops

from gar_tf.alignment.registry import RuleRegistry

RULES = RuleRegistry()


@RULES.register(layers.Dense, weights=("kernel", "bias"))
def _dense(layer, inputs, direction, weights):
    tangents = {}
    if "kernel" in direction:
        tangents["kernel"] = ops.matmul(inputs, direction["kernel"])
    if "bias" in direction:
        tangents["bias"] = direction["bias"]
    return tangents


@RULES.register(layers.EinsumDense, weights=("kernel", "bias"))
def _einsum_dense(layer, inputs, direction, weights):
    tangents = {}
    if "kernel" in direction:
        tangents["kernel"] = ops.einsum(layer.equation, inputs, direction["kernel"])
    if "bias" in direction:
        tangents["bias"] = direction["bias"]
    return tangents
