"""The reward engine: per-example alignments r_i = <g_i, V> without per-example gradients.

docs/method.md §2-§3. For every recorded call of a unit, ``r_i += sum(delta_i * dz_i(V))``
where ``delta = dL/dz`` of the *mean* batch loss and ``dz(V)`` is the unit's
tangent along the direction ``V`` (a rule's closed form, or a layer-local
Jacobian-vector product for the fallback). So ``sum_i r_i = <grad L, V>`` exactly over
the covered weights, and without cross-example coupling ``r_i = <grad l_i, V> / B``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Mapping, Sequence

import keras
import tensorflow as tf

from gar_tf._compat import autocast_scope
from gar_tf.alignment import paths as reward_paths
from gar_tf.alignment.plan import DEFAULT_EXCLUDED, Plan, Unit, build_plan, enclosing_layers, fold
from gar_tf.alignment.registry import RuleRegistry
from gar_tf.alignment.tap import (
    CallState,
    Recording,
    batched_units,
    loss_facing,
    probe,
    recording,
)

SIMILARITIES = ("dot", "cosine")
_EPSILON = 1e-12


def _float32(t: tf.Tensor) -> tf.Tensor:
    return tf.cast(t, tf.float32) if t.dtype.is_floating else t


def sum_per_example(t: tf.Tensor) -> tf.Tensor:
    """Sums every axis but the first: shape [B, ...] -> [B]."""
    return tf.reduce_sum(tf.reshape(t, [tf.shape(t)[0], -1]), axis=1)


class AlignmentEngine:
    """Per-example gradient alignment for one model (docs/method.md §2).

    Calls whose tensors do not carry the batch of ``x`` on axis 0 (a positional
    Embedding over ``arange``, a Dense on a time-major tensor, a weight fed to another
    layer) are found per input signature (:meth:`plan_for`); their layers' weights are
    rewarded by one exact JVP of the whole model (docs/method.md §2).

    Args:
        model: a built Keras model or layer. Its structure is never changed (layer calls
            are wrapped only inside :meth:`recording`), but a recorded forward pass in
            training mode updates its state as any training call does, e.g. BatchNorm
            moving statistics.
        exclude: layer types whose own weights are left out of the reward
            (default: the normalisation layers, as in the reference).
        strict: raise instead of using the exact fallback for layers with
            trainable weights and no registered rule.
        similarity: ``"dot"`` (docs/method.md §2) or ``"cosine"``, computed per
            weight tensor and summed over tensors (docs/method.md §3).
        rules: the :class:`RuleRegistry` to use (default: the process-wide one;
            ``gar_tf.default_rules()`` gives a copy to scope additions).
        paths: how each rule layer's reward is computed (docs/method.md §12):
            ``"tangent"`` (default), ``"auto"`` (the cost model of
            ``gar_tf.alignment.paths``), ``"materialised"`` or ``"gram"`` for every layer
            that has it, or ``{layer name: path}`` (the rest ``"auto"``). :meth:`describe`
            shows the choice.
        batch_direction: whether the caller passes :meth:`alignment` the ``comparison``
            calls whose summed gradient is the direction (GARModel does for ``"next"``,
            ``"same"`` and ``"alternate"``); only then is the ``"gram"`` path offered.
    """

    def __init__(
        self,
        model: keras.layers.Layer,
        *,
        exclude: tuple[type, ...] = DEFAULT_EXCLUDED,
        strict: bool = False,
        similarity: str = "dot",
        rules: RuleRegistry | None = None,
        paths: str | Mapping[str, str] = "tangent",
        batch_direction: bool = False,
    ) -> None:
        if similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}.")
        self.model = model
        self.similarity = similarity
        self.plan: Plan = build_plan(model, tuple(exclude), strict, rules)
        reward_paths.check_choice(paths, [u.layer.name for u in self.plan.units if u.rule])
        self.paths = paths
        self.batch_direction = batch_direction and similarity == "dot"
        if similarity == "cosine" and self.plan.fallback_layers:
            names = ", ".join(layer.name for layer in self.plan.fallback_layers)
            raise ValueError(
                "similarity='cosine' needs per-example gradient norms, which only "
                f"layers with a rule provide; these use the fallback: {names}. "
                "Register rules for them, exclude them, or use similarity='dot'."
            )
        self._var_index = {id(v): i for i, v in enumerate(model.trainable_variables)}
        self._plans: dict[tuple, tuple[Plan, list[reward_paths.PathCost]]] = {}

    @property
    def covered_variables(self) -> list[keras.Variable]:
        """The trainable variables that enter the reward."""
        return [v for unit in self.plan.units for v in unit.variables.values()]

    def plan_for(self, x, training: bool = True) -> Plan:
        """The plan for ``model(x, training=training)``: :attr:`plan` with the units that
        have a call without the batch of ``x`` on axis 0 folded into the JVP unit of the
        nearest enclosing layer whose calls carry it, else of the whole model
        (``plan.fold``), and each rule unit's path chosen (``paths.choose``).
        Decided once per input signature by tracing the model at two batch sizes
        (``tap.probe``), never from a tensor's own shape.

        Raises:
            ValueError: the model's outputs lack the batch axis, or ``similarity="cosine"``
                with such calls (the message names the layers).
        """
        return self._planned(x, training)[0]

    def _planned(self, x, training: bool) -> tuple[Plan, list[reward_paths.PathCost]]:
        x = tf.nest.map_structure(tf.convert_to_tensor, x)
        batch = tf.nest.flatten(x)[0].shape[0]  # None when not static; costs the Gram form
        key = (
            str(tf.nest.map_structure(lambda _: None, x)),
            tuple((tuple(t.shape[1:]), t.dtype.name) for t in tf.nest.flatten(x)),
            bool(training),
            batch if self.batch_direction else None,
        )
        if key not in self._plans:
            unbatched, calls = probe(self.plan, self.model, x, training)
            if unbatched and self.similarity == "cosine":
                names = ", ".join(u.layer.name for u in unbatched)
                raise ValueError(
                    "similarity='cosine' needs per-example gradient norms, which only "
                    "layers with a rule called on the batch axis provide; these layers "
                    f"are called on tensors without the batch on axis 0: {names}. "
                    "Exclude them or use similarity='dot'."
                )
            folded = fold(self.plan, self._enclosing(unbatched, x, training))
            self._plans[key] = reward_paths.choose(
                folded, calls, self.paths, batch, self.batch_direction
            )
        return self._plans[key]

    def _enclosing(self, unbatched: list[Unit], x, training: bool) -> dict[int, keras.layers.Layer]:
        """Per unbatched unit, the nearest layer that holds it and whose calls all carry the
        batch on axis 0 (not a rule layer); the model itself if none does."""
        ruled = {id(u.layer) for u in self.plan.units if u.rule is not None}
        chains = {
            id(u): [a for a in enclosing_layers(self.model, u.layer)[:-1] if id(a) not in ruled]
            for u in unbatched
        }
        candidates = {id(a): a for chain in chains.values() for a in chain}
        if candidates:
            probed = Plan([Unit(a, {}, None) for a in candidates.values()], [])
            batched = {id(u.layer) for u in batched_units(probed, self.model, x, training)}
        else:
            batched = set()
        return {
            u: next((a for a in chain if id(a) in batched), self.model)
            for u, chain in chains.items()
        }

    def describe(self, x, training: bool = True) -> list[reward_paths.PathCost]:
        """Per unit of :meth:`plan_for`'s plan for ``model(x)``: the path it takes, its
        extra FLOPs and the bytes it keeps until the next step, per example, and the same
        for the other paths it has (docs/method.md §12). JVP units (``"fallback"``, and
        ``"enclosing"`` for layers called without the batch axis) show unknown costs."""
        return list(self._planned(x, training)[1])

    def recording(self, x, *, training: bool = True, detach: bool = False):
        """Context manager recording the layer calls of ``model(x, training=training)``
        (see ``tap.recording``), with the plan :meth:`plan_for` gives. ``detach``: the
        materialised layers' weights get no autodiff gradient through these calls; add
        :meth:`batch_gradients` of the states :meth:`materialise` returns."""
        return recording(self.plan_for(x, training), detach=detach)

    def materialise(self, states: Sequence[CallState]) -> list[CallState]:
        """``states`` with each materialised unit's call holding its per-example weight
        gradients ``g_i`` (float32) in place of its inputs and output gradients."""
        out = []
        for state in states:
            if state.unit.path != "materialised":
                out.append(state)
                continue
            x, _, delta = self._rule_arguments(state)
            grads = state.unit.rule.per_example(state.unit.layer, x, delta)
            per_example = {name: grads[name] for name in state.unit.variables}
            out.append(dataclasses.replace(state, inputs=[], grads=[], per_example=per_example))
        return out

    def batch_gradients(
        self, gradient: Sequence[tf.Tensor | None], states: Sequence[CallState]
    ) -> list[tf.Tensor | None]:
        """``gradient`` (one entry per ``model.trainable_variables``) plus ``sum_i g_i`` of
        every detached call: the batch gradient autodiff skipped for them."""
        gradient = list(gradient)
        for state in states:
            if not state.detached:
                continue
            for name, g in state.per_example.items():
                variable = state.unit.variables[name]
                i = self._var_index[id(variable)]
                total = tf.cast(tf.reduce_sum(g, axis=0), variable.dtype)
                gradient[i] = total if gradient[i] is None else gradient[i] + total
        return gradient

    def check_direction(self, direction: Sequence[tf.Tensor | None]) -> None:
        """Raises ValueError unless ``direction`` matches ``model.trainable_variables``."""
        variables = self.model.trainable_variables
        if len(direction) != len(variables):
            raise ValueError(
                f"direction has {len(direction)} tensors but the model has "
                f"{len(variables)} trainable variables; pass one tensor (or None) per "
                "entry of model.trainable_variables, in that order."
            )
        for v, d in zip(variables, direction):
            if d is not None and tuple(d.shape) != tuple(v.shape):
                raise ValueError(
                    f"direction entry for {v.path} has shape {tuple(d.shape)}, "
                    f"expected {tuple(v.shape)}."
                )

    def alignment(
        self,
        states: Sequence[CallState],
        direction: Sequence[tf.Tensor | None],
        comparison: Sequence[CallState] | None = None,
    ) -> tf.Tensor:
        """Per-example alignment [B] (float32) of the recorded batch with ``direction``.

        ``comparison``: the recorded calls (in the order of ``states``) of the batch whose
        gradient of the recorded loss *is* ``direction`` on the weights of the ``"gram"``
        units (no regularisation on them, one replica); those units then use the Gram form
        where it is cheaper, else the tangent (docs/method.md §12).
        """
        terms: dict[tuple[int, str], list[tf.Tensor]] = {}
        grads: dict[tuple[int, str], list[tf.Tensor]] = {}
        units = {id(state.unit): state.unit for state in states}
        others = [None] * len(states) if comparison is None else list(comparison)
        total = []
        for state, other in zip(states, others, strict=True):
            directions = self._unit_directions(state.unit, direction)
            if not directions:
                continue
            if self.similarity == "dot":
                if other is not None and state.unit.path == "gram":
                    total.append(self._gram(state, other, directions))
                else:
                    total.append(self._dot(state, directions))
                continue
            for name, (term, grad) in self._per_tensor(state, directions).items():
                key = (id(state.unit), name)
                terms.setdefault(key, []).append(term)
                grads.setdefault(key, []).append(grad)
        if self.similarity == "cosine":
            for (u, name), parts in terms.items():
                v = self._unit_directions(units[u], direction)[name]
                g = tf.add_n(grads[(u, name)])
                norm = tf.sqrt(sum_per_example(tf.square(g))) * tf.norm(v)
                total.append(tf.add_n(parts) / (norm + _EPSILON))
        if not total:
            raise ValueError(
                "No covered weight has a direction: the reward would be empty. Check "
                "that the model has Dense/Conv/Embedding layers (or rules for its "
                "layers) and that the direction is not all None."
            )
        return tf.add_n(total)

    def _unit_directions(self, unit: Unit, direction) -> dict[str, tf.Tensor]:
        out = {}
        for name, var in unit.variables.items():
            d = direction[self._var_index[id(var)]]
            if d is not None:
                out[name] = tf.cast(tf.convert_to_tensor(d), tf.float32)
        return out

    @staticmethod
    def _check_batch(state: CallState) -> None:
        batch, first = state.grads[0].shape[0], state.inputs[0].shape[0]
        if batch is not None and first is not None and first != batch:
            raise ValueError(
                f"Layer {state.unit.layer.name!r} was called on a tensor whose first "
                f"axis ({first}) is not the batch ({batch}); per-example rewards need "
                "the batch on axis 0. Exclude this layer or register a rule for it."
            )

    @classmethod
    def _rule_arguments(cls, state: CallState):
        """The rule's ``(inputs, weights)`` and ``delta`` of a recorded call, in float32."""
        cls._check_batch(state)
        names = [w.name for w in state.unit.snapshot_variables()]
        weights = dict(zip(names, (_float32(w) for w in state.weights)))
        return _float32(state.inputs[0]), weights, _float32(state.grads[0])

    def _dot(self, state: CallState, directions) -> tf.Tensor:
        if state.per_example is not None:
            return tf.add_n(
                [sum_per_example(state.per_example[n] * v) for n, v in directions.items()]
            )
        if state.unit.rule is None:
            return self._fallback(state, directions)
        unit = state.unit
        x, weights, delta = self._rule_arguments(state)
        tangents = unit.rule.tangents(unit.layer, x, directions, weights)
        total = functools.reduce(tf.add, (tf.cast(t, tf.float32) for t in tangents.values()))
        return sum_per_example(delta * total)

    def _gram(self, state: CallState, other: CallState, directions) -> tf.Tensor:
        """``<g_i, sum_j g'_j>`` by the rule's Gram form where its FLOPs, for ``other``'s
        batch, are at most the tangent's; else the tangent along ``directions``."""
        unit = state.unit
        x, _, delta = self._rule_arguments(state)
        other_x, _, other_delta = self._rule_arguments(other)

        def gram():
            alignments = unit.rule.gram(unit.layer, x, delta, other_x, other_delta)
            return tf.add_n([tf.cast(alignments[name], tf.float32) for name in directions])

        shapes = tuple(x.shape[1:]), tuple(delta.shape[1:])
        tangent = unit.rule.flops(unit.layer, *shapes) if unit.rule.flops else None
        batch = other_x.shape[0]
        if tangent is None or batch is not None:
            if tangent is None or reward_paths.gram_flops(*shapes, batch) <= tangent:
                return gram()
            return self._dot(state, directions)
        batch = tf.shape(other_x)[0]
        # FLOPs of the Gram form per example: 2 B' (in + out + 1), against the tangent's.
        cheaper = reward_paths.gram_flops(*shapes, 1) * tf.cast(batch, tf.int64) <= tangent
        return tf.cond(cheaper, gram, lambda: self._dot(state, directions))

    def _per_tensor(self, state: CallState, directions):
        """{name: (dot term [B], per-example gradient [B, *shape])} for cosine."""
        if state.per_example is not None:
            return {
                name: (sum_per_example(state.per_example[name] * v), state.per_example[name])
                for name, v in directions.items()
            }
        unit = state.unit
        x, weights, delta = self._rule_arguments(state)
        tangents = unit.rule.tangents(unit.layer, x, directions, weights)
        return {
            name: (
                sum_per_example(delta * tf.cast(tangent, tf.float32)),
                _per_example_gradient(unit, x, delta, name, directions[name], weights),
            )
            for name, tangent in tangents.items()
        }

    def _fallback(self, state: CallState, directions) -> tf.Tensor:
        """``<delta, J V>`` with J the layer's Jacobian in its own weights, at the
        recorded inputs and weights: exact, one layer at a time (docs/method.md §2)."""
        layer = state.unit.layer
        structure, is_tensor = state.structure
        inputs = iter(state.inputs)
        flat = tf.nest.flatten(structure)
        leaves = [next(inputs) if t else a for a, t in zip(flat, is_tensor)]
        args, kwargs = tf.nest.pack_sequence_as(structure, leaves)
        n_trainable = len(layer.trainable_variables)
        trainable = list(state.weights[:n_trainable])
        non_trainable = list(state.weights[n_trainable:])
        paths = [v.path for v in layer.trainable_variables]
        primals, tangents = [], []
        for i, path in enumerate(paths):
            if path in directions:
                primals.append(trainable[i])
                tangents.append(tf.cast(directions[path], trainable[i].dtype))
        # J V by double backprop, d/du <J^T u, V>: unlike forward mode it also runs
        # through the while loops of recurrent layers inside tf.function.
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner, _autocast(layer):
                inner.watch(primals)
                outputs, _ = layer.stateless_call(trainable, non_trainable, *args, **kwargs)
                outputs = [loss_facing(o) for o in tf.nest.flatten(outputs)]
                cotangents = [tf.zeros_like(o) for o in outputs]
                outer.watch(cotangents)
                pairing = tf.add_n([tf.reduce_sum(u * o) for u, o in zip(cotangents, outputs)])
            vjp = inner.gradient(pairing, primals, unconnected_gradients="zero")
            projected = tf.add_n([_inner(g, v) for g, v in zip(vjp, tangents)])
        jvps = outer.gradient(projected, cotangents, unconnected_gradients="zero")
        return tf.add_n(
            [sum_per_example(_float32(g) * _float32(j)) for g, j in zip(state.grads, jvps)]
        )


