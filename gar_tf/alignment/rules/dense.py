"""Rules for Dense and EinsumDense: ``z = x W + b`` so ``dz = x V_W + V_b`` (docs/method.md §2).

Each example's gradient is ``g_i[W] = sum_positions x_i^T delta_i`` and ``g_i[b] = sum_positions
delta_i``: one einsum that keeps the batch axis (the "materialised" path, §12). With one
position per example, ``<g_i, sum_j g'_j> = sum_j (x_i . x'_j)(delta_i . delta'_j)``: two
Gram matrices of the batches instead of a product with the kernel (the "gram" path, §12).
"""

import math
import string

from keras import layers, ops

from gar_tf.alignment.registry import RuleRegistry

RULES = RuleRegistry()


def _bias_gradient(delta, bias_shape):
    """Each example's bias gradient: ``delta [B, *out]`` summed to ``[B, *bias_shape]``
    over the axes the bias is broadcast along (bias shapes align with the trailing axes)."""
    lead = list(range(1, len(delta.shape) - len(bias_shape)))
    if lead:
        delta = ops.sum(delta, axis=lead)
    ones = [i + 1 for i, n in enumerate(bias_shape) if n == 1 and delta.shape[i + 1] != 1]
    if ones:
        delta = ops.sum(delta, axis=ones, keepdims=True)
    return delta


def _dense_flops(layer, input_shape, output_shape) -> int:
    """One example's tangent: its input times ``V_W`` (2 FLOPs per multiply-add)."""
    return 2 * math.prod(output_shape) * int(layer.kernel.shape[0])


def _dense_per_example(layer, inputs, delta):
    batch = ops.shape(inputs)[0]
    x = ops.reshape(inputs, (batch, -1, inputs.shape[-1]))
    d = ops.reshape(delta, (batch, -1, delta.shape[-1]))
    grads = {"kernel": ops.einsum("bti,bto->bio", x, d)}
    if layer.use_bias:
        grads["bias"] = ops.sum(d, axis=1)
    return grads


def _dense_gram(layer, inputs, delta, other_inputs, other_delta):
    if len(inputs.shape) != 2:
        raise ValueError(
            f"Dense {layer.name!r} is called on several positions per example; the Gram "
            "form covers one position (inputs of shape [batch, features])."
        )
    grams = ops.matmul(inputs, ops.transpose(other_inputs)) * ops.matmul(
        delta, ops.transpose(other_delta)
    )
    alignments = {"kernel": ops.sum(grams, axis=1)}
    if layer.use_bias:
        alignments["bias"] = ops.matmul(delta, ops.sum(other_delta, axis=0))
    return alignments


@RULES.register(
    layers.Dense,
    weights=("kernel", "bias"),
    per_example=_dense_per_example,
    flops=_dense_flops,
    gram=_dense_gram,
)
def _dense(layer, inputs, direction, weights):
    tangents = {}
    if "kernel" in direction:
        tangents["kernel"] = ops.matmul(inputs, direction["kernel"])
    if "bias" in direction:
        tangents["bias"] = direction["bias"]
    return tangents


def _explicit(equation: str, input_rank: int) -> tuple[str, str, str]:
    """``(input, kernel, output)`` subscripts of an EinsumDense equation, ``...`` spelled out."""
    lhs, output = equation.split("->")
    inputs, kernel = lhs.split(",")
    if "..." in inputs:
        free = [c for c in string.ascii_letters if c not in equation]
        spelled = "".join(free[: input_rank - len(inputs.replace("...", ""))])
        inputs, output = inputs.replace("...", spelled), output.replace("...", spelled)
    return inputs, kernel, output


def _einsum_per_example(layer, inputs, delta):
    x_subscripts, kernel, output = _explicit(layer.equation, len(inputs.shape))
    batch = x_subscripts[0]
    if output[0] != batch or batch in kernel:
        raise ValueError(
            f"EinsumDense {layer.name!r} ({layer.equation}) does not keep the batch axis "
            "out of its kernel; only the tangent path applies to it."
        )
    grads = {"kernel": ops.einsum(f"{x_subscripts},{output}->{batch}{kernel}", inputs, delta)}
    if layer.bias is not None:
        grads["bias"] = _bias_gradient(delta, tuple(layer.bias.shape))
    return grads


def _einsum_flops(layer, input_shape, output_shape) -> int:
    x_subscripts, kernel, output = _explicit(layer.equation, len(input_shape) + 1)
    sizes = dict(zip(kernel, layer.kernel.shape))
    contraction = math.prod(n for c, n in sizes.items() if c not in output)
    return 2 * math.prod(output_shape) * contraction


@RULES.register(
    layers.EinsumDense,
    weights=("kernel", "bias"),
    per_example=_einsum_per_example,
    flops=_einsum_flops,
)
def _einsum_dense(layer, inputs, direction, weights):
    tangents = {}
    if "kernel" in direction:
        tangents["kernel"] = ops.einsum(layer.equation, inputs, direction["kernel"])
    if "bias" in direction:
        tangents["bias"] = direction["bias"]
    return tangents
