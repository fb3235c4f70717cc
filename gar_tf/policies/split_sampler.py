"""SplitSampler: a learned mixture over dataset splits, trained by GAR (docs/method.md §6)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from gar_tf.policies import evidence
from gar_tf.policies.base import Policy
from gar_tf.replicas import all_reduce_sum

RULES = ("evidence", "reinforce")
#: Defaults of each rule's options; an option of the other rule is refused.
RULE_OPTIONS = {
    "evidence": evidence.OPTIONS,
    "reinforce": {"entropy": 0.3, "policy_optimizer": None},
}


class SplitSampler(Policy):
    """Draws each example from split ``s ~ p`` and learns ``p`` from GAR rewards.

    ``p = (1 - K f) softmax(z) + f`` over the K splits, with logits ``z`` (zero
    init: uniform) and probability floor ``f = min_probability``, so no split is
    ever dropped for good (a split that is never drawn gets no REINFORCE gradient:
    docs/method.md §9). Two rules learn ``z`` from the standardised rewards ``w``:

    * ``rule="evidence"`` (default, docs/method.md §10): per split, the discounted mean
      advantage ``a_k`` of its examples and its standard error ``se_k`` (clustered by
      step); ``z_k = min(a_k + c_k se_k - max_j (a_j - c_j se_j), 0) / temperature`` with
      ``c_k`` Student's t quantile at the normal level of ``c = confidence`` for the
      split's effective number of steps; a split is compared once its statistics span
      ``min_steps`` effective steps. Splits the rewards cannot tell from the best
      stay level with it; a split whose mean is ``T`` below the best beyond the noise gets
      ``1/e`` of its probability, down to ``exp(-max_log_ratio)`` of it for the worst split
      (beyond that, all gaps are scaled down together). The knob is ``confidence``.
    * ``rule="reinforce"``, the reference (docs/method.md §5): loss
      ``-mean(w_i log p(s_i)) - entropy * H(p)``, gradient clipped by value, Adam. One
      ``entropy`` both keeps equal splits level and sets how far worse ones fall.

    :meth:`dataset` is an infinite, batched ``tf.data.Dataset`` of
    ``(x, y, sample_weight, {name: split_ids})`` that reads the current logits
    while ``fit`` runs: batches already prefetched (a few) were drawn with the
    logits of a few steps earlier. Pass ``steps_per_epoch`` to ``fit``
    (:attr:`steps_per_pass` is one pass over the finite splits).

    Args:
        splits: a list, or a dict by name, of ``tf.data.Dataset`` of ``(x, y)`` or
            ``(x, y, sample_weight)``, unbatched, all with the same element spec.
            Finite splits are shuffled and repeated; any size works.
        batch_size: examples per batch.
        names: split names for a list (default ``split_0``, ...).
        seed: seed for shuffling and for the split draws.
        rule: ``"evidence"`` or ``"reinforce"`` (above). Each rule takes only its own
            options; passing the other's raises.
        temperature: evidence rule, ``T > 0`` in standard deviations of the
            standardised reward (default 0.1: docs/split_mixture.md).
        confidence: evidence rule, ``c >= 0``: standard errors of a split's mean
            advantage that count as noise, as a normal quantile (widened to Student's t while
            few steps are in; default 1.75, docs/split_mixture.md).
        horizon: evidence rule, steps ``H > 1`` the statistics remember: each step
            discounts them by ``1 - 1/H`` (default 300).
        max_log_ratio: evidence rule, ``L > 0``: no split's log-probability goes more than
            L below the best split's (T is raised instead; default 3, i.e. >= 5% of the
            best split's probability; ``inf``: no cap).
        min_steps: evidence rule, effective steps ``>= 1`` a split's statistics must span
            before it is compared (default 30: early in training, bounds from a few steps
            let equal splits jump apart, docs/split_mixture.md).
        policy_optimizer: reinforce rule, optimizer for the logits (default ``Adam(0.01)``).
        entropy: reinforce rule, weight of the entropy bonus ``H(p)``; it pulls towards
            uniform and keeps equally good splits balanced (default 0.3).
        min_probability: the floor ``f``, in ``[0, 1/K)``.
        shuffle_buffer: shuffle buffer per finite split.
        name: the policy name, also the key of its actions in each batch.
    """

    def __init__(
        self,
        splits: Sequence[tf.data.Dataset] | Mapping[str, tf.data.Dataset],
        batch_size: int,
        names: Sequence[str] | None = None,
        seed: int | None = None,
        rule: str = "evidence",
        temperature: float | None = None,
        confidence: float | None = None,
        horizon: float | None = None,
        max_log_ratio: float | None = None,
        min_steps: float | None = None,
        policy_optimizer: keras.optimizers.Optimizer | None = None,
        entropy: float | None = None,
        min_probability: float = 0.0,
        shuffle_buffer: int = 10_000,
        name: str = "split_sampler",
        **kwargs,
    ) -> None:
        options = rule_options(
            rule,
            temperature=temperature,
            confidence=confidence,
            horizon=horizon,
            max_log_ratio=max_log_ratio,
            min_steps=min_steps,
            policy_optimizer=policy_optimizer,
            entropy=entropy,
        )
        splits, names = _named_splits(splits, names)
        if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        if not 0.0 <= min_probability < 1.0 / len(splits):
            raise ValueError(
                f"min_probability must be in [0, 1/{len(splits)}), got {min_probability}."
            )
        _check_splits(splits, names)
        super().__init__(
            policy_optimizer=options.get("policy_optimizer"),
            entropy_weight=options.get("entropy", 0.0),
            acts_in="pipeline",
            name=name,
            **kwargs,
        )
        self.splits = splits
        self.split_names = names
        self.batch_size = int(batch_size)
        self.seed = seed
        self._draw_seed = int(np.random.default_rng(seed).integers(2**31))
        self.min_probability = float(min_probability)
        self.shuffle_buffer = int(shuffle_buffer)
        self.rule = rule
        self.temperature = options.get("temperature")
        self.confidence = options.get("confidence")
        self.horizon = options.get("horizon")
        self.max_log_ratio = options.get("max_log_ratio")
        self.min_steps = options.get("min_steps")
        k = len(splits)
        assigned = "only_first_replica" if rule == "evidence" else "none"
        self.logits = self.add_policy_weight("logits", (k,), aggregation=assigned)
        #: Evidence rule: the discounted per-split statistics (evidence.STATISTICS).
        self.statistics = [
            self.add_weight(
                shape=(k,),
                initializer="zeros",
                trainable=False,
                aggregation="only_first_replica",
                name=label,
            )
            for label in (evidence.STATISTICS if rule == "evidence" else ())
        ]
        self.reward_sum, self.reward_count = (
            self.add_weight(
                shape=(k,), initializer="zeros", trainable=False, aggregation="sum", name=label
            )
            for label in ("reward_sum", "reward_count")
        )

    @property
    def steps_per_pass(self) -> int | None:
        """Batches in one pass over all splits, or None if one is infinite/unknown."""
        sizes = [int(s.cardinality()) for s in self.splits]
        if min(sizes) < 0:
            return None
        return max(1, sum(sizes) // self.batch_size)

    def _log_p(self) -> tf.Tensor:
        k = len(self.splits)
        p = (1.0 - k * self.min_probability) * tf.nn.softmax(self.logits.value)
        return tf.math.log(p + self.min_probability)

    def probabilities(self) -> dict[str, float]:
        """The current mixture, by split name."""
        return dict(zip(self.split_names, np.exp(self._log_p().numpy()).tolist()))

    def sample(self, batch_size) -> tf.Tensor:
        """Split ids [batch_size] drawn from the current mixture."""
        return tf.random.categorical(self._log_p()[None], batch_size, dtype=tf.int32)[0]

    def log_prob(self, actions: tf.Tensor) -> tf.Tensor:
        return tf.gather(self._log_p(), tf.cast(actions, tf.int32))

    def entropy(self) -> tf.Tensor:
        log_p = self._log_p()
        return -tf.reduce_sum(tf.exp(log_p) * log_p)

    def update(self, rewards: tf.Tensor, actions: tf.Tensor, active=True) -> None:
        """One step of the rule, and per-split bookkeeping of the raw rewards.

        Evidence rule: the standardised rewards' per-split sums and counts, summed over
        replicas, enter the discounted statistics; the logits become
        :func:`evidence.evidence_logits` of them (docs/method.md §10). Reinforce rule:
        :meth:`Policy.update`. Skips as in :meth:`Policy.update`.
        """
        if self.rule == "reinforce":
            super().update(rewards, actions, active)
        else:
            self._evidence_update(rewards, actions, active)
        finite = tf.logical_and(tf.reduce_all(tf.math.is_finite(rewards)), active)
        ids = tf.cast(actions, tf.int32)
        k = len(self.splits)
        sums = tf.math.unsorted_segment_sum(tf.cast(rewards, tf.float32), ids, k)
        counts = tf.math.unsorted_segment_sum(tf.ones_like(ids, tf.float32), ids, k)
        self.reward_sum.assign_add(tf.where(finite, sums, 0.0))
        self.reward_count.assign_add(tf.where(finite, counts, 0.0))

    def _evidence_update(self, rewards, actions, active) -> None:
        weights, _, apply = self.standardised(rewards, active)
        k = len(self.splits)
        sums, counts = all_reduce_sum(list(evidence.step_sums(weights, actions, k)))
        old = [v.value for v in self.statistics]
        new, logits = evidence.step(old, sums, counts, apply, self._evidence_options())
        for variable, value in zip(self.statistics, new):
            variable.assign(value)
        self.logits.assign(logits)

    def _evidence_options(self) -> dict[str, float]:
        """The evidence rule's options as kept on the sampler (None under rule="reinforce")."""
        return {key: getattr(self, key) for key in evidence.OPTIONS}

    def advantages(self) -> dict[str, dict[str, float]]:
        """Evidence rule: per split, the mean standardised advantage ``a``, its standard
        error ``se`` and the shrunk deviation the logits are made of (docs/method.md §10)."""
        if self.rule != "evidence":
            raise ValueError(f"advantages() is kept by rule='evidence', not {self.rule!r}.")
        stats = [v.value for v in self.statistics]
        a, se, shrunk = evidence.gaps(stats, self._evidence_options())
        return {
            name: {"a": float(x), "se": float(e), "shrunk": float(d)}
            for name, x, e, d in zip(self.split_names, a.numpy(), se.numpy(), shrunk.numpy())
        }

    def get_config(self) -> dict:
        """The sampler's options (not its splits: a sampler is rebuilt with its datasets)."""
        rule = self._evidence_options()
        if self.rule == "reinforce":
            rule = {
                "entropy": self.entropy_weight,
                "policy_optimizer": keras.optimizers.serialize(self.policy_optimizer),
            }
        return {
            **super().get_config(),
            "batch_size": self.batch_size,
            "names": list(self.split_names),
            "seed": self.seed,
            "rule": self.rule,
            **rule,
            "min_probability": self.min_probability,
            "shuffle_buffer": self.shuffle_buffer,
        }

    def take_mean_rewards(self) -> dict[str, float]:
        """Mean raw reward per split since the last call (NaN if not drawn), then reset."""
        sums, counts = self.reward_sum.numpy(), self.reward_count.numpy()
        self.reward_sum.assign(np.zeros_like(sums))
        self.reward_count.assign(np.zeros_like(counts))
        with np.errstate(invalid="ignore", divide="ignore"):
            return dict(zip(self.split_names, (sums / counts).tolist()))

    def dataset(self, clean_size: int = 0) -> tf.data.Dataset:
        """Infinite batches ``(x, y, sample_weight, {name: split ids})`` from the mixture.

        With ``clean_size`` V > 0, the last V examples of each batch come from the
        *uniform* mixture instead (as the reference code appends plain examples to each
        batch, docs/method.md §4): use
        ``GARModel(clean_comparison="slice", clean_size=V)`` so that they give the
        comparison gradient, which then does not follow the learned mixture.
        """
        if not 0 <= clean_size < self.batch_size:
            raise ValueError(
                f"clean_size must be in [0, batch_size={self.batch_size}), got {clean_size}."
            )
        mixture = self._draws(self._log_p, self.batch_size - clean_size, stream=0)
        if clean_size:
            uniform = self._draws(lambda: tf.zeros([len(self.splits)]), clean_size, stream=1)
            mixture = tf.data.Dataset.zip(mixture, uniform).map(
                lambda a, b: tf.nest.map_structure(lambda s, t: tf.concat([s, t], 0), a, b)
            )
        key = self.name

        def to_batch(element, ids):
            x, y, *weight = element
            return x, y, (weight[0] if weight else None), {key: ids}

        return mixture.map(to_batch).prefetch(2)

    def _draws(self, log_p, size: int, stream: int) -> tf.data.Dataset:
        """Batches of ``size`` examples, each from a split drawn from ``softmax(log_p())``."""
        tagged = []
        for i, split in enumerate(self.splits):
            if split.cardinality() != tf.data.INFINITE_CARDINALITY:
                seed = _offset(self.seed, i + 100 * stream)
                split = split.shuffle(self.shuffle_buffer, seed=seed).repeat()
            tagged.append(split.map(lambda *e, i=i: (e, tf.constant(i, tf.int32))))

        def draw(step):
            seed = tf.stack([step, tf.constant(self._draw_seed + 7919 * stream, tf.int64)])
            return tf.random.stateless_categorical(log_p()[None], size, seed=seed, dtype=tf.int64)[
                0
            ]

        choices = tf.data.Dataset.counter().map(draw).unbatch()
        mixture = tf.data.Dataset.choose_from_datasets(tagged, choices)
        return mixture.batch(size, drop_remainder=True)


