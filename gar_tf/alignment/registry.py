"""The rule registry: one small rule per layer type (GAR_SPEC §1.2).

A rule gives, for a layer whose pre-activation output ``z`` is linear in each of
its weights, the directional derivative ``dz[W](V)`` of ``z`` along a direction
``V`` for that weight. The engine turns it into the per-example reward
``r_i = sum(delta_i * dz_i)`` with ``delta = dL/dz``, so no per-example gradient is
ever built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import keras
import tensorflow as tf

TangentFn = Callable[
    [keras.layers.Layer, tf.Tensor, Mapping[str, tf.Tensor], Mapping[str, tf.Tensor]],
    Mapping[str, tf.Tensor],
]


@dataclasses.dataclass(frozen=True)
class LayerRule:
    """How the alignment engine handles one layer type.

    Attributes:
        tangents: ``fn(layer, inputs, direction, weights) -> {name: dz}``. ``inputs``
            is the first argument the layer was called with (floating inputs cast
            to float32), ``direction`` maps weight names to direction tensors and
            ``weights`` maps names to the weights' values when the layer was
            called (filled only if ``needs_weights``). Returns one tangent per
            name in ``direction``, broadcastable to the pre-activation output.
        weights: names (``Variable.name``) of the weights the rule covers.
        activation: attribute holding the layer's fused activation, or None.
            The engine records the output *before* that activation.
        needs_weights: whether ``z`` is not linear in each weight on its own
            (e.g. separable conv), so the rule needs the weights' values.
    """

    tangents: TangentFn
    weights: tuple[str, ...]
    activation: str | None = "activation"
    needs_weights: bool = False


_RULES: dict[type, LayerRule] = {}


def register_rule(
    layer_type: type,
    *,
    weights: tuple[str, ...] | list[str],
    activation: str | None = "activation",
    needs_weights: bool = False,
) -> Callable[[TangentFn], TangentFn]:
    """Registers ``fn`` as the alignment rule for ``layer_type`` (decorator).

    Example, for a layer computing ``z = x @ kernel * scale`` with a fixed scale::

        @gar_tf.register_rule(ScaledDense, weights=("kernel",), activation=None)
        def _scaled_dense(layer, inputs, direction, weights):
            return {"kernel": inputs @ direction["kernel"] * layer.scale}

    A subclass of ``layer_type`` uses the rule only if it does not override
    ``call``; otherwise it gets its own rule or the exact fallback.
    """

    def decorator(fn: TangentFn) -> TangentFn:
        _RULES[layer_type] = LayerRule(
            tangents=fn,
            weights=tuple(weights),
            activation=activation,
            needs_weights=needs_weights,
        )
        return fn

    return decorator


def rule_for(layer: keras.layers.Layer) -> LayerRule | None:
    """The rule that applies to ``layer`` as it is now, or None.

    None when no class in its MRO has a rule, when it overrides that class's
    ``call``, when it has trainable weights the rule does not cover, or when LoRA
    or quantisation changes what its weights mean.
    """
    for cls in type(layer).__mro__:
        if cls in _RULES:
            rule = _RULES[cls]
            if type(layer).call is not cls.call:
                return None
            break
    else:
        return None
    if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
        return None
    names = {w.name for w in layer.trainable_weights}
    if not names <= set(rule.weights):
        return None
    if rule.activation is not None and not hasattr(layer, rule.activation):
        return None
    return rule