def _inner(g, v: tf.Tensor) -> tf.Tensor:
    """``sum(g * v)``; a sparse ``g`` (an Embedding's gradient) reads only its rows of ``v``."""
    if isinstance(g, tf.IndexedSlices):
        return tf.reduce_sum(g.values * tf.gather(v, g.indices))
    return tf.reduce_sum(g * v)


def _autocast(layer):
    """The variable autocast ``Layer.__call__`` would set up (``stateless_call`` does
    not): mixed-precision layers compute in ``compute_dtype``."""
    if layer.autocast and layer.compute_dtype != layer.variable_dtype:
        return autocast_scope(layer.compute_dtype)
    return contextlib.nullcontext()


def _per_example_gradient(unit, x, delta, name, like, weights):
    """Each example's gradient for one weight, one layer at a time (cosine only)."""

    def one(args):
        xi, di = args
        v0 = tf.zeros_like(like)
        with tf.GradientTape() as tape:
            tape.watch(v0)
            tangent = unit.rule.tangents(unit.layer, xi[None], {name: v0}, weights)[name]
            s = tf.reduce_sum(di[None] * tf.cast(tangent, tf.float32))
        return tf.convert_to_tensor(tape.gradient(s, v0))

    return tf.vectorized_map(one, (x, delta))


