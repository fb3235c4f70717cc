"""Policies: distributions over per-example actions trained by GAR rewards."""

from gar_tf.policies.augmentation import AugmentationPolicy
from gar_tf.policies.base import Policy
from gar_tf.policies.reinforce import reinforce_loss, standardise
from gar_tf.policies.split_sampler import SplitSampler

__all__ = [
    "AugmentationPolicy",
    "Policy",
    "SplitSampler",
    "reinforce_loss",
    "standardise",
]
