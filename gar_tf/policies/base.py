"""The interface GARModel needs from a policy (docs/method.md §5-§6)."""

from __future__ import annotations

import abc
import sys

import keras
import tensorflow as tf

from gar_tf._compat import optimizer_strategy
from gar_tf.policies.reinforce import reinforce_loss, standardise
from gar_tf.replicas import all_reduce_sum, apply_if, num_replicas

ACTS_IN = ("step", "pipeline")


class Policy(keras.layers.Layer, abc.ABC):
    """A learnable distribution over per-example actions, trained by GAR rewards.

    Where it acts is declared by ``acts_in``: ``"step"`` (default) — GARModel calls
    :meth:`sample` in the train step and applies :meth:`transform` to the batch;
    ``"pipeline"`` — the actions were drawn in ``tf.data`` and come with the data as
    ``(x, y, sample_weight, {policy.name: actions})``. One step later GARModel calls
    :meth:`update` with the GAR rewards of exactly those examples. GARModel builds
    the policy optimizer (:meth:`build_optimizer`); call it yourself to use a policy
    on its own.

    Subclasses create their parameters with :meth:`add_policy_weight` and
    implement :meth:`sample` and :meth:`log_prob`; they may override
    :meth:`transform` (default: identity) and :meth:`entropy`. Policy
    parameters are non-trainable for the model's optimizer: only
    ``policy_optimizer`` changes them, by REINFORCE.

    Args:
        policy_optimizer: a Keras optimizer for the policy parameters
            (default ``Adam(learning_rate=0.01)``; docs/method.md §9).
        clip_value: elementwise clip of the policy gradient (5, as in the reference
            code; docs/method.md §5).
        groups: number of contiguous batch slices standardised separately.
        entropy_weight: weight of :meth:`entropy` subtracted from the loss.
        acts_in: ``"step"`` or ``"pipeline"`` (see above).

    Subclasses whose :meth:`transform` has no XLA kernels set the class attribute
    ``transform_supports_xla = False`` (GARModel then compiles without XLA).
    """

    #: Whether :meth:`transform` can run inside an XLA-compiled train step.
    transform_supports_xla: bool = True

    def __init__(
        self,
        *,
        policy_optimizer: keras.optimizers.Optimizer | None = None,
        clip_value: float = 5.0,
        groups: int = 1,
        entropy_weight: float = 0.0,
        acts_in: str = "step",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if acts_in not in ACTS_IN:
            raise ValueError(f"acts_in must be one of {ACTS_IN}, got {acts_in!r}.")
        if groups < 1:
            raise ValueError(f"groups must be >= 1, got {groups}.")
        self.policy_optimizer = policy_optimizer or keras.optimizers.Adam(learning_rate=0.01)
        self.clip_value = float(clip_value)
        self.groups = int(groups)
        self.entropy_weight = float(entropy_weight)
        self.acts_in = acts_in
        #: Print a warning when an update is skipped (XLA cannot print: GARModel turns
        #: it off under ``jit_compile``; the skip still counts in ``skipped_updates``).
        self.warn_on_skip = True
        self._policy_weights: list[keras.Variable] = []
        self.skipped_updates = self.add_weight(
            shape=(),
            initializer="zeros",
            dtype="int64",
            trainable=False,
            aggregation="only_first_replica",
            name="skipped_updates",
        )

    def add_policy_weight(
        self, name: str, shape, initializer="zeros", aggregation: str = "none"
    ) -> keras.Variable:
        """Adds a parameter that :meth:`update` trains (non-trainable for the model).

        ``aggregation="only_first_replica"`` for a parameter that :meth:`update` assigns
        itself (the same value on every replica) instead of through ``policy_optimizer``.
        """
        weight = self.add_weight(
            name=name,
            shape=shape,
            initializer=initializer,
            trainable=False,
            aggregation=aggregation,
        )
        self._policy_weights.append(weight)
        return weight

    @property
    def policy_weights(self) -> list[keras.Variable]:
        return list(self._policy_weights)

    @abc.abstractmethod
    def sample(self, batch_size) -> tf.Tensor:
        """Draws one action per example: a tensor with leading axis ``batch_size``."""

    @abc.abstractmethod
    def log_prob(self, actions: tf.Tensor) -> tf.Tensor:
        """``log pi(a_i)`` [B] under the current parameters, differentiable in them."""

    def transform(self, x, actions: tf.Tensor):
        """Applies the actions to the batch inside the train step (default: none)."""
        return x

    def entropy(self) -> tf.Tensor:
        """An entropy of the policy, rewarded with ``entropy_weight`` (default 0)."""
        return tf.constant(0.0)

    def build_optimizer(self) -> None:
        """Creates the optimizer's slots now, outside any traced function."""
        strategy = tf.distribute.get_strategy()
        if optimizer_strategy(self.policy_optimizer) not in (None, strategy):
            raise ValueError(
                f"The policy_optimizer of {self.name!r} was created outside the "
                "tf.distribute strategy scope its policy lives in; create the policy and its "
                "optimizer inside the same `strategy.scope()`."
            )
        if self._policy_weights and not self.policy_optimizer.built:
            self.policy_optimizer.build(self._policy_weights)

    def update(self, rewards: tf.Tensor, actions: tf.Tensor, active=True) -> None:
        """One REINFORCE step from raw GAR rewards of the examples that took ``actions``.

        ``w = standardise(r)``; ``J = -mean(w log pi(a)) - entropy_weight * H``;
        the gradient is clipped by value and applied by ``policy_optimizer``.
        Under ``tf.distribute`` each replica passes its own examples; mean, std and
        gradient are global (docs/method.md §8), so every replica applies the same step.
        ``active=False`` (a boolean tensor, the same on every replica) skips the step;
        non-finite rewards anywhere skip it too and count in ``skipped_updates``.
        """
        weights, count, apply = self.standardised(rewards, active)
        self.reinforce_step(weights, count, apply, actions)

    def reinforce_step(self, weights, count, apply, actions) -> None:
        """The REINFORCE step of :meth:`update` from the output of :meth:`standardised`."""
        values = [w.value for w in self._policy_weights]
        with tf.GradientTape() as tape:
            tape.watch(values)
            loss = reinforce_loss(weights, self.log_prob(actions), tf.maximum(count, 1.0))
            loss -= self.entropy_weight * self.entropy() / num_replicas()
        grads = tape.gradient(loss, values, unconnected_gradients="zero")
        grads = [
            tf.clip_by_value(g, -self.clip_value, self.clip_value) for g in all_reduce_sum(grads)
        ]
        apply_if(apply, self.policy_optimizer, grads, self._policy_weights)

    def standardised(
        self, rewards: tf.Tensor, active=True
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """``(w, N, apply)``: the rewards standardised per group over all replicas
        (docs/method.md §5, §8; non-finite ones as 0), their global count N, and whether
        to apply a step: ``active``, N > 0 and every reward finite on every replica.
        A step skipped for non-finite rewards warns and counts in ``skipped_updates``."""
        rewards = tf.cast(rewards, tf.float32)
        finite_local = tf.math.is_finite(rewards)
        bad, count = all_reduce_sum(
            [
                tf.reduce_sum(tf.cast(~finite_local, tf.float32)),
                tf.cast(tf.size(rewards), tf.float32),
            ]
        )
        active = tf.logical_and(tf.convert_to_tensor(active), count > 0)
        finite = tf.equal(bad, 0.0)
        weights = standardise(
            tf.where(finite_local, rewards, 0.0), self.groups, all_reduce=all_reduce_sum
        )
        skipped = tf.logical_and(active, ~finite)

        def warn():
            tf.print(
                f"gar_tf: WARNING: policy {self.name!r} got non-finite rewards; update skipped.",
                output_stream=sys.stderr,
            )

        if self.warn_on_skip:
            tf.cond(skipped, warn, lambda: None)
        self.skipped_updates.assign_add(tf.cast(skipped, tf.int64))
        return weights, count, tf.logical_and(active, finite)