def rule_options(rule: str, **given) -> dict:
    """The options of ``rule`` with their defaults filled in; raises for an unknown rule,
    an option of the other rule, or a value out of range."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}.")
    foreign = [key for key, value in given.items() if value is not None]
    foreign = [key for key in foreign if key not in RULE_OPTIONS[rule]]
    if foreign:
        other = next(r for r in RULES if r != rule)
        raise ValueError(
            f"{', '.join(foreign)} belong(s) to rule={other!r}, not rule={rule!r}: pass "
            f"rule={other!r} or leave them out (rule={rule!r} takes "
            f"{', '.join(RULE_OPTIONS[rule])})."
        )
    if rule == "evidence":
        return evidence.options(**{key: given.get(key) for key in evidence.OPTIONS})
    entropy = RULE_OPTIONS[rule]["entropy"] if given.get("entropy") is None else given["entropy"]
    number = isinstance(entropy, (int, float, np.number)) and not isinstance(entropy, bool)
    if not number or not np.isfinite(entropy) or entropy < 0:
        raise ValueError(f"entropy must be a number >= 0, got {entropy!r}.")
    return {"entropy": float(entropy), "policy_optimizer": given.get("policy_optimizer")}


def _offset(seed: int | None, i: int) -> int | None:
    return None if seed is None else seed + 1000 * (i + 1)


def _named_splits(splits, names):
    if isinstance(splits, Mapping):
        if names is not None:
            raise ValueError("Pass names only with a list of splits; a dict already names them.")
        names, splits = list(splits.keys()), list(splits.values())
    else:
        splits = list(splits)
        names = [f"split_{i}" for i in range(len(splits))] if names is None else list(names)
    if len(splits) < 2:
        raise ValueError(f"A SplitSampler needs at least 2 splits, got {len(splits)}.")
    if len(names) != len(splits) or len(set(names)) != len(names):
        raise ValueError(
            f"names must be {len(splits)} distinct strings, one per split; got {names}."
        )
    return splits, [str(n) for n in names]


def _check_splits(splits, names) -> None:
    spec = None
    for name, split in zip(names, splits):
        if not isinstance(split, tf.data.Dataset):
            raise TypeError(f"Split {name!r} is a {type(split).__name__}, not a tf.data.Dataset.")
        element = split.element_spec
        if not isinstance(element, tuple) or len(element) not in (2, 3):
            raise ValueError(
                f"Split {name!r} must yield (x, y) or (x, y, sample_weight), got {element}."
            )
        components = tf.nest.flatten(element)
        if all(c.shape.rank and c.shape[0] is None for c in components):
            raise ValueError(
                f"Split {name!r} looks batched: every component of its elements has an "
                f"unknown leading axis ({element}). Splits hold single examples: pass the "
                "dataset before .batch(), or split.unbatch(); SplitSampler batches itself."
            )
        if spec is None:
            spec, first = element, name
        elif element != spec:
            raise ValueError(
                f"Split {name!r} yields {element} but split {first!r} yields {spec}; all "
                "splits need the same element spec (shapes and dtypes)."
            )
        if split.cardinality() == 0 or not any(True for _ in split.take(1)):
            raise ValueError(f"Split {name!r} is empty.")
