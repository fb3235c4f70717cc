"""Which path each rule layer takes to its reward, from a cost model (docs/method.md §12).

``"tangent"``: keep the call's input ``x`` and ``delta = dL/dz`` until step t+1, then
``r_i = sum(delta_i * dz_i(V))`` (the rule's tangent: about one forward op of the layer).
``"materialised"``: at step t, each example's gradient ``g_i`` from ``x`` and ``delta`` (the
rule's ``per_example``); ``sum_i g_i`` is the layer's batch gradient, so autodiff skips its
own, and only ``g_i`` [B, P] is kept; at step t+1, ``r_i = <g_i, V>`` (3 P FLOPs per example:
the sum and the dot). ``"gram"``: keep ``x`` and ``delta`` as the tangent does; at step t+1,
when the direction is the summed gradient of batch t+1's recorded call,
``r_i = sum_j (x_i . x'_j)(delta_i . delta'_j)`` (one position per example:
``2 B' (in + out + 1)`` FLOPs per example for a batch t+1 of ``B'``), or the tangent at
batches where that costs more. Per example, a path costs its extra FLOPs plus
:data:`BYTE_COST` per byte kept; the cheaper one is chosen unless the user forces one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import tensorflow as tf

from gar_tf.alignment.plan import Plan, Unit

PATHS = ("tangent", "materialised", "gram")
CHOICES = ("auto", *PATHS)
#: FLOPs that one byte kept until the next step is taken to cost (written once, read
#: once): a memory-bound op moves a few bytes per FLOP on CPUs and GPUs alike.
BYTE_COST = 8


@dataclasses.dataclass(frozen=True)
class CallShape:
    """One recorded call of a rule layer, per example (batch axis dropped)."""

    unit: Unit
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    input_dtype: tf.DType
    output_dtype: tf.DType


@dataclasses.dataclass(frozen=True)
class PathCost:
    """What one layer's reward costs per example: extra FLOPs and bytes kept until step t+1
    (None: unknown, e.g. a dynamic sequence length), for the chosen ``path`` and, in
    ``options``, every path it has."""

    layer: str
    path: str
    flops: int | None
    bytes: int | None
    options: Mapping[str, tuple[int | None, int | None]]

    def __str__(self) -> str:
        flops, kept = ("?" if n is None else f"{n:,}" for n in (self.flops, self.bytes))
        return f"{self.layer}: {self.path}, {flops} FLOPs and {kept} bytes per example"


def check_choice(paths, layer_names: list[str] | None = None) -> None:
    """Raises ValueError unless ``paths`` is one of :data:`CHOICES` or maps layer names (of
    ``layer_names``, when given) to one of :data:`PATHS`."""
    if isinstance(paths, str):
        if paths not in CHOICES:
            raise ValueError(f"paths must be one of {CHOICES} or a dict, got {paths!r}.")
        return
    if not isinstance(paths, Mapping):
        raise TypeError(f"paths must be a string or a dict {{layer name: path}}, got {paths!r}.")
    unknown = [] if layer_names is None else sorted(set(paths) - set(layer_names))
    if unknown:
        raise ValueError(
            f"paths names layers {unknown} that have no rule in this model; rule layers: "
            f"{sorted(layer_names)}."
        )
    wrong = {name: p for name, p in paths.items() if p not in PATHS}
    if wrong:
        raise ValueError(f"paths must map layer names to one of {PATHS}, got {wrong}.")


def gram_flops(input_shape, output_shape, batch: int) -> int:
    """FLOPs of one example's Gram-form reward against a batch of ``batch`` examples."""
    return 2 * batch * (math.prod(input_shape) + math.prod(output_shape) + 1)


def _applies(fn, call: CallShape, batches: int) -> bool:
    """Whether a rule function of ``batches`` (inputs, delta) pairs applies to this call
    (traced, not run): it raises ValueError for calls it does not cover. A call of unknown
    shape (e.g. a dynamic sequence length) has only the tangent path."""
    if fn is None or None in call.input_shape + call.output_shape:
        return False
    try:
        with tf.Graph().as_default():
            x = tf.zeros([1, *call.input_shape], tf.float32)
            delta = tf.zeros([1, *call.output_shape], tf.float32)
            fn(call.unit.layer, *[x, delta] * batches)
    except ValueError:
        return False
    return True


def _gram_applies(calls: list[CallShape], gram: bool, shared: bool) -> bool:
    """Whether the Gram form can reward this unit: offered (``gram``), one call, weights no
    other unit holds (``shared``: the direction would hold that unit's share too)."""
    return (
        gram and not shared and len(calls) == 1 and _applies(calls[0].unit.rule.gram, calls[0], 2)
    )


