"""Records, during a forward pass, what each unit needs for its reward (docs/method.md §2, §7).

While a :func:`recording` is open on a thread, every planned layer's ``call`` is
wrapped: a rule layer records its input and its pre-activation output (the
fused activation is applied after the record), a fallback layer records all
its call arguments, its outputs and a snapshot of its weights. Outside the
context the model is exactly as the user built it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import keras
import tensorflow as tf

from gar_tf._compat import in_stateless_scope, keras_logits
from gar_tf.alignment.paths import CallShape
from gar_tf.alignment.plan import Plan, Unit


@dataclasses.dataclass
class CallState:
    """What one call of one unit left behind: enough to reward its examples later.

    ``inputs`` are the rule layer's input, or the fallback layer's tensor
    arguments (``structure`` holds the full ``(args, kwargs)`` with ``None`` where
    a tensor goes); ``grads`` are dL/d(recorded outputs), the ``delta`` of
    docs/method.md §2; ``weights`` are the snapshot the unit needs. On the materialised
    path, ``per_example`` holds each example's weight gradients ``{name: [B, *shape]}``
    instead of ``inputs`` and ``grads``; ``detached``: autodiff did not compute this call's
    share of the batch gradient, ``sum_i per_example`` is it (docs/method.md §12).
    """

    unit: Unit
    inputs: list[tf.Tensor]
    grads: list[tf.Tensor]
    weights: list[tf.Tensor]
    structure: Any = None
    per_example: dict[str, tf.Tensor] | None = None
    detached: bool = False

    def examples(self) -> dict[str, Any]:
        """The tensors with the batch on axis 0: inputs and output gradients, or the
        per-example gradients."""
        if self.per_example is not None:
            return {"per_example": dict(self.per_example)}
        return {"inputs": list(self.inputs), "grads": list(self.grads)}

    def batch_size(self) -> tf.Tensor:
        """The number of examples the call recorded (axis 0 of its per-example tensors)."""
        return tf.shape(tf.nest.flatten(self.examples())[0])[0]

    def mapped(self, fn) -> CallState:
        """A copy with ``fn`` applied to the output gradients and per-example gradients
        (e.g. undoing a loss scale: both are linear in the loss)."""
        per_example = self.per_example
        if per_example is not None:
            per_example = {name: fn(g) for name, g in per_example.items()}
        return dataclasses.replace(self, grads=[fn(g) for g in self.grads], per_example=per_example)

    def fixed(self) -> dict[str, list[tf.Tensor]]:
        """The tensors without a batch axis: the weight snapshot."""
        return {"weights": list(self.weights)}

    def replaced(self, examples: dict, fixed: dict) -> CallState:
        """A copy holding ``examples`` and ``fixed`` (as returned by the two methods above)."""
        if "per_example" in examples:
            return dataclasses.replace(
                self, per_example=dict(examples["per_example"]), weights=list(fixed["weights"])
            )
        return dataclasses.replace(
            self,
            inputs=list(examples["inputs"]),
            grads=list(examples["grads"]),
            weights=list(fixed["weights"]),
        )


@dataclasses.dataclass
class _Call:
    unit: Unit
    inputs: list[tf.Tensor]
    outputs: list[tf.Tensor]
    weights: list[tf.Tensor]
    structure: Any = None
    detached: bool = False


class Recording:
    """The calls recorded during one forward pass (in the graph it was opened in) with
    the units of one plan; ``detach``: materialised units' weights are read with a zero
    gradient, so that autodiff skips their weight gradients."""

    def __init__(self, plan: Plan, detach: bool = False) -> None:
        self.calls: list[_Call] = []
        self.units = {id(unit.layer): unit for unit in plan.units}
        self.detach = detach
        self._graph = _graph()

    @property
    def outputs(self) -> list[tf.Tensor]:
        """The tensors whose loss gradients the rewards need, in a flat list."""
        return [t for call in self.calls for t in call.outputs]

    def states(self, output_grads: list[tf.Tensor | None]) -> list[CallState]:
        """Pairs each call with the gradients of ``outputs`` (None counts as zero)."""
        grads = iter(output_grads)
        states = []
        for call in self.calls:
            g = [next(grads) for _ in call.outputs]
            g = [tf.zeros_like(o) if gi is None else gi for gi, o in zip(g, call.outputs)]
            states.append(
                CallState(
                    call.unit,
                    call.inputs,
                    g,
                    call.weights,
                    call.structure,
                    detached=call.detached,
                )
            )
        return states


_local = threading.local()
_lock = threading.Lock()
_installed: dict[int, list] = {}  # id(layer) -> [count, restore]


def _graph():
    return None if tf.executing_eagerly() else tf.compat.v1.get_default_graph()


def _current() -> Recording | None:
    """The open recording, unless Keras is tracing a scratch graph (shape inference)."""
    recording = getattr(_local, "recording", None)
    if recording is not None and recording._graph is not _graph():
        return None
    return recording


def weight_snapshot(variables: list[keras.Variable]) -> list[tf.Tensor]:
    return [tf.identity(v.value) for v in variables]


def loss_facing(t: tf.Tensor) -> tf.Tensor:
    """The tensor a Keras loss differentiates through: the logits behind a softmax or
    sigmoid output (Keras losses read them directly), else ``t`` itself."""
    logits = keras_logits(t)
    if logits is not None:
        return logits
    op = None if tf.executing_eagerly() else getattr(t, "op", None)
    if op is not None and op.type in ("Softmax", "Sigmoid") and len(op.inputs) == 1:
        return op.inputs[0]
    return t


def _first_input(args, kwargs):
    return args[0] if args else kwargs["inputs"]


@tf.custom_gradient
def _without_gradient(value):
    """``value``, with a zero gradient that does not read the incoming one: autodiff's
    weight-gradient op for this read has no consumer and is pruned from the graph (a
    ``tf.stop_gradient`` would also cut the layer's output off an unwatched input)."""
    return tf.identity(value), lambda upstream: tf.zeros(value.shape, upstream.dtype)


def _detached(unit: Unit):
    """A scope in which the unit's weights read through :func:`_without_gradient`."""
    mapping = [(v, _without_gradient(v.value)) for v in unit.variables.values()]
    return keras.StatelessScope(state_mapping=mapping)


def _wrap_rule(unit: Unit, call, activation):
    def wrapped(*args, **kwargs):
        recording = _current()
        if recording is None:
            z = call(*args, **kwargs)
            return z if activation is None else activation(z)
        planned = recording.units.get(id(unit.layer), unit)
        weights = weight_snapshot(planned.snapshot_variables())
        detach = recording.detach and planned.path == "materialised" and not in_stateless_scope()
        with _detached(planned) if detach else contextlib.nullcontext():
            z = call(*args, **kwargs)
        recording.calls.append(
            _Call(planned, [_first_input(args, kwargs)], [z], weights, detached=detach)
        )
        return z if activation is None else activation(z)

    return wrapped


def _wrap_fallback(unit: Unit, call):
    def wrapped(*args, **kwargs):
        recording = _current()
        if recording is None:
            return call(*args, **kwargs)
        planned = recording.units.get(id(unit.layer), unit)
        weights = weight_snapshot(planned.snapshot_variables())
        outputs = call(*args, **kwargs)
        flat = tf.nest.flatten((args, kwargs))
        is_tensor = [tf.is_tensor(a) or isinstance(a, keras.Variable) for a in flat]
        structure = tf.nest.pack_sequence_as(
            (args, kwargs), [None if t else a for a, t in zip(flat, is_tensor)]
        )
        inputs = [tf.convert_to_tensor(a) for a, t in zip(flat, is_tensor) if t]
        recording.calls.append(
            _Call(
                planned,
                inputs,
                [loss_facing(o) for o in tf.nest.flatten(outputs)],
                weights,
                (structure, is_tensor),
            )
        )
        return outputs

    return wrapped


def _install(unit: Unit) -> None:
    layer = unit.layer
    entry = _installed.get(id(layer))
    if entry is not None:
        entry[0] += 1
        return
    had_call = "call" in layer.__dict__
    original_call = layer.call
    if unit.rule is None:
        wrapper = _wrap_fallback(unit, original_call)
        restore_activation = None
    else:
        attr = unit.rule.activation
        activation = getattr(layer, attr) if attr else None
        if activation is not None:
            object.__setattr__(layer, attr, keras.activations.linear)
        wrapper = _wrap_rule(unit, original_call, activation)
        restore_activation = (attr, activation) if activation is not None else None
    object.__setattr__(layer, "call", wrapper)

    def restore():
        if had_call:
            object.__setattr__(layer, "call", original_call)
        else:
            object.__delattr__(layer, "call")
        if restore_activation is not None:
            object.__setattr__(layer, *restore_activation)

    _installed[id(layer)] = [1, restore]


def _uninstall(unit: Unit) -> None:
    entry = _installed[id(unit.layer)]
    entry[0] -= 1
    if entry[0] == 0:
        del _installed[id(unit.layer)]
        entry[1]()


@contextlib.contextmanager
def recording(plan: Plan, warn: bool = True, detach: bool = False) -> Iterator[Recording]:
    """Records every planned layer call made on this thread inside the block; ``warn``
    names the planned layers that were never called; ``detach``: see :class:`Recording`."""
    if _current() is not None:
        raise RuntimeError("A gar_tf recording is already open on this thread.")
    with _lock:
        for unit in plan.units:
            _install(unit)
    previous = getattr(_local, "recording", None)  # open in another graph, if any
    _local.recording = rec = Recording(plan, detach)
    try:
        yield rec
    finally:
        _local.recording = previous
        with _lock:
            for unit in plan.units:
                _uninstall(unit)
    recorded = {id(call.unit) for call in rec.calls}
    missed = [unit.layer.name for unit in plan.units if id(unit) not in recorded]
    if missed and warn:
        warnings.warn(
            f"gar_tf recorded no call of {missed}: their weights get no reward. A layer "
            "called inside control flow (a cond or loop in the model's call) cannot be "
            "recorded; wrap that part in a layer of its own (it then gets the exact "
            "fallback) or exclude the layers.",
            stacklevel=3,
        )


#: Two batch sizes no model dimension is likely to equal. A recorded tensor carries the
#: batch on axis 0 when its leading dimension is the input's batch size in both traces.
PROBE_BATCHES = (7919, 7907)


def probe(
    plan: Plan, model: keras.layers.Layer, x, training: bool = True
) -> tuple[list[Unit], list[CallShape]]:
    """``(units, calls)``: the units with a call whose tensors (a rule's input and output, a
    fallback layer's outputs) lack the batch of ``x`` on axis 0, and the per-example shapes
    of the rule calls, found by tracing ``model(x)`` (never run) with ``x``'s batch axis
    set to each of :data:`PROBE_BATCHES` (docs/method.md §2).

    Raises:
        ValueError: the model's own outputs lack the batch on axis 0.
    """
    traces = _traces(plan, model, x, training)
    for batch, _, outputs in traces:
        if not _all_lead(outputs, batch):
            raise ValueError(
                f"The outputs of {model.name!r} (shapes {[tuple(t.shape) for t in outputs]} for a "
                f"batch of {batch}) do not carry the batch on axis 0: per-example rewards "
                "need one output row per example. Reduce over the batch in the loss, not "
                "in the model."
            )
    unbatched = _unbatched(traces)
    shapes = [
        CallShape(
            call.unit,
            tuple(call.inputs[0].shape[1:]),
            tuple(call.outputs[0].shape[1:]),
            call.inputs[0].dtype,
            call.outputs[0].dtype,
        )
        for call in traces[-1][1]
        if call.unit.rule is not None and id(call.unit) not in unbatched
    ]
    return [unit for unit in plan.units if id(unit) in unbatched], shapes


def batched_units(plan: Plan, model: keras.layers.Layer, x, training: bool = True) -> list[Unit]:
    """The units of ``plan`` that ``model(x)`` calls, every call's recorded tensors carrying
    the batch of ``x`` on axis 0 (traced as in :func:`probe`)."""
    traces = _traces(plan, model, x, training)
    called = {id(call.unit) for _, calls, _ in traces for call in calls}
    return [unit for unit in plan.units if id(unit) in called - _unbatched(traces)]


def _traces(plan: Plan, model, x, training: bool) -> list[tuple[int, list, list]]:
    """``(batch, recorded calls, outputs)`` of ``model(x)`` traced at each of
    :data:`PROBE_BATCHES`."""
    return [(batch, *_trace(plan, model, x, training, batch)) for batch in PROBE_BATCHES]


def _unbatched(traces) -> set[int]:
    """``id`` of each unit with a call, in any of ``traces``, whose recorded tensors do not
    lead with that trace's batch."""
    return {
        id(call.unit)
        for batch, calls, _ in traces
        for call in calls
        if not _all_lead(_per_example(call), batch)
    }


def _all_lead(tensors: list, batch: int) -> bool:
    return all(t.shape.rank and t.shape[0] == batch for t in tensors)


def _trace(plan: Plan, model, x, training: bool, batch: int):
    """``(recorded calls, outputs)`` of one call of ``model`` traced (not run) with ``x``'s
    batch axis of size ``batch`` (symbolic tensors of a finished trace: read shapes only)."""
    specs = tf.nest.map_structure(
        lambda t: tf.TensorSpec([batch, *t.shape[1:]] if t.shape.rank else [], t.dtype), x
    )
    found = []

    def traced(inputs):
        with recording(plan, warn=False) as rec:
            outputs = model(inputs, training=training)
        found.append((rec.calls, tf.nest.flatten(outputs)))
        return []

    try:
        tf.function(traced).get_concrete_function(specs)
    except Exception as err:  # any failure of the user's model in the trace
        raise ValueError(
            f"gar_tf traces {model.name!r} with a batch of {batch} to find the layer calls "
            f"that carry the batch on axis 0, and the trace failed ({type(err).__name__}, "
            "above). Per-example rewards need a model that accepts any batch size: do not "
            "fix it in reshapes or constants."
        ) from err
    return found[-1]


def _per_example(call: _Call) -> list:
    """The tensors a call's reward reads per example on axis 0."""
    return call.outputs if call.unit.rule is None else [*call.inputs, *call.outputs]
