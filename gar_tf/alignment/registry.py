"""Rule registries: one small rule per layer type (docs/method.md §2).

A rule gives, for a layer whose pre-activation output ``z`` is linear in each of
its weights, the directional derivative ``dz[W](V)`` of ``z`` along a direction
``V`` for that weight. The engine turns it into the per-example reward
``r_i = sum(delta_i * dz_i)`` with ``delta = dL/dz`` (the "tangent" path). A rule may
also give each example's weight gradient from ``x`` and ``delta`` in closed form (the
"materialised" path), its alignment with another recorded batch's summed gradient from the
two batches' ``x`` and ``delta`` (the "gram" path) and the FLOPs of its tangent, from which
``paths`` chooses (docs/method.md §2, §12). A :class:`RuleRegistry` maps layer types to rules; the
built-in ones are in ``rules/``, one module per layer family.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping

import keras
import tensorflow as tf

TangentFn = Callable[
    [keras.layers.Layer, tf.Tensor, Mapping[str, tf.Tensor], Mapping[str, tf.Tensor]],
    Mapping[str, tf.Tensor],
]
PerExampleFn = Callable[[keras.layers.Layer, tf.Tensor, tf.Tensor], Mapping[str, tf.Tensor]]
FlopsFn = Callable[[keras.layers.Layer, tuple, tuple], int]
GramFn = Callable[
    [keras.layers.Layer, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor], Mapping[str, tf.Tensor]
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
        per_example: ``fn(layer, inputs, delta) -> {name: g}``, each example's
            gradient ``g [B, *weight shape]`` of ``sum(delta * z)`` for every weight in
            ``weights`` (float32 ``inputs`` and ``delta``), or None: the layer has only
            the tangent path.
        flops: ``fn(layer, input_shape, output_shape) -> int``, the FLOPs of one
            example's tangent (shapes without the batch axis), or None (unknown: the
            tangent path is kept).
        gram: ``fn(layer, inputs, delta, other_inputs, other_delta) -> {name: r}``, for
            every weight in ``weights`` each example's alignment ``r_i = <g_i, sum_j g'_j>``
            [B] with the summed gradient of another batch of the same call, from both
            batches' inputs and output gradients (float32), without forming a weight
            gradient; raises ValueError for a call it does not cover. None: no such path.
    """

    tangents: TangentFn
    weights: tuple[str, ...]
    activation: str | None = "activation"
    needs_weights: bool = False
    per_example: PerExampleFn | None = None
    flops: FlopsFn | None = None
    gram: GramFn | None = None


class RuleRegistry:
    """Layer type -> :class:`LayerRule`. A type has one rule: registering a second one
    raises unless ``replace=True`` (as ``gar_tf.augment.register_op`` does for ops)."""

    def __init__(self, rules: Mapping[type, LayerRule] | Iterable[RuleRegistry] = ()) -> None:
        self._rules: dict[type, LayerRule] = {}
        if isinstance(rules, Mapping):
            self._rules.update(rules)
        else:
            for registry in rules:
                for layer_type, rule in registry.items():
                    self.add(layer_type, rule)

    def items(self):
        return self._rules.items()

    def __contains__(self, layer_type: type) -> bool:
        return layer_type in self._rules

    def __len__(self) -> int:
        return len(self._rules)

    def copy(self) -> RuleRegistry:
        return RuleRegistry(dict(self._rules))

    def add(self, layer_type: type, rule: LayerRule, replace: bool = False) -> None:
        """Adds ``rule`` for ``layer_type``; an existing rule is kept unless ``replace``."""
        if layer_type in self._rules and not replace:
            raise ValueError(
                f"A rule for {layer_type.__name__} is already registered; pass "
                "replace=True to replace it."
            )
        self._rules[layer_type] = rule

    def register(
        self,
        layer_type: type,
        *,
        weights: tuple[str, ...] | list[str],
        activation: str | None = "activation",
        needs_weights: bool = False,
        per_example: PerExampleFn | None = None,
        flops: FlopsFn | None = None,
        gram: GramFn | None = None,
        replace: bool = False,
    ) -> Callable[[TangentFn], TangentFn]:
        """Decorator: registers ``fn`` as the rule for ``layer_type`` (see :class:`LayerRule`)."""

        def decorator(fn: TangentFn) -> TangentFn:
            rule = LayerRule(
                fn, tuple(weights), activation, needs_weights, per_example, flops, gram
            )
            self.add(layer_type, rule, replace=replace)
            return fn

        return decorator

    def rule_for(self, layer: keras.layers.Layer) -> LayerRule | None:
        """The rule that applies to ``layer`` as it is now, or None (see ``why_not``)."""
        return self.match(layer)[0]

    def why_not(self, layer: keras.layers.Layer) -> str | None:
        """Why the rule registered for a class of ``layer`` does not apply to it, or None
        (a rule applies, or none is registered)."""
        return self.match(layer)[1]

    def match(self, layer: keras.layers.Layer) -> tuple[LayerRule | None, str | None]:
        """(rule, None) when a rule applies; (None, reason) when the rule registered for a
        class in its MRO does not: it overrides that class's ``call``, has trainable weights
        the rule does not cover, lacks the rule's activation attribute, or LoRA or
        quantisation changes what its weights mean; (None, None) when no rule is registered.
        """
        cls = next((c for c in type(layer).__mro__ if c in self._rules), None)
        if cls is None:
            return None, None
        rule = self._rules[cls]
        where = f"the rule registered for {cls.__name__}"
        if type(layer).call is not cls.call:
            return None, f"{where} does not cover its own call()"
        if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
            return None, f"{where} does not cover LoRA or quantised weights"
        names = sorted(w.name for w in layer.trainable_weights)
        if not set(names) <= set(rule.weights):
            return None, f"{where} covers weights {list(rule.weights)}, the layer has {names}"
        if rule.activation is not None and not hasattr(layer, rule.activation):
            return None, f"{where} reads .{rule.activation}, which the layer lacks"
        return rule, None