def _options(
    calls: list[CallShape], batch: int | None = None, gram: bool = False
) -> dict[str, tuple[int | None, int | None]]:
    """``{path: (extra FLOPs, bytes kept)}`` per example, summed over a unit's calls;
    ``"gram"`` (listed first, so it wins a tie) if ``gram`` (it applies, see
    :func:`_gram_applies`) and, for a known ``batch``, the Gram form costs no more than the
    tangent."""
    unit = calls[0].unit
    if any(None in c.input_shape + c.output_shape for c in calls):
        return {"tangent": (None, None)}
    count = unit.rule.flops
    flops = [
        None if count is None else count(unit.layer, c.input_shape, c.output_shape) for c in calls
    ]
    kept = sum(
        math.prod(c.input_shape) * c.input_dtype.size
        + math.prod(c.output_shape) * c.output_dtype.size
        for c in calls
    )
    tangent = None if None in flops else sum(flops)
    options = {"tangent": (tangent, kept)}
    if gram:
        # Offered where it can be cheaper; the engine takes the cheaper form per batch, so
        # an unknown batch costs what the tangent does.
        call = calls[0]
        known = None if batch is None else gram_flops(call.input_shape, call.output_shape, batch)
        if known is None or tangent is None or known <= tangent:
            options = {"gram": (tangent if known is None else known, kept), **options}
    if all(_applies(unit.rule.per_example, c, 1) for c in calls):
        size = sum(math.prod(v.shape) for v in unit.variables.values())
        options["materialised"] = (3 * size * len(calls), 4 * size * len(calls))
    return options


def _score(option: tuple[int | None, int | None]) -> float:
    flops, kept = option
    return math.inf if flops is None or kept is None else flops + BYTE_COST * kept


def choose(
    plan: Plan,
    calls: list[CallShape],
    paths="auto",
    batch: int | None = None,
    gram: bool = False,
) -> tuple[Plan, list[PathCost]]:
    """``plan`` with each rule unit's path set (``paths``: ``"auto"``, one path for every
    layer that has it, or ``{layer name: path}`` with ``"auto"`` for the rest), and the
    cost of every unit (a JVP unit's as its kind, ``"fallback"`` or ``"enclosing"``, with
    unknown cost). Rule units without a recorded call keep the tangent path. ``"gram"`` is
    offered only if ``gram`` (the caller passes the direction's batch, of ``batch``
    examples when known).

    Raises:
        ValueError: a layer named in ``paths`` has no such path for this call.
    """
    by_unit: dict[int, list[CallShape]] = {}
    for call in calls:
        by_unit.setdefault(id(call.unit), []).append(call)
    owners: dict[int, int] = {}  # variable -> how many units hold it (a tied kernel: 2)
    for unit in plan.units:
        for v in {id(v) for v in unit.variables.values()}:
            owners[v] = owners.get(v, 0) + 1
    units, described = [], []
    for unit in plan.units:
        found = by_unit.get(id(unit))
        if unit.rule is None:  # a JVP, of the layer or (folded) of an enclosing layer
            units.append(unit)
            name = unit.layer.name
            if unit.folded:
                name = f"{name} (for {', '.join(layer.name for layer in unit.folded)})"
            described.append(PathCost(name, unit.kind, None, None, {}))
            continue
        if not found:
            units.append(unit)
            continue
        shared = any(owners[id(v)] > 1 for v in unit.variables.values())
        with_gram = _gram_applies(found, gram, shared)
        options = _options(found, batch, with_gram)
        wanted = paths.get(unit.layer.name, "auto") if isinstance(paths, Mapping) else paths
        if wanted == "auto":
            path = min(options, key=lambda p: _score(options[p]))
        elif wanted in options:
            path = wanted
        elif wanted == "gram" and with_gram and isinstance(paths, Mapping):
            # forced by name but costlier at this batch: the engine runs the tangent
            path, options = "gram", {"gram": options["tangent"], **options}
        elif isinstance(paths, Mapping):
            raise ValueError(
                f"paths asks for {wanted!r} on layer {unit.layer.name!r}, which has only "
                f"{sorted(options)} for this call (the materialised path needs the rule's "
                "per-example gradient; the Gram form a rule for it, one call of one position "
                "per example, and a direction that is the next batch's gradient)."
            )
        else:
            path = "tangent"
        units.append(dataclasses.replace(unit, path=path))
        described.append(PathCost(unit.layer.name, path, *options[path], options))
    return Plan(units, plan.excluded), described
