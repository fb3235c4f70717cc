"""Rules for the convolution family (GAR_SPEC §1.2).

``z = conv(x, K) + b`` is linear in ``K``, so ``dz = conv(x, V_K) + V_b`` with
exactly the layer's own strides, padding, dilation and groups. Separable conv is
bilinear in its two kernels: ``dz = sep(x, V_D, P) + sep(x, D, V_P) + V_b``.
"""

from keras import layers, ops

from gar_tf.alignment.registry import register_rule


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


@register_rule(layers.Conv2D, weights=("kernel", "bias"))
@register_rule(layers.Conv3D, weights=("kernel", "bias"))
def _conv(layer, inputs, direction, weights):
    return _with_bias(layer, direction, lambda v: layer.convolution_op(inputs, v))


@register_rule(layers.Conv1D, weights=("kernel", "bias"))
def _conv1d(layer, inputs, direction, weights):
    padding = layer.padding
    if padding == "causal":
        inputs = ops.pad(inputs, layer._compute_causal_padding())
        padding = "valid"

    def kernel_tangent(v):
        return ops.conv(
            inputs,
            v,
            strides=list(layer.strides),
            padding=padding,
            dilation_rate=layer.dilation_rate,
            data_format=layer.data_format,
        )

    return _with_bias(layer, direction, kernel_tangent)


@register_rule(layers.Conv1DTranspose, weights=("kernel", "bias"))
@register_rule(layers.Conv2DTranspose, weights=("kernel", "bias"))
@register_rule(layers.Conv3DTranspose, weights=("kernel", "bias"))
def _conv_transpose(layer, inputs, direction, weights):
    def kernel_tangent(v):
        return ops.conv_transpose(
            inputs,
            v,
            strides=list(layer.strides),
            padding=layer.padding,
            output_padding=layer.output_padding,
            dilation_rate=layer.dilation_rate,
            data_format=layer.data_format,
        )

    return _with_bias(layer, direction, kernel_tangent)


@register_rule(layers.DepthwiseConv1D, weights=("kernel", "bias"))
@register_rule(layers.DepthwiseConv2D, weights=("kernel", "bias"))
def _depthwise(layer, inputs, direction, weights):
    def kernel_tangent(v):
        return ops.depthwise_conv(
            inputs,
            v,
            strides=layer.strides,
            padding=layer.padding,
            dilation_rate=layer.dilation_rate,
            data_format=layer.data_format,
        )

    return _with_bias(layer, direction, kernel_tangent)


@register_rule(
    layers.SeparableConv1D,
    weights=("depthwise_kernel", "pointwise_kernel", "bias"),
    needs_weights=True,
)
@register_rule(
    layers.SeparableConv2D,
    weights=("depthwise_kernel", "pointwise_kernel", "bias"),
    needs_weights=True,
)
def _separable(layer, inputs, direction, weights):
    def separable(depthwise, pointwise):
        return ops.separable_conv(
            inputs,
            depthwise,
            pointwise,
            strides=layer.strides,
            padding=layer.padding,
            dilation_rate=layer.dilation_rate,
            data_format=layer.data_format,
        )

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