def _check_batched(model, x, y) -> None:
    """Raises ValueError when ``x`` lacks the batch axis the model expects."""
    x_flat = [tf.convert_to_tensor(t) for t in tf.nest.flatten(x)]
    expected = [len(t.shape) for t in tf.nest.flatten(getattr(model, "inputs", None) or [])]
    ranks = [t.shape.rank for t in x_flat]
    if not x_flat or 0 in ranks or (expected and ranks != expected):
        raise ValueError(
            f"x must be batched: got inputs of rank {ranks}"
            + (f", the model expects rank {expected} (batch first)" if expected else "")
            + ". Add a leading batch axis, e.g. x[None] for a single example."
        )
    n_y = tf.convert_to_tensor(tf.nest.flatten(y)[0]).shape
    if n_y.rank and n_y[0] is not None and x_flat[0].shape[0] not in (None, n_y[0]):
        raise ValueError(f"x has {x_flat[0].shape[0]} examples but y has {n_y[0]}: is x unbatched?")


def per_example_losses(loss_fn, y_true, y_pred) -> tf.Tensor:
    """Unreduced losses [B] from a Keras loss (its ``call``) or a callable."""
    if isinstance(loss_fn, keras.losses.Loss):
        losses = loss_fn.call(y_true, y_pred)
    else:
        losses = loss_fn(y_true, y_pred)
    losses = tf.convert_to_tensor(losses)
    if losses.shape.rank == 0:
        raise ValueError(
            "loss_fn returned a scalar; per-example alignment needs one loss per "
            "example. Pass a keras.losses.Loss instance or a callable returning "
            "shape [batch] (e.g. keras.losses.sparse_categorical_crossentropy)."
        )
    if losses.shape.rank > 1:
        losses = tf.reduce_mean(tf.reshape(losses, [tf.shape(losses)[0], -1]), axis=1)
    return tf.cast(losses, tf.float32)


