"""The reward engine: per-example gradient alignment (docs/method.md §2)."""

from gar_tf.alignment.engine import AlignmentEngine, per_example_alignment
from gar_tf.alignment.plan import DEFAULT_EXCLUDED
from gar_tf.alignment.registry import LayerRule, RuleRegistry
from gar_tf.alignment.rules import default_rules, register_rule

__all__ = [
    "DEFAULT_EXCLUDED",
    "AlignmentEngine",
    "LayerRule",
    "RuleRegistry",
    "default_rules",
    "per_example_alignment",
    "register_rule",
]
