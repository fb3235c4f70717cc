"""AugmentationPolicy: learned per-example augmentation trained by GAR (docs/method.md §5, §6).

Per example: a count ``n ~ p(n)`` of op slots (1..max_ops), an op per slot
``o_s ~ p(o)`` (learned, unlike the reference code; docs/method.md §6) and a level per slot
``l_s ~ p(l | o_s)`` (a free categorical, or a discretised normal whose location and
spread are learned, so neighbouring levels share evidence; uniform for ops whose level
changes nothing); slots past ``n`` are Identity. ``p(o)`` is learned by REINFORCE with the
rest, or by the evidence rule (``op_rule="evidence"``: ops move only as far as their mean
rewards differ beyond the noise, docs/method.md §10). An ensemble of ``E`` such
samplers acts on E contiguous slices of the batch, each standardising its own
rewards (docs/method.md §5). Keep probabilities of the reference code are not modelled.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from gar_tf import augment
from gar_tf.augment.sampling import (
    active_ops,
    apply_actions,
    augment_with,
    member_of,
    sample_actions,
)
from gar_tf.policies import evidence
from gar_tf.policies.base import Policy
from gar_tf.replicas import all_reduce_sum, replica_id

LEVEL_MODELS = ("categorical", "normal")
OP_RULES = ("reinforce", "evidence")


@keras.saving.register_keras_serializable(package="gar_tf")
class AugmentationPolicy(Policy):
    """Learned distributions over how many ops, which ops and which levels, per image.

    ``log pi(a) = log p(n) + sum_{s < n} [log p(o_s) + log p(l_s | o_s)]``; the
    REINFORCE step is :meth:`Policy.update` with one standardisation group per
    ensemble member. Train with a clean comparison gradient
    (``GARModel(clean_comparison="alternate")``: see docs/augmentation.md).

    Args:
        ops: a named space (``"wide"``: 19 ops, ``"standard"``: 14) or a list of op
            names (``gar_tf.augment.register_op`` adds ops); Identity must be first.
        num_levels: strength levels per op (31: levels 0..30).
        max_ops: the most op slots per image; ``n`` is drawn from 1..max_ops.
        learn_ops: learn which op (True) or keep op choice uniform (the reference).
        ensemble: E independent samplers over E contiguous slices of the batch.
        levels: ``"categorical"`` (one logit per op and level) or ``"normal"``:
            ``p(l | o) ∝ exp(-(l - mu_o)^2 / (2 sigma_o^2))`` on ``0..num_levels-1``,
            two parameters per op, ``mu_o = (L-1) sigmoid(a_o)`` and
            ``sigma_o = (L-1) exp(b_o)`` (zero init: centred, nearly flat; docs/method.md §6).
        op_rule: how ``p(o)`` learns: ``"reinforce"`` (with ``p(n)`` and the levels) or
            ``"evidence"``: per ensemble member and op, the discounted mean standardised
            reward of the slots that used the op and its step-clustered standard error;
            ``z_o = min(a_o + c se_o - max_j (a_j - c se_j), 0) / T``, as
            :class:`SplitSampler`'s rule (docs/method.md §10). ``p(n)`` and the levels
            still learn by REINFORCE.
        evidence_options: the evidence rule's options (``temperature``, ``confidence``,
            ``horizon``, ``max_log_ratio``, ``min_steps``; defaults those of
            :class:`SplitSampler`).
        min_op_probability: floor ``f`` on each op's probability,
            ``p(o) = (1 - N f) softmax(z) + f``, in ``[0, 1/N)``: no op is dropped for good.
        seed: seed of the op draws in training.
        value_range: the range of the images (as in Keras image layers): ``(0, 255)``
            (default; uint8 or float) or e.g. ``(0, 1)`` for float images; values
            outside it, or [0, 1] floats under ``(0, 255)``, are refused.
        policy_optimizer, clip_value, entropy: see :class:`Policy` (default Adam 0.01).
    """

    def __init__(
        self,
        ops: str | Sequence[str] = "wide",
        num_levels: int = 31,
        max_ops: int = 4,
        learn_ops: bool = True,
        ensemble: int = 1,
        levels: str = "categorical",
        op_rule: str = "reinforce",
        evidence_options: dict | None = None,
        min_op_probability: float = 0.0,
        seed: int | None = None,
        value_range: Sequence[float] = (0, 255),
        policy_optimizer: keras.optimizers.Optimizer | None = None,
        clip_value: float = 5.0,
        entropy: float = 0.0,
        name: str = "augmentation_policy",
        **kwargs,
    ) -> None:
        space = augment.get_space(ops) if isinstance(ops, str) else augment.build_space(ops)
        if space.names[0] != "Identity":
            raise ValueError(f"The first op must be Identity (empty slots), got {space.names}.")
        if num_levels < 1 or max_ops < 1 or ensemble < 1:
            raise ValueError(
                "num_levels, max_ops and ensemble must be >= 1, got "
                f"{num_levels}, {max_ops}, {ensemble}."
            )
        if levels not in LEVEL_MODELS:
            raise ValueError(f"levels must be one of {LEVEL_MODELS}, got {levels!r}.")
        if op_rule not in OP_RULES:
            raise ValueError(f"op_rule must be one of {OP_RULES}, got {op_rule!r}.")
        if op_rule == "evidence" and not learn_ops:
            raise ValueError("op_rule='evidence' learns p(o): it needs learn_ops=True.")
        if op_rule == "reinforce" and evidence_options is not None:
            raise ValueError(
                "evidence_options are for op_rule='evidence'; pass op_rule='evidence' or "
                "leave evidence_options out."
            )
        n = len(space.ops)
        if not 0 <= min_op_probability < 1 / n:
            raise ValueError(
                f"min_op_probability must be in [0, 1/{n}) for {n} ops, got {min_op_probability}."
            )
        super().__init__(
            policy_optimizer=policy_optimizer,
            clip_value=clip_value,
            groups=ensemble,
            entropy_weight=entropy,
            name=name,
            **kwargs,
        )
        self.ops = ops if isinstance(ops, str) else list(ops)
        self.space = space
        self.num_levels = int(num_levels)
        self.max_ops = int(max_ops)
        self.learn_ops = bool(learn_ops)
        self.ensemble = int(ensemble)
        self.levels = levels
        self.op_rule = op_rule
        #: The evidence rule's checked options (defaults filled in), or None.
        self.evidence_options = (
            evidence.options(**(evidence_options or {})) if op_rule == "evidence" else None
        )
        self.min_op_probability = float(min_op_probability)
        self.seed = seed
        if len(value_range) != 2 or not value_range[0] < value_range[1]:
            raise ValueError(f"value_range must be (low, high) with low < high, got {value_range}.")
        self.value_range = tuple(float(v) for v in value_range)
        # Ops whose level changes nothing (span 0: Identity, Invert, flips, ...) keep a
        # uniform level distribution: rewards carry no signal about it.
        self._has_levels = np.array([op.magnitude.span != 0 for op in space.ops], np.float32)
        self.count_logits = self.add_policy_weight("count_logits", (ensemble, max_ops))
        if op_rule == "reinforce" and learn_ops:
            self.op_logits = self.add_policy_weight("op_logits", (ensemble, n))
        else:  # fixed, or assigned by the evidence rule (the same on every replica)
            self.op_logits = self.add_weight(
                name="op_logits",
                shape=(ensemble, n),
                initializer="zeros",
                trainable=False,
                aggregation="only_first_replica",
            )
        #: Evidence rule: the discounted per-(member, op) statistics (evidence.STATISTICS).
        self.op_statistics = [
            self.add_weight(
                shape=(ensemble, n),
                initializer="zeros",
                trainable=False,
                aggregation="only_first_replica",
                name=f"op_{label}",
            )
            for label in (evidence.STATISTICS if op_rule == "evidence" else ())
        ]
        if levels == "categorical":
            self.level_logits = self.add_policy_weight("level_logits", (ensemble, n, num_levels))
        else:
            self.level_location = self.add_policy_weight("level_location", (ensemble, n))
            self.level_log_scale = self.add_policy_weight("level_log_scale", (ensemble, n))
        # The draws' RNG state is a weight, so that checkpoints resume the same stream.
        self.rng_state = keras.Variable(  # tracked as a non-trainable weight
            np.array([np.random.randint(2**31 - 1) if seed is None else seed, 0], np.int64),
            trainable=False,
            synchronization="on_read",  # replicas advance it locally, also inside tf.cond
            aggregation="only_first_replica",
            name="rng_state",
        )

    transform_supports_xla = False  # image ops without XLA kernels

    def logits(self) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Logits of ``p(n)`` [E, K], ``p(o)`` [E, N] and ``p(l | o)`` [E, N, L] (unnormalised
        log-probabilities: what sampling, export and the distributions read)."""
        op = self.op_logits.value
        if self.min_op_probability:
            f = self.min_op_probability
            op = tf.math.log((1.0 - op.shape[-1] * f) * tf.nn.softmax(op) + f)
        if self.levels == "categorical":
            level = self.level_logits.value
        else:
            span = float(max(self.num_levels - 1, 1))
            mu = span * tf.sigmoid(self.level_location.value)[..., None]
            sigma = span * tf.exp(self.level_log_scale.value)[..., None]
            grid = tf.range(self.num_levels, dtype=mu.dtype)
            level = -0.5 * tf.square((grid - mu) / sigma)
        return self.count_logits.value, op, level * self._has_levels[:, None]

    def _next_seed(self) -> tf.Tensor:
        """The next seed of the stream, distinct per replica (each draws its own)."""
        seed = self.rng_state.value
        self.rng_state.assign_add(tf.constant([0, 1], tf.int64))
        return seed + tf.stack(
            [tf.cast(replica_id(), tf.int64) * 1_000_003, tf.constant(0, tf.int64)]
        )

    def sample(self, batch_size, seed=None) -> tf.Tensor:
        """Actions ``[B, 1 + 2 max_ops]`` (``n - 1``, ops, levels); stateless given ``seed``."""
        seed = self._next_seed() if seed is None else seed
        return sample_actions(*self.logits(), batch_size, seed)

    def log_prob(self, actions: tf.Tensor) -> tf.Tensor:
        actions = tf.cast(actions, tf.int32)
        member = member_of(tf.shape(actions)[0], self.ensemble)
        active, ops, levels = active_ops(actions, self.max_ops)
        count_logits, op_logits, level_logits = self.logits()
        count_lp = tf.nn.log_softmax(tf.gather(count_logits, member))
        op_lp = tf.nn.log_softmax(tf.gather(op_logits, member))
        level_lp = tf.nn.log_softmax(tf.gather(level_logits, member))
        slot_lp = tf.gather(op_lp, ops, batch_dims=1) + tf.gather_nd(
            level_lp, tf.stack([ops, levels], -1), batch_dims=1
        )
        count = tf.gather(count_lp, actions[:, 0], batch_dims=1)
        return count + tf.reduce_sum(tf.where(active, slot_lp, 0.0), axis=1)

    def update(self, rewards: tf.Tensor, actions: tf.Tensor, active=True) -> None:
        """:meth:`Policy.update`; under ``op_rule="evidence"`` the op logits then become
        :func:`evidence.evidence_logits` of the per-op statistics, each active slot adding
        its image's standardised reward to its op (docs/method.md §10)."""
        weights, count, apply = self.standardised(rewards, active)
        self.reinforce_step(weights, count, apply, actions)
        if self.op_rule == "evidence":
            self._evidence_update(weights, apply, tf.cast(actions, tf.int32))

    def _evidence_update(self, weights, apply, actions) -> None:
        members, n = self.ensemble, len(self.space.ops)
        active, ops, _ = active_ops(actions, self.max_ops)
        cell = member_of(tf.shape(actions)[0], members)[:, None] * n + ops
        cell = tf.where(active, cell, members * n)  # inactive slots: one extra cell, dropped
        slot_weights = tf.broadcast_to(weights[:, None], tf.shape(cell))
        sums, counts = evidence.step_sums(
            tf.reshape(slot_weights, [-1]), tf.reshape(cell, [-1]), members * n + 1
        )
        sums, counts = (tf.reshape(s[:-1], (members, n)) for s in all_reduce_sum([sums, counts]))
        old = [v.value for v in self.op_statistics]
        new, logits = evidence.step(old, sums, counts, apply, self.evidence_options)
        for variable, value in zip(self.op_statistics, new):
            variable.assign(value)
        self.op_logits.assign(logits)

    def op_advantages(self) -> dict[str, dict[str, list[float]]]:
        """Evidence rule: per op, each member's mean standardised advantage ``a``, its
        standard error ``se`` and the shrunk gap the logits are made of (docs/method.md §10)."""
        if self.op_rule != "evidence":
            raise ValueError(
                f"op_advantages() is kept by op_rule='evidence', not {self.op_rule!r}."
            )
        stats = [v.value for v in self.op_statistics]
        columns = [t.numpy().T.tolist() for t in evidence.gaps(stats, self.evidence_options)]
        return {
            op.name: {"a": x, "se": e, "shrunk": d} for op, x, e, d in zip(self.space.ops, *columns)
        }

    def entropy(self) -> tf.Tensor:
        """Mean over members of ``H(n) + H(o) + mean_o H(l | o)``."""

        def h(logits):
            return -tf.reduce_sum(tf.nn.softmax(logits) * tf.nn.log_softmax(logits), -1)

        count, op, level = self.logits()
        return tf.reduce_mean(h(count) + h(op) + tf.reduce_mean(h(level), -1))

    def transform(self, x, actions: tf.Tensor, seed=None):
        """Applies each example's ops at their levels; the ± signs come from the seed
        stream, or from ``seed`` (int ``[2]``, stateless) when given."""
        seed = self._next_seed() if seed is None else seed
        return self._in_value_range(
            x, lambda x: apply_actions(x, actions, self.space, self.num_levels, seed)
        )

    def describe(self, actions) -> list[str]:
        """Each example's ops and levels from its actions, e.g. ``"Rotate 12 + Color 30"``."""
        actions = tf.cast(actions, tf.int32)
        active, ops, levels = (np.asarray(t) for t in active_ops(actions, self.max_ops))
        names = [op.name for op in self.space.ops]
        return [
            " + ".join(f"{names[o]} {lv}" for o, lv, on in zip(*row) if on)
            for row in zip(ops, levels, active)
        ]

    def augment(self, images, seed) -> tf.Tensor:
        """Samples and applies actions for ``images`` from ``seed`` (int ``[2]``): the
        function the exported SavedModel serves, same output for the same seed."""
        return self._in_value_range(
            images,
            lambda x: augment_with(x, *self.logits(), seed, self.space, self.num_levels),
        )

    def _in_value_range(self, images, apply):
        """``apply`` on images mapped from ``value_range`` to the ops' [0, 255], and back."""
        images = tf.convert_to_tensor(images)
        low, high = self.value_range
        if images.dtype == tf.uint8:
            if (low, high) != (0, 255):
                raise TypeError(
                    f"uint8 images are in [0, 255], but value_range={self.value_range}: "
                    "pass float images or value_range=(0, 255)."
                )
            return apply(images)
        if not images.dtype.is_floating:
            raise TypeError(f"images must be uint8 or float, got {images.dtype.name}.")
        checks = [
            tf.debugging.assert_greater_equal(
                images,
                tf.cast(low, images.dtype),
                message=(
                    f"images below value_range={self.value_range}; declare the range they are in."
                ),
            ),
            tf.debugging.assert_less_equal(
                images,
                tf.cast(high, images.dtype),
                message=(
                    f"images above value_range={self.value_range}; declare the range they are in."
                ),
            ),
        ]
        if (low, high) == (0, 255):  # the usual mistake: [0, 1] images, range not declared
            peak = tf.reduce_max(images)
            checks.append(
                tf.debugging.Assert(
                    tf.logical_or(peak > 1.0, peak <= 0.0),
                    [
                        "these float images look like [0, 1] (largest value <= 1) but the "
                        "policy's value_range is (0, 255): pass value_range=(0, 1)."
                    ],
                )
            )
        with tf.control_dependencies(checks):
            scale = 255.0 / (high - low)
            out = apply((images - tf.cast(low, images.dtype)) * tf.cast(scale, images.dtype))
        return tf.cast(out, images.dtype) / tf.cast(scale, images.dtype) + tf.cast(
            low, images.dtype
        )

    def distributions(self) -> dict[str, np.ndarray]:
        """Mean over members of ``p(n)`` [K], ``p(o)`` [N] and ``p(l | o)`` [N, L]."""
        count, op, level = (tf.nn.softmax(t).numpy().mean(0) for t in self.logits())
        return {"count": count, "ops": op, "levels": level}

    def distance_from_uniform(self) -> dict[str, float]:
        """Total-variation distances from uniform: ``ops``, ``½ Σ_o |p(o) - 1/N|``, and
        ``levels``, ``½ Σ_l |p(l | o) - 1/L|`` averaged over the ops that have levels."""
        d = self.distributions()
        ops, levels = d["ops"], d["levels"][self._has_levels > 0]
        return {
            "ops": float(0.5 * np.abs(ops - 1 / len(ops)).sum()),
            "levels": float(0.5 * np.abs(levels - 1 / d["levels"].shape[1]).sum(1).mean())
            if len(levels)
            else 0.0,
        }

    def summary(self) -> dict:
        """JSON-ready description: per-op probability, mean level and mean magnitude (the
        op's unsigned parameter, e.g. degrees for Rotate), level distribution, ops per image."""
        d = self.distributions()
        levels = np.arange(self.num_levels)
        return {
            "ops_per_image": {str(i + 1): float(p) for i, p in enumerate(d["count"])},
            "ops": {
                op.name: {
                    "probability": float(d["ops"][i]),
                    "mean_level": float(d["levels"][i] @ levels),
                    "mean_magnitude": float(d["levels"][i] @ op.magnitude.values(self.num_levels)),
                    "level_distribution": [round(float(p), 6) for p in d["levels"][i]],
                }
                for i, op in enumerate(self.space.ops)
            },
        }

    def policy_string(self) -> str:
        """One line: ops per image, then ops by probability with their mean level."""
        s = self.summary()
        count = " ".join(f"{n}:{p:.2f}" for n, p in s["ops_per_image"].items())
        ranked = sorted(s["ops"].items(), key=lambda kv: -kv[1]["probability"])
        ops = ", ".join(f"{n} {v['probability']:.3f}@{v['mean_level']:.1f}" for n, v in ranked)
        return f"n[{count}] | {ops}"

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "ops": self.ops,
            "num_levels": self.num_levels,
            "max_ops": self.max_ops,
            "learn_ops": self.learn_ops,
            "ensemble": self.ensemble,
            "levels": self.levels,
            "op_rule": self.op_rule,
            "evidence_options": self.evidence_options,
            "min_op_probability": self.min_op_probability,
            "seed": self.seed,
            "value_range": list(self.value_range),
            "clip_value": self.clip_value,
            "entropy": self.entropy_weight,
            "policy_optimizer": keras.optimizers.serialize(self.policy_optimizer),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("policy_optimizer"), dict):
            config["policy_optimizer"] = keras.optimizers.deserialize(config["policy_optimizer"])
        return cls(**config)
