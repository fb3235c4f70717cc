"""GARModel: a Keras model whose train step also computes GAR rewards (docs/method.md §1, §7)."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from gar_tf import _compat, multi_worker
from gar_tf.alignment import DEFAULT_EXCLUDED, AlignmentEngine, RuleRegistry
from gar_tf.alignment.engine import SIMILARITIES
from gar_tf.alignment.paths import check_choice
from gar_tf.comparison import split_pair
from gar_tf.pending import PendingState
from gar_tf.policies import Policy, SplitSampler
from gar_tf.replicas import all_reduce_sum, num_replicas
from gar_tf.reward import RewardMode, StepRecord, rewards

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


# Training-only metrics, left out of evaluate()'s logs.
_REWARD_METRICS = ("reward_mean", "reward_std", "reward_positive", "held_out_loss")


@keras.saving.register_keras_serializable(package="gar_tf")
class GARModel(_compat.SymbolicBuildFromFirstReplica, keras.Model):
    """Trains ``backbone`` as usual and, in the same step, its policies by GAR.

    Step t+1 (docs/method.md §7): forward/backward on batch t+1 at the current weights
    gives the raw gradient ``G_{t+1}`` and the per-layer state of batch t+1; the
    rewards of batch t are ``r_i = <g_i, G_{t+1}>`` from the state kept at step t;
    each policy gets ``update(rewards, actions of batch t)``; then the optimizer
    steps on ``G_{t+1}`` and the state of batch t+1 is kept. The first step of
    each ``fit`` has no reward. Reward statistics are logged as ``reward_mean``,
    ``reward_std`` and ``reward_positive`` (fraction > 0), averaged over the epoch
    (not with ``compute_rewards=False``); with policies, ``policy_updates_skipped``
    counts policy updates skipped for non-finite rewards. Under
    ``clean_comparison="held_out"``, ``held_out_loss`` is the comparison batches' mean
    compiled loss at the weights after each step, averaged over the epoch.

    Args:
        backbone: any Keras model (Sequential, functional or subclassed).
        policies: :class:`gar_tf.Policy` instances with distinct names.
        reward: ``"next"`` (default) aligns batch t with ``G_{t+1}``; ``"same"``
            with its own batch gradient ``G_t``; ``"next-minus-current"`` with
            ``G_{t+1} - G_t`` (docs/method.md §3; :class:`gar_tf.reward.RewardMode`).
        similarity: ``"dot"`` (default) or ``"cosine"`` (per weight tensor).
        clean_comparison: where the comparison gradient comes from when the
            policies augment the data; it should be clean (docs/method.md §4).
            None: the batch as it comes. ``"alternate"``: even steps
            (1st, 3rd, ...) are transformed by the policies, odd steps are not
            and reward the previous step's examples (one policy update per two
            steps; the model trains on both). ``"slice"``: the last
            ``clean_size`` examples of every batch are not transformed, the
            comparison gradient is their mean-loss gradient, and only the other
            examples are rewarded. ``"held_out"``: ``fit`` on
            ``gar_tf.with_comparison(train, held_out)``; each step trains on (and
            transforms) its training batch, then rewards it along the gradient of its
            held-out batch at the updated weights; the model never trains on the
            held-out batches (one policy update per step; needs ``reward="next"``).
            ``"other_splits"``: each example of batch t is aligned with the mean gradient of
            batch t+1's examples from the *other* splits of the one ``SplitSampler`` among the
            policies (docs/method.md §13; needs ``reward="next"``; one more backward pass per
            split and one more alignment per split but one).
        clean_size: the clean slice size V for ``clean_comparison="slice"``.
        compute_rewards: False trains exactly like ``backbone`` would, with no
            reward work (only without policies).
        exclude: layer types whose weights stay out of the reward
            (default: normalisation layers, as in the reference).
        strict: raise for layers without a rule instead of the exact fallback.
        rules: the alignment :class:`gar_tf.RuleRegistry` (default: the process-wide
            one). Not saved with the model: a loaded model uses the process-wide one.
        paths: how each rule layer's reward is computed (docs/method.md §12): ``"gram"``
            (default: Dense layers on one position per example take the Gram form where it
            costs fewer FLOPs, for ``reward="next"`` or ``"same"`` with no clean comparison or
            ``"alternate"``, on one replica, without regularisation losses; else the tangent),
            ``"tangent"``, ``"materialised"``, ``"auto"`` (a cost model of FLOPs and bytes
            kept) or ``{layer name: path}``; ``model.engine.describe(x)`` shows
            the choice. Every path gives the same rewards up to round-off.

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
        paths: str | dict[str, str] = "gram",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(backbone, keras.layers.Layer):
            raise TypeError(
                "backbone must be a Keras model (Sequential, functional or subclassed) or "
                f"layer, got {type(backbone).__name__}: {backbone!r:.80}."
            )
        mode = RewardMode(reward, clean_comparison, clean_size if clean_comparison else 0)
        if similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}.")
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
        # The SplitSampler whose splits "other_splits" leaves out: (name, number of splits).
        self._left_out = _left_out_splits(policies) if mode.other_splits else None
        self.backbone = backbone
        self.policies = policies
        self.mode = mode
        self.similarity = similarity
        self.compute_rewards = compute_rewards
        self.exclude = tuple(exclude)
        self.strict = strict
        self.rules = rules
        check_choice(paths)
        self.paths = paths if isinstance(paths, str) else dict(paths)
        if compute_rewards:  # a run without rewards logs no reward statistics
            self.reward_mean = keras.metrics.Mean(name="reward_mean")
            self.reward_std = keras.metrics.Mean(name="reward_std")
            self.reward_positive = keras.metrics.Mean(name="reward_positive")
        if compute_rewards and mode.held_out:  # the comparison batches' loss, after each step
            self.held_out_loss = keras.metrics.Mean(name="held_out_loss")
        self._engine: AlignmentEngine | None = None
        self._engine_variables: list[int] = []
        self._pending = PendingState("gar_pending")
        for p in policies:  # here, under the strategy scope the model is created in
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
                paths=self.paths,
                batch_direction=self.mode.direction_is_batch_gradient,
            )
            self._engine_variables = variables
        return self._engine

    def compile(self, *args, jit_compile="auto", **kwargs) -> None:
        """``keras.Model.compile``. Policies that transform inside the train step (e.g.
        ``AugmentationPolicy``: image ops without XLA kernels) rule out XLA: ``"auto"``
        then means no XLA and ``jit_compile=True`` raises. Under XLA, batches need a
        fixed size (``drop_remainder=True``)."""
        in_step = [p.name for p in self.policies if not p.transform_supports_xla]
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
        # The build reads (x, y, sample_weight) only: drop the actions and a comparison.
        return unpack_data(split_pair(data_batch, self.mode.held_out)[0])[:3]

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

    def make_train_function(self, force: bool = False):
        """Keras' train function; under ``MultiWorkerMirroredStrategy`` one that averages the
        logs over replicas, which Keras' cannot (keras-team/keras#20585, gar_tf.multi_worker)."""
        if not multi_worker.is_multi_worker(self.distribute_strategy):
            return super().make_train_function(force=force)
        if self.train_function is None or force:
            self.train_function = multi_worker.step_function(self, self.train_step)
        return self.train_function

    def make_test_function(self, force: bool = False):
        """Keras' test function; under ``MultiWorkerMirroredStrategy`` as
        :meth:`make_train_function` (``evaluate`` and ``fit``'s validation)."""
        if not multi_worker.is_multi_worker(self.distribute_strategy):
            return super().make_test_function(force=force)
        if self.test_function is None or force:
            self.test_function = multi_worker.step_function(self, self.test_step)
        return self.test_function

    @property
    def pending_bytes(self) -> int:
        """Bytes of the batch-t state kept until step t+1 (both buffers of
        ``gar_tf.pending.PendingState``; 0 before the first step or without rewards)."""
        return self._pending.nbytes

    @property
    def reward(self) -> str:
        return self.mode.reward

    @property
    def clean_comparison(self) -> str | None:
        return self.mode.clean_comparison

    @property
    def clean_size(self) -> int:
        return self.mode.clean_size

    def train_step(self, data):
        """One GAR step, in the method's order (docs/method.md §7; "held_out": §11)."""
        data, comparison = split_pair(data, self.mode.held_out)
        x, y, sample_weight, given = unpack_data(data)
        batch = self._checked_batch_size(x)
        transformed = self.mode.transforms(self.optimizer.iterations)
        x, actions = self._act(x, given, batch, transformed)
        y_pred, gradient, now = self._forward_backward(x, y, sample_weight, batch, actions)
        if self.compute_rewards and not self.mode.held_out:
            self._reward(now)
        self.optimizer.apply(gradient, self.backbone.trainable_variables)
        if self.compute_rewards and self.mode.held_out:
            # At the updated weights: G of the held-out batch rewards this step's batch.
            self._reward(now._replace(gradient=self._held_out_gradient(comparison)))
        if self.compute_rewards:
            self.mode.keep(now, self._pending, transformed)
        logs = self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        if self.policies:
            skipped = tf.add_n([p.skipped_updates.value for p in self.policies])
            logs["policy_updates_skipped"] = tf.cast(skipped, tf.float32)
        return logs

    def _reward(self, now: StepRecord) -> None:
        """Rewards the mode's target for this step's record and updates the policies:
        ``r_i = <g_i, V>`` (docs/method.md §1-§4), then REINFORCE (§5)."""
        target = self.mode.target(now, self._pending)
        if num_replicas() > 1 or self.backbone.losses:
            # The direction is then not the sum of this replica's recorded calls' gradients.
            target = target._replace(comparison=None)
        splits = target.actions[self._left_out[0]] if self._left_out else None
        r = rewards(self.engine, target, self.mode, splits)
        for p in self.policies:
            p.update(r, target.actions[p.name], active=target.active)
        self._track_rewards(r, target.active)

    def _held_out_gradient(self, comparison) -> list[tf.Tensor]:
        """``G = ∇_θ L_h(θ_{t+1})``: the held-out batch's mean compiled loss, differentiated
        at the current (updated) weights and summed over replicas (docs/method.md §11). The
        forward pass is stateless: BatchNorm statistics do not see the held-out data."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(comparison)
        variables = self.backbone.trainable_variables
        values = [v.value for v in variables]
        state = [v.value for v in self.backbone.non_trainable_variables]
        with tf.GradientTape() as tape:
            tape.watch(values)
            y_pred, _ = self.backbone.stateless_call(values, state, x, training=True)
            loss = _compat.compiled_loss(self, y, y_pred, sample_weight)
        self.held_out_loss.update_state(_compat.unscale_loss_for_distribution(loss))
        return all_reduce_sum(_dense(variables, tape.gradient(loss, values)))

    def _checked_batch_size(self, x) -> tf.Tensor:
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
        return batch

    def _act(self, x, given: dict, batch, transformed):
        """Each policy's actions for the rewarded examples (the first ones), and ``x`` with
        the step policies' transforms applied to them when ``transformed``."""
        rewarded = self.mode.rewarded(batch)
        actions = {}
        for p in self.policies:
            if p.acts_in == "pipeline":
                if p.name not in given:
                    raise ValueError(
                        f"Policy {p.name!r} acts in the tf.data pipeline, but the batch "
                        f"carries actions only for {sorted(given)}; use its dataset() or "
                        "yield (x, y, sample_weight, {name: actions})."
                    )
                actions[p.name] = given[p.name][:rewarded]
            else:
                actions[p.name] = p.sample(rewarded)
                x = _transform_head(p, x, actions[p.name], rewarded, transformed)
        return x, actions

    def _forward_backward(self, x, y, sample_weight, batch, actions):
        """Forward/backward with recording: ``(y_pred, gradient for the optimizer,
        StepRecord)``; the record's gradients are raw (unscaled, summed over replicas).
        Materialised layers (docs/method.md §12) get their batch gradient as the sum of
        their per-example gradients, unless a clean slice or ``"other_splits"`` needs
        autodiff's for its extra losses."""
        if not self.backbone.built:  # e.g. a Sequential without Input: build it as Keras would
            self.backbone.build(tf.nest.map_structure(lambda t: tuple(t.shape), x))
        variables = self.backbone.trainable_variables
        comparison_weights = self.mode.comparison_weights(batch, sample_weight)
        split_weights = []
        if self._left_out:
            name, count = self._left_out
            split_weights = self.mode.other_splits_weights(actions[name], count, sample_weight)
        extra_losses = comparison_weights is not None or bool(split_weights)
        with tf.GradientTape(persistent=extra_losses) as tape:
            if self.compute_rewards:
                with self.engine.recording(x, detach=not extra_losses) as rec:
                    y_pred = self(x, training=True)
                outputs = rec.outputs
            else:
                y_pred, outputs = self(x, training=True), []
            loss = _compat.compute_loss(self, x, y, y_pred, sample_weight)
            _compat.loss_tracker(self).update_state(
                _compat.unscale_loss_for_distribution(loss), sample_weight=batch
            )
            scaled_loss = self.optimizer.scale_loss(loss)
            if comparison_weights is not None:
                # The clean slice's mean compiled loss (no regularisation losses).
                comparison_loss = _compat.compiled_loss(self, y, y_pred, comparison_weights)
            # Per split k: the mean compiled loss of the other splits' examples (§13).
            split_losses = [_compat.compiled_loss(self, y, y_pred, w) for w in split_weights]
        grads = tape.gradient(scaled_loss, variables + outputs)
        if not self.compute_rewards:
            return y_pred, _dense(variables, grads[: len(variables)]), None
        states = self.engine.materialise(rec.states(grads[len(variables) :]))
        gradient = _dense(variables, self.engine.batch_gradients(grads[: len(variables)], states))
        raw = self._unscaled(loss, scaled_loss)
        comparison = [raw(g) for g in gradient]
        if comparison_weights is not None:
            comparison = _dense(variables, tape.gradient(comparison_loss, variables))
        if split_weights:
            per_split = [_dense(variables, tape.gradient(s, variables)) for s in split_losses]
            comparison = [tf.stack(g) for g in zip(*per_split)]
        if self.mode.held_out:  # the held-out batch gives it, after the update
            comparison = []
        states = [state.mapped(raw) for state in states]
        now = StepRecord(states, actions, all_reduce_sum(comparison))
        return y_pred, gradient, now

    def _unscaled(self, loss, scaled_loss):
        """Maps a gradient of ``scaled_loss`` to float32 gradient of ``loss`` (mixed
        precision's LossScaleOptimizer scales the loss; rewards use raw gradients)."""
        if not isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
            return lambda g: g
        factor = tf.math.divide_no_nan(tf.cast(loss, tf.float32), tf.cast(scaled_loss, tf.float32))
        return lambda g: tf.cast(g, tf.float32) * factor

    def _track_rewards(self, rewards, active) -> None:
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
        return {k: v for k, v in logs.items() if k not in _REWARD_METRICS}

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
            "paths": self.paths,
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


