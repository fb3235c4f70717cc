"""Which weights of a model the engine covers, and how (docs/method.md §2).

Each layer that owns trainable weights (not through a sublayer) becomes one
unit: a registered rule, the exact fallback, or excluded. Normalisation layers
are excluded by default, as in the reference. Recurrent and wrapper layers that
call their sublayers inside loops or on reshaped batches are treated whole.
"""

from __future__ import annotations

import dataclasses
import warnings

import keras

from gar_tf._compat import sublayers
from gar_tf.alignment.registry import LayerRule, RuleRegistry
from gar_tf.alignment.rules import registered_rules

DEFAULT_EXCLUDED: tuple[type, ...] = tuple(
    getattr(keras.layers, name)
    for name in (
        "BatchNormalization",
        "LayerNormalization",
        "GroupNormalization",
        "RMSNormalization",
    )
    if hasattr(keras.layers, name)
)

_OPAQUE: tuple[type, ...] = (
    keras.layers.RNN,
    keras.layers.Bidirectional,
    keras.layers.TimeDistributed,
)


@dataclasses.dataclass(eq=False)
class Unit:
    """One layer and the trainable weights the engine rewards through it.

    ``rule`` is None for the fallback (an exact layer-local JVP). ``folded`` lists the
    layers whose weights a whole-model unit covers because some call of theirs has no
    batch on axis 0 (see :func:`fold_into_model`). ``path`` is how a rule unit's reward
    is computed: ``"tangent"`` or ``"materialised"`` (``gar_tf.alignment.paths``).
    """

    layer: keras.layers.Layer
    variables: dict[str, keras.Variable]
    rule: LayerRule | None
    folded: tuple[keras.layers.Layer, ...] = ()
    path: str = "tangent"

    @property
    def kind(self) -> str:
        if self.folded:
            return "whole-model"
        return "fallback" if self.rule is None else "rule"

    def snapshot_variables(self) -> list[keras.Variable]:
        """The weights whose values a call must record: all of a fallback layer's,
        a rule's own when it ``needs_weights``, else none."""
        if self.rule is None:
            return self.layer.trainable_variables + self.layer.non_trainable_variables
        if self.rule.needs_weights:
            return [w for w in self.layer.weights if w.name in self.rule.weights]
        return []


@dataclasses.dataclass
class Plan:
    units: list[Unit]
    excluded: list[keras.layers.Layer]

    @property
    def fallback_layers(self) -> list[keras.layers.Layer]:
        return [u.layer for u in self.units if u.rule is None]


def _sublayers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    return [] if isinstance(layer, _OPAQUE) else sublayers(layer)


def _own_trainable_weights(layer: keras.layers.Layer) -> list[keras.Variable]:
    inherited = {id(w) for sub in _sublayers(layer) for w in sub.trainable_weights}
    return [w for w in layer.trainable_weights if id(w) not in inherited]


def build_plan(
    model: keras.layers.Layer,
    exclude: tuple[type, ...] = DEFAULT_EXCLUDED,
    strict: bool = False,
    rules: RuleRegistry | None = None,
) -> Plan:
    """Walks ``model`` and assigns every trainable weight to one unit, using ``rules``
    (default: the process-wide registry, see ``gar_tf.alignment.rules``).

    Raises:
        ValueError: the model is not built, or ``strict`` is set and some layer
            with trainable weights has no rule (the message names them).
    """
    if not model.built:
        raise ValueError(
            f"Model {model.name!r} is not built. Call it on a batch (or build it) "
            "before computing alignments."
        )
    rules = registered_rules() if rules is None else rules
    units, excluded, unsupported = [], [], []
    seen = set()
    stack = [model]
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        stack.extend(reversed(_sublayers(layer)))
        own = _own_trainable_weights(layer)
        if not own:
            continue
        if isinstance(layer, exclude):
            excluded.append(layer)
            continue
        rule, why_not = rules.match(layer)
        if rule is None:
            unsupported.append((layer, why_not))
            if why_not and not strict:
                warnings.warn(
                    f"{layer.name}: {why_not}; using the exact fallback for it instead.",
                    stacklevel=3,
                )
        units.append(
            Unit(
                layer, {w.path: w for w in own} if rule is None else {w.name: w for w in own}, rule
            )
        )
    if strict and unsupported:
        names = ", ".join(
            f"{layer.name} ({why_not or type(layer).__name__})" for layer, why_not in unsupported
        )
        raise ValueError(
            f"strict=True, but these layers have trainable weights and no alignment "
            f"rule: {names}. Register a rule with gar_tf.register_rule, exclude their "
            "types with exclude=..., or drop strict=True to use the exact fallback."
        )
    return Plan(units, excluded)


def fold_into_model(plan: Plan, model: keras.layers.Layer, unbatched: list[Unit]) -> Plan:
    """``plan`` with the ``unbatched`` units (and a unit of ``model`` itself) replaced by one
    fallback unit for the whole model: its JVP along V restricted to their weights, paired
    with dL/d(model outputs), is each example's exact share (docs/method.md §2)."""
    if not unbatched:
        return plan
    folded = {id(u) for u in unbatched} | {id(u) for u in plan.units if u.layer is model}
    variables = {v.path: v for u in plan.units if id(u) in folded for v in u.variables.values()}
    kept = [u for u in plan.units if id(u) not in folded]
    whole = Unit(model, variables, None, tuple(u.layer for u in unbatched))
    return Plan([*kept, whole], plan.excluded)