def per_example_alignment(
    model: keras.layers.Layer,
    loss_fn,
    x,
    y,
    direction: Sequence[tf.Tensor | None],
    sample_weight=None,
    *,
    training: bool = True,
    similarity: str = "dot",
    exclude: tuple[type, ...] = DEFAULT_EXCLUDED,
    strict: bool = False,
    rules: RuleRegistry | None = None,
    paths: str | Mapping[str, str] = "tangent",
) -> tf.Tensor:
    """Each example's share of ``<grad L, direction>``, shape [B], float32.

    ``L = mean_i(w_i * l_i)`` with per-example losses ``l_i = loss_fn(y, model(x))``
    and weights ``w`` (default 1). ``sum_i r_i = <grad L, direction>`` over the covered
    weights; without cross-example coupling (no BatchNorm in training mode)
    ``r_i = w_i <grad l_i, direction> / B`` (docs/method.md §2). ``direction`` holds one
    tensor (or None) per ``model.trainable_variables`` entry; entries of excluded
    weights (normalisation layers by default) are ignored. ``paths``: see
    :class:`AlignmentEngine`; every path gives the same rewards up to round-off.

    Raises:
        ValueError: mismatching ``direction``, scalar or non-finite losses, or an
            input without a batch axis.
    """
    _check_batched(model, x, y)
    if not model.built:
        model(x, training=False)
    engine = AlignmentEngine(
        model, exclude=exclude, strict=strict, similarity=similarity, rules=rules, paths=paths
    )
    engine.check_direction(direction)
    rec: Recording
    with tf.GradientTape() as tape:
        with engine.recording(x, training=training) as rec:
            y_pred = model(x, training=training)
        losses = per_example_losses(loss_fn, y, y_pred)
        batch = tf.convert_to_tensor(tf.nest.flatten(x)[0]).shape[0]
        if losses.shape[0] is not None and batch is not None and losses.shape[0] != batch:
            raise ValueError(
                f"loss_fn returned {losses.shape[0]} losses for a batch of {batch}; "
                "is x unbatched or the loss reduced over the batch?"
            )
        if sample_weight is not None:
            losses = losses * tf.cast(tf.reshape(sample_weight, [-1]), tf.float32)
        loss = tf.reduce_mean(losses)
        if tf.executing_eagerly() and not bool(tf.math.is_finite(loss)):
            raise ValueError(
                f"The batch loss is not finite ({float(loss)}); check the inputs and labels."
            )
        loss = tf.debugging.assert_all_finite(loss, "gar_tf: the batch loss is not finite.")
    grads = tape.gradient(loss, rec.outputs)
    return engine.alignment(engine.materialise(rec.states(grads)), direction)
