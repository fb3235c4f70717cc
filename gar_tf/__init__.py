"""gar-tf: in-loop meta-learning with the gradient-alignment reward (GAR) for Keras 3."""

from gar_tf import backbones, callbacks, datasets, plots
from gar_tf.alignment import (
    DEFAULT_EXCLUDED,
    AlignmentEngine,
    LayerRule,
    RuleRegistry,
    default_rules,
    per_example_alignment,
    register_rule,
)
from gar_tf.comparison import with_comparison
from gar_tf.export import export_policy, load_policy
from gar_tf.model import GARModel
from gar_tf.multi_worker import is_chief, worker_path
from gar_tf.policies import (
    AugmentationPolicy,
    Policy,
    SplitSampler,
    reinforce_loss,
    standardise,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_EXCLUDED",
    "AlignmentEngine",
    "AugmentationPolicy",
    "GARModel",
    "LayerRule",
    "RuleRegistry",
    "default_rules",
    "Policy",
    "export_policy",
    "load_policy",
    "per_example_alignment",
    "register_rule",
    "is_chief",
    "worker_path",
    "SplitSampler",
    "reinforce_loss",
    "backbones",
    "callbacks",
    "datasets",
    "plots",
    "standardise",
    "with_comparison",
]