def _left_out_splits(policies: Sequence[Policy]) -> tuple[str, int]:
    """``(name, number of splits)`` of the one SplitSampler that ``"other_splits"`` leaves out."""
    samplers = [p for p in policies if isinstance(p, SplitSampler)]
    if len(samplers) != 1:
        raise ValueError(
            'clean_comparison="other_splits" compares each example with the next batch\'s '
            "examples from the other splits of a gar_tf.SplitSampler: pass exactly one "
            f"among the policies (got {len(samplers)})."
        )
    return samplers[0].name, len(samplers[0].split_names)


def _transform_head(policy: Policy, x, actions, n, transformed):
    """``x`` with the policy's transform applied to its first ``n`` examples, if ``transformed``."""

    def transform():
        head = policy.transform(tf.nest.map_structure(lambda t: t[:n], x), actions)
        return tf.nest.map_structure(lambda h, t: tf.concat([h, t[n:]], 0), head, x)

    return transform() if transformed is True else tf.cond(transformed, transform, lambda: x)


def _layer_type(name: str) -> type:
    """A layer class from its registered name (Keras built-ins by class name)."""
    found = getattr(keras.layers, name, None) or keras.saving.get_registered_object(name)
    if found is None:
        raise ValueError(
            f"Cannot find layer type {name!r} listed in `exclude`; register it with "
            "@keras.saving.register_keras_serializable() before loading."
        )
    return found
