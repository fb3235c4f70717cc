"""Policies: distributions over per-example actions trained by GAR rewards."""

from gar_tf.policies.base import Policy
from gar_tf.policies.reinforce import reinforce_loss, standardise

__all__ = ["Policy", "reinforce_loss", "standardise"]
