"""GARModel: a Keras model whose train step also computes GAR rewards (GAR_SPEC §1, §6, §7)."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from gar_tf import _compat
from gar_tf.alignment import DEFAULT_EXCLUDED, AlignmentEngine, RuleRegistry
from gar_tf.alignment.engine import SIMILARITIES
from gar_tf.pending import PendingState
from gar_tf.policies import Policy
from gar_tf.replicas import all_reduce_sum

REWARDS = ("next", "same", "next-minus-current")
CLEAN_COMPARISONS = (None, "alternate", "slice")
_PENDING_KEY = "gar_pending_"  # prefix of the pending state's entries in a checkpoint


def unpack_data(data):
    """``(x, y, sample_weight, actions)`` from ``(x, y[, sample_weight[, actions]])``.

    ``actions`` is a dict ``{policy name: per-example actions}`` carried by the
    data for policies that act in the ``tf.data`` pipeline.
    """
    if isinstance(data, (tuple, list)) and len(data) == 4:
        x, y, sample_weight, actions = data
        if not isinstance(actions, dict):
            raise ValueError(
                "A 4-element batch must be (x, y, sample_weight, actions) with actions "
                f"a dict keyed by policy name; got {type(actions).__name__}."
            )
        return x, y, sample_weight, actions
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    return x, y, sample_weight, {}


@keras.saving.register_keras_serializable(package="gar_tf")
class GARModel(_compat.SymbolicBuildFromFirstReplica, keras.Model):
    """Trains ``backbone`` as usual and, in the same step, its policies by GAR.

    Step t+1 (GAR_SPEC §6): forward/backward on batch t+1 at the current weights
    gives the raw gradient ``G_{t+1}`` and the per-layer state of batch t+1; the
    rewards of batch t are ``r_i = <g_i, G_{t+1}>`` from the state kept at step t;
    each policy gets ``update(rewards, actions of batch t)``; then the optimizer
    steps on ``G_{t+1}`` and the state of batch t+1 is kept. The first step of
    each ``fit`` has no reward. Reward statistics are logged as ``reward_mean``,
    ``reward_std`` and ``reward_positive`` (fraction > 0), averaged over the epoch;
    ``policy_updates_skipped`` counts policy updates skipped for non-finite rewards.

    Args:
        backbone: any Keras model (Sequential, functional or subclassed).
        policies: :class:`gar_tf.Policy` instances with distinct names.
        reward: ``"next"`` (default) aligns batch t with ``G_{t+1}``; ``"same"``
            with its own batch gradient ``G_t``; ``"next-minus-current"`` with
            ``G_{t+1} - G_t`` (GAR_SPEC §1.3).
        similarity: ``"dot"`` (default) or ``"cosine"`` (per weight tensor).
        clean_comparison: where the comparison gradient comes from when the
            policies augment the data (GAR_SPEC §1.3; PROTOTYPES.md: it should be
            clean). None: the batch as it comes. ``"alternate"``: even steps
            (1st, 3rd, ...) are transformed by the policies, odd steps are not
            and reward the previous step's examples (one policy update per two
            steps; the model trains on both). ``"slice"``: the last
            ``clean_size`` examples of every batch are not transformed, the
            comparison gradient is their mean-loss gradient, and only the other
            examples are rewarded.
        clean_size: the clean slice size V for ``clean_comparison="slice"``.
        compute_rewards: False trains exactly like ``backbone`` would, with no
            reward work (only without policies).
        exclude: layer types whose weights stay out of the reward
            (default: normalisation layers, as in the reference).
        strict: raise for layers without a rule instead of the exact fallback.
        rules: the alignment :class:`gar_tf.RuleRegistry` (default: the process-wide
            one). Not saved with the model: a loaded model uses the process-wide one.

    ``G`` is the gradient of the compiled loss (including regularisation losses)
    before the optimizer's own clipping and weight decay.
    """

    def __init__(
        self,
        backbone: keras.Model,
        policies: Sequence[Policy] = (),
        reward: str = "next",
        similarity: str = "dot",
        clean_comparison: str | None = None,
        clean_size: int = 0,
        compute_rewards: bool = True,
        exclude: Sequence[type] = DEFAULT_EXCLUDED,
        strict: bool = False,
        rules: RuleRegistry | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {reward!r}.")
        if similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}.")
        if clean_comparison not in CLEAN_COMPARISONS:
            raise ValueError(
                f"clean_comparison must be one of {CLEAN_COMPARISONS}, got {clean_comparison!r}."
            )
        if clean_comparison == "alternate" and reward != "next":
            raise ValueError('clean_comparison="alternate" needs reward="next".')
        if clean_comparison == "slice" and (reward == "next-minus-current" or clean_size < 1):
            raise ValueError(
                'clean_comparison="slice" needs clean_size >= 1 and reward "next" or "same".'
            )
        policies = list(policies)
        for p in policies:
            if not isinstance(p, Policy):
                raise TypeError(
                    f"policies must be gar_tf.Policy instances, got {type(p).__name__}."
                )
        names = [p.name for p in policies]
        if len(set(names)) != len(names):
            raise ValueError(f"Policy names must be distinct, got {names}.")
        if policies and not compute_rewards:
            raise ValueError("compute_rewards=False leaves the policies without rewards.")
        self.backbone = backbone
        self.policies = policies
        self.reward = reward
        self.similarity = similarity
        self.clean_comparison = clean_comparison
        self.clean_size = int(clean_size) if clean_comparison == "slice" else 0
        self.compute_rewards = compute_rewards
        self.exclude = tuple(exclude)
        self.strict = strict
        self.rules = rules
        self.reward_mean = keras.metrics.Mean(name="reward_mean")
        self.reward_std = keras.metrics.Mean(name="reward_std")
        self.reward_positive = keras.metrics.Mean(name="reward_positive")
        self._engine: AlignmentEngine | None = None
        self._engine_variables: list[int] = []
        self._pending = PendingState("gar_pending")
        for p in policies:
            p.build_optimizer()

    def build(self, input_shape) -> None:
        if not self.backbone.built:
            self.backbone.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        return self.backbone(inputs, training=training)

    @property
    def engine(self) -> AlignmentEngine:
        """The alignment engine for the backbone's current trainable variables (rebuilt
        when they change, e.g. after unfreezing a layer and recompiling)."""
        variables = [id(v) for v in self.backbone.trainable_variables]
        if self._engine is None or self._engine_variables != variables:
            self._engine = AlignmentEngine(
                self.backbone,
                exclude=self.exclude,
                strict=self.strict,
                similarity=self.similarity,
                rules=self.rules,
            )
            self._engine_variables = variables
        return self._engine

    def compile(self, *args, jit_compile="auto", **kwargs) -> None:
        """``keras.Model.compile``. Policies that transform inside the train step (e.g.
        ``AugmentationPolicy``: image ops without XLA kernels) rule out XLA: ``"auto"``
        then means no XLA and ``jit_compile=True`` raises. Under XLA, batches need a
        fixed size (``drop_remainder=True``)."""
        in_step = [p.name for p in self.policies if _transforms_in_step(p)]
        if in_step and jit_compile is True:
            raise ValueError(
                f"jit_compile=True cannot compile the train step of policies {in_step}: "
                "their transforms (image ops) have no XLA kernels. Use jit_compile=False, "
                "or apply the policy in the tf.data pipeline and compile the rest."
            )
        if in_step and jit_compile == "auto":
            jit_compile = False
        super().compile(*args, jit_compile=jit_compile, **kwargs)
        for p in self.policies:
            p.warn_on_skip = not self.jit_compile

    def compile_from_config(self, config) -> None:
        # Keras skips a custom compile() when loading; this one only adds checks.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def batch_for_build(self, data_batch):
        # The build reads (x, y, sample_weight) only: drop the actions.
        return unpack_data(data_batch)[:3]

    def save_own_variables(self, store) -> None:
        """Adds the pending batch-t state to the model's weights and checkpoints, so
        that ``BackupAndRestore`` resumes with the reward of the next step."""
        super().save_own_variables(store)
        for key, value in self._pending.checkpoint().items():
            store[_PENDING_KEY + key] = value

    def load_own_variables(self, store) -> None:
        keys = list(store.keys())
        super().load_own_variables({k: store[k] for k in keys if not k.startswith(_PENDING_KEY)})
        pending = {k[len(_PENDING_KEY) :]: store[k] for k in keys if k.startswith(_PENDING_KEY)}
        self._pending.restore({k: np.asarray(v) for k, v in pending.items()})

    def fit(self, *args, **kwargs):
        self._pending.reset()
        return super().fit(*args, **kwargs)

    def _policy_actions(self, x, given: dict, batch, policy_step):
        """Each policy's actions for the rewarded examples, and the transformed ``x``.

        The rewarded examples are the whole batch, or all but the clean slice.
        """
        rewarded = batch - self.clean_size
        actions = {}
        for p in self.policies:
            if p.in_pipeline:
                if p.name not in given:
                    raise ValueError(
                        f"Policy {p.name!r} acts in the tf.data pipeline, but the batch "
                        f"carries actions only for {sorted(given)}; use its dataset() or "
                        "yield (x, y, sample_weight, {name: actions})."
                    )
                a = given[p.name][:rewarded]
            else:
                a = p.sample(rewarded)
            alternate = self.clean_comparison == "alternate"
            x = _transform_head(p, x, a, rewarded, policy_step, alternate)
            actions[p.name] = a
        return x, actions

    def train_step(self, data):
        x, y, sample_weight, given = unpack_data(data)
        if self.jit_compile and self.compute_rewards and tf.nest.flatten(x)[0].shape[0] is None:
            raise ValueError(
                "GARModel under jit_compile=True needs batches of one fixed size: XLA cannot "
                "resize the variables that keep batch t. Batch the data with "
                "drop_remainder=True (or compile with jit_compile=False)."
            )
        batch = tf.shape(tf.nest.flatten(x)[0])[0]
        if self.clean_size:
            tf.debugging.assert_greater(
                batch,
                self.clean_size,
                message=f"clean_size={self.clean_size} leaves no example to reward in a "
                "batch this small; use a larger batch (or drop_remainder=True).",
            )
        policy_step = tf.logical_or(
            self.clean_comparison != "alternate", self.optimizer.iterations % 2 == 0
        )
        x, actions = self._policy_actions(x, given, batch, policy_step)
        variables = self.backbone.trainable_variables
        with tf.GradientTape(persistent=self.clean_size > 0) as tape:
            if self.compute_rewards:
                with self.engine.recording() as rec:
                    y_pred = self(x, training=True)
                outputs = rec.outputs
            else:
                y_pred, outputs = self(x, training=True), []
            loss = _compat.compute_loss(self, x, y, y_pred, sample_weight)
            _compat.loss_tracker(self).update_state(
                _compat.unscale_loss_for_distribution(loss), sample_weight=batch
            )
            scaled_loss = self.optimizer.scale_loss(loss)
            if self.clean_size:
                clean_loss = self._clean_slice_loss(y, y_pred, sample_weight, batch)
        grads = tape.gradient(scaled_loss, variables + outputs)
        gradient = _dense(variables, grads[: len(variables)])
        if self.compute_rewards:
            raw = self._unscaled(loss, scaled_loss)
            direction = [raw(g) for g in gradient]
            if self.clean_size:
                direction = _dense(variables, tape.gradient(clean_loss, variables))
            direction = all_reduce_sum(direction)
            deltas = [None if g is None else raw(g) for g in grads[len(variables) :]]
            self._reward_step(rec.states(deltas), direction, actions, policy_step)
        self.optimizer.apply(gradient, variables)
        logs = self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        if self.policies:
            skipped = tf.add_n([p.skipped_updates.value for p in self.policies])
            logs["policy_updates_skipped"] = tf.cast(skipped, tf.float32)
        return logs

    def _unscaled(self, loss, scaled_loss):
        """Maps a gradient of ``scaled_loss`` to float32 gradient of ``loss`` (mixed
        precision's LossScaleOptimizer scales the loss; rewards use raw gradients)."""
        if not isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
            return lambda g: g
        factor = tf.math.divide_no_nan(tf.cast(loss, tf.float32), tf.cast(scaled_loss, tf.float32))
        return lambda g: tf.cast(g, tf.float32) * factor

    def _clean_slice_loss(self, y, y_pred, sample_weight, batch):
        """Mean compiled loss over the last ``clean_size`` examples (the clean slice;
        regularisation losses are not part of this comparison gradient)."""
        mask = tf.cast(tf.range(batch) >= batch - self.clean_size, tf.float32)
        if sample_weight is not None:
            mask = mask * tf.cast(tf.reshape(sample_weight, [-1]), tf.float32)
        loss = _compat.compiled_loss(self, y, y_pred, mask)
        return loss * tf.cast(batch, loss.dtype) / self.clean_size

    def _reward_step(self, states, direction, actions, policy_step) -> None:
        """Rewards for the pending batch (or this one, for ``reward="same"``).

        The rewards are computed only when there is a valid pending batch; the
        policy updates always run (skipped by ``active``), because under
        ``tf.distribute`` they synchronise the replicas.
        """
        if self.reward == "same":
            self._use_rewards(self.engine.alignment(states, direction), actions, tf.constant(True))
            return
        names = [p.name for p in self.policies]
        now = [t for s in states for t in s.tensors()] + [actions[n] for n in names]
        batched = [b for s in states for b in s.batched()] + [True] * len(names)
        if self.reward == "next-minus-current":
            now += direction
            batched += [False] * len(direction)
        stored = self._pending.read(now, batched)
        tensors = iter(stored)
        old_states = [s.with_tensors(tensors) for s in states]
        old_actions = {n: next(tensors) for n in names}
        comparison = direction
        if self.reward == "next-minus-current":
            comparison = [g - next(tensors) for g in direction]
        # Skipped rewards are zeros sized like the stored actions (before the first
        # store the variables hold placeholders), so the policy updates see equal shapes.
        first = next(iter(old_actions.values()), None)
        if first is None:
            first = next(t for t, b in zip(stored, batched) if b)
        valid = self._pending.valid.read_value()
        rewards = tf.cond(
            valid,
            lambda: self.engine.alignment(old_states, comparison),
            lambda: tf.zeros(tf.shape(first)[:1]),
        )
        self._use_rewards(rewards, old_actions, valid)
        self._pending.store(now, batched, valid=policy_step)

    def _use_rewards(self, rewards, actions, active) -> None:
        rewards = rewards[: tf.shape(rewards)[0] - self.clean_size]
        for p in self.policies:
            p.update(rewards, actions[p.name], active=active)
        finite = tf.reduce_all(tf.math.is_finite(rewards))
        active = tf.logical_and(tf.convert_to_tensor(active), tf.size(rewards) > 0) & finite
        weight = tf.cast(active, tf.float32)
        for metric, value in (
            (self.reward_mean, tf.reduce_mean(rewards)),
            (self.reward_std, tf.math.reduce_std(rewards)),
            (self.reward_positive, tf.reduce_mean(tf.cast(rewards > 0, tf.float32))),
        ):
            metric.update_state(tf.where(active, value, 0.0), weight)

    def predict_step(self, data):
        x, _, _, _ = unpack_data(data)
        return self(x, training=False)

    def test_step(self, data):
        x, y, sample_weight, _ = unpack_data(data)
        logs = super().test_step((x, y, sample_weight))
        rewards = {m.name for m in (self.reward_mean, self.reward_std, self.reward_positive)}
        return {k: v for k, v in logs.items() if k not in rewards}

    def get_config(self):
        return {
            **super().get_config(),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "policies": [keras.saving.serialize_keras_object(p) for p in self.policies],
            "reward": self.reward,
            "similarity": self.similarity,
            "clean_comparison": self.clean_comparison,
            "clean_size": self.clean_size,
            "compute_rewards": self.compute_rewards,
            "exclude": [keras.saving.get_registered_name(t) for t in self.exclude],
            "strict": self.strict,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(
            config["backbone"], custom_objects=custom_objects
        )
        config["policies"] = [
            keras.saving.deserialize_keras_object(p, custom_objects=custom_objects)
            for p in config.get("policies", [])
        ]
        if "exclude" in config:
            config["exclude"] = [_layer_type(name) for name in config["exclude"]]
        return cls(**config)


def _dense(variables, grads) -> list[tf.Tensor]:
    """Gradients as dense tensors, zeros where a variable got none."""
    return [
        tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for v, g in zip(variables, grads)
    ]


def _transforms_in_step(policy: Policy) -> bool:
    """Whether the policy changes the batch inside the train step."""
    return type(policy).transform is not Policy.transform


def _transform_head(policy: Policy, x, actions, n, policy_step, alternate: bool):
    """``x`` with the policy's transform applied to its first ``n`` examples, on policy steps."""
    if not _transforms_in_step(policy):
        return x

    def transformed():
        head = policy.transform(tf.nest.map_structure(lambda t: t[:n], x), actions)
        return tf.nest.map_structure(lambda h, t: tf.concat([h, t[n:]], 0), head, x)

    return tf.cond(policy_step, transformed, lambda: x) if alternate else transformed()


def _layer_type(name: str) -> type:
    """A layer class from its registered name (Keras built-ins by class name)."""
    found = getattr(keras.layers, name, None) or keras.saving.get_registered_object(name)
    if found is None:
        raise ValueError(
            f"Cannot find layer type {name!r} listed in `exclude`; register it with "
            "@keras.saving.register_keras_serializable() before loading."
        )
    return found
