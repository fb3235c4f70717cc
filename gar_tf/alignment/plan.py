"""Which weights of a model the engine covers, and how (docs/method.md §2).

Each layer that owns trainable weights (not through a sublayer) becomes one
unit: a registered rule, the exact fallback, or excluded. Normalisation layers
are excluded by default, as in the reference. Recurrent and wrapper layers that
call their sublayers inside loops or on reshaped batches are treated whole.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping

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
    sublayers whose weights this fallback unit of an enclosing layer covers because some
    call of theirs has no batch on axis 0 (see :func:`fold`). ``path`` is how a rule unit's reward
    is computed: ``"tangent"``, ``"materialised"`` or ``"gram"`` (``gar_tf.alignment.paths``).
    """

    layer: keras.layers.Layer
    variables: dict[str, keras.Variable]
    rule: LayerRule | None
    folded: tuple[keras.layers.Layer, ...] = ()
    path: str = "tangent"

    @property
    def kind(self) -> str:
        if self.folded:
            return "enclosing"
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


def enclosing_layers(model: keras.layers.Layer, layer: keras.layers.Layer) -> list:
    """The layers of ``model`` that hold ``layer`` among their sublayers, nearest first
    (the last is ``model``); empty if ``layer`` is not in ``model``."""
    stack = [(model, ())]
    while stack:
        current, above = stack.pop()
        if current is layer:
            return list(reversed(above))
        stack.extend((sub, (*above, current)) for sub in _sublayers(current))
    return []


def fold(plan: Plan, into: Mapping[int, keras.layers.Layer]) -> Plan:
    """``plan`` with each unit ``into`` names (by ``id``) folded into a fallback unit of the
    layer it maps to, with that layer's own fallback unit if it has one: the layer's JVP
    along V restricted to their weights, paired with dL/d(its outputs), is each example's
    exact share when the layer's calls carry the batch on axis 0 (docs/method.md §2)."""
    groups: dict[int, tuple[keras.layers.Layer, list[Unit]]] = {}
    for unit in plan.units:
        if id(unit) in into:
            layer = into[id(unit)]
            groups.setdefault(id(layer), (layer, []))[1].append(unit)
    kept = []
    for unit in plan.units:
        if id(unit) in into:
            continue
        if id(unit.layer) in groups and unit.rule is None:  # the target's own weights
            groups[id(unit.layer)][1].append(unit)
            continue
        kept.append(unit)
    for layer, units in groups.values():
        variables = {v.path: v for u in units for v in u.variables.values()}
        kept.append(
            Unit(layer, variables, None, tuple(u.layer for u in units if u.layer is not layer))
        )
    return Plan(kept, plan.excluded)
