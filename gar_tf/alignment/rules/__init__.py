"""Built-in alignment rules, one module per layer family, and the registry in use.

``default_rules()`` is a new registry holding the built-in rules and those added with
:func:`register_rule`; pass it (or your own :class:`RuleRegistry`) as ``rules=`` to scope
rules to one engine. Engines made without ``rules=`` read the process-wide registry
that :func:`register_rule` adds to.
"""

from __future__ import annotations

from collections.abc import Callable

from gar_tf.alignment.registry import RuleRegistry, TangentFn
from gar_tf.alignment.rules import conv, dense, embedding

BUILTIN = RuleRegistry([dense.RULES, conv.RULES, embedding.RULES])
_REGISTERED = BUILTIN.copy()


def registered_rules() -> RuleRegistry:
    """The process-wide registry (built-in rules plus :func:`register_rule` additions)."""
    return _REGISTERED


def default_rules() -> RuleRegistry:
    """A new registry with the built-in rules and those added by :func:`register_rule`."""
    return _REGISTERED.copy()


def register_rule(layer_type: type, **options) -> Callable[[TangentFn], TangentFn]:
    """Registers ``fn`` as the process-wide alignment rule for ``layer_type`` (decorator).

    ``options`` are those of :meth:`RuleRegistry.register`: ``weights`` (required),
    ``activation="activation"``, ``needs_weights=False``, ``per_example=None``,
    ``flops=None``, ``gram=None``, ``replace=False``.
    Example, for a layer computing ``z = x @ kernel * scale`` with a fixed scale::

        @gar_tf.register_rule(ScaledDense, weights=("kernel",), activation=None)
        def _scaled_dense(layer, inputs, direction, weights):
            return {"kernel": inputs @ direction["kernel"] * layer.scale}

    A subclass of ``layer_type`` uses the rule only if it does not override
    ``call``; otherwise it gets its own rule or the exact fallback. A type that
    already has a rule raises unless ``replace=True``.
    """
    return _REGISTERED.register(layer_type, **options)
