"""The reward engine: per-example gradient alignment (GAR_SPEC §1)."""

from gar_tf.alignment.engine import AlignmentEngine, per_example_alignment
from gar_tf.alignment.plan import DEFAULT_EXCLUDED
from gar_tf.alignment.registry import LayerRule, register_rule

__all__ = [
    "DEFAULT_EXCLUDED",
    "AlignmentEngine",
    "LayerRule",
    "per_example_alignment",
    "register_rule",
]
