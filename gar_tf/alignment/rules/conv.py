"""Rules for the convolution family (docs/method.md §2).

``z = conv(x, K) + b`` is linear in ``K``, so ``dz = conv(x, V_K) + V_b`` with
exactly the layer's own strides, padding, dilation and groups. Separable conv is
bilinear in its two kernels: ``dz = sep(x, V_D, P) + sep(x, D, V_P) + V_b``.
"""

import math

from keras import layers, ops

from gar_tf._compat import causal_padding
from gar_tf.alignment.registry import RuleRegistry

RULES = RuleRegistry()


def _bias(layer, direction):
    """The bias direction shaped to broadcast against the layer's output."""
    if layer.data_format == "channels_last":
        shape = (1,) * (layer.rank + 1) + (-1,)
    else:
        shape = (1, -1) + (1,) * layer.rank
    return ops.reshape(direction, shape)


def _with_bias(layer, direction, kernel_tangent):
    tangents = {}
    if "kernel" in direction:
        tangents["kernel"] = kernel_tangent(direction["kernel"])
    if "bias" in direction:
        tangents["bias"] = _bias(layer, direction["bias"])
    return tangents


def _conv_flops(layer, input_shape, output_shape) -> int:
    """One example's tangent: a convolution with ``V_K``, ``2 k^d C_in/groups`` per output."""
    return 2 * math.prod(output_shape) * math.prod(layer.kernel.shape[:-1])


def _transpose_flops(layer, input_shape, output_shape) -> int:
    return 2 * math.prod(input_shape) * math.prod(layer.kernel.shape[:-1])


def _depthwise_flops(layer, input_shape, output_shape) -> int:
    return 2 * math.prod(output_shape) * math.prod(layer.kernel.shape[:-2])


def _separable_flops(layer, input_shape, output_shape) -> int:
    depthwise, pointwise = layer.depthwise_kernel.shape, layer.pointwise_kernel.shape
    spatial = math.prod(output_shape) // int(pointwise[-1])
    per_position = math.prod(depthwise) + math.prod(pointwise)  # both tangents, in sequence
    return 2 * spatial * per_position * 2


@RULES.register(layers.Conv2D, weights=("kernel", "bias"), flops=_conv_flops)
@RULES.register(layers.Conv3D, weights=("kernel", "bias"), flops=_conv_flops)
def _conv(layer, inputs, direction, weights):
    return _with_bias(layer, direction, lambda v: layer.convolution_op(inputs, v))


def _keywords(layer, padding=None) -> dict:
    """The layer's own strides, padding, dilation and data format, as ``ops`` keywords."""
    return dict(
        strides=layer.strides,
        padding=padding or layer.padding,
        dilation_rate=layer.dilation_rate,
        data_format=layer.data_format,
    )


@RULES.register(layers.Conv1D, weights=("kernel", "bias"), flops=_conv_flops)
def _conv1d(layer, inputs, direction, weights):
    padding = None
    if layer.padding == "causal":
        inputs = ops.pad(inputs, causal_padding(layer))
        padding = "valid"
    keywords = _keywords(layer, padding)
    return _with_bias(layer, direction, lambda v: ops.conv(inputs, v, **keywords))


@RULES.register(layers.Conv1DTranspose, weights=("kernel", "bias"), flops=_transpose_flops)
@RULES.register(layers.Conv2DTranspose, weights=("kernel", "bias"), flops=_transpose_flops)
@RULES.register(layers.Conv3DTranspose, weights=("kernel", "bias"), flops=_transpose_flops)
def _conv_transpose(layer, inputs, direction, weights):
    keywords = dict(_keywords(layer), output_padding=layer.output_padding)
    return _with_bias(layer, direction, lambda v: ops.conv_transpose(inputs, v, **keywords))


@RULES.register(layers.DepthwiseConv1D, weights=("kernel", "bias"), flops=_depthwise_flops)
@RULES.register(layers.DepthwiseConv2D, weights=("kernel", "bias"), flops=_depthwise_flops)
def _depthwise(layer, inputs, direction, weights):
    keywords = _keywords(layer)
    return _with_bias(layer, direction, lambda v: ops.depthwise_conv(inputs, v, **keywords))


@RULES.register(
    layers.SeparableConv1D,
    weights=("depthwise_kernel", "pointwise_kernel", "bias"),
    needs_weights=True,
    flops=_separable_flops,
)
@RULES.register(
    layers.SeparableConv2D,
    weights=("depthwise_kernel", "pointwise_kernel", "bias"),
    needs_weights=True,
    flops=_separable_flops,
)
def _separable(layer, inputs, direction, weights):
    def separable(depthwise, pointwise):
        return ops.separable_conv(inputs, depthwise, pointwise, **_keywords(layer))

    tangents = {}
    if "depthwise_kernel" in direction:
        tangents["depthwise_kernel"] = separable(
            direction["depthwise_kernel"], weights["pointwise_kernel"]
        )
    if "pointwise_kernel" in direction:
        tangents["pointwise_kernel"] = separable(
            weights["depthwise_kernel"], direction["pointwise_kernel"]
        )
    if "bias" in direction:
        tangents["bias"] = _bias(layer, direction["bias"])
    return tangents
