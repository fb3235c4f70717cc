"""Where the reward is computed: which examples are rewarded, along which direction.

docs/method.md §3 (reward variants), §4 (clean comparison), §11 (held-out comparison),
§13 (comparison across splits).
One step of GARModel leaves a :class:`StepRecord` (per-layer states of its batch, the
policies' actions, its comparison gradient). A :class:`RewardMode` turns it, with the
record kept from the step before, into a :class:`Target`; :func:`rewards` computes
``r_i = <g_i, direction>`` for the target's examples with the alignment engine
(``gar_tf/alignment``). The combinations that make sense are :data:`VALID`, once.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import tensorflow as tf

from gar_tf.alignment import AlignmentEngine
from gar_tf.alignment.tap import CallState
from gar_tf.pending import BATCHED, FIXED, PendingState
from gar_tf.replicas import all_reduce_sum, num_replicas

REWARDS = ("next", "same", "next-minus-current")
CLEAN_COMPARISONS = (None, "alternate", "slice", "held_out", "other_splits")
#: reward -> the clean comparisons it works with, and why the others do not.
VALID = {
    "next": (None, "alternate", "slice", "held_out", "other_splits"),
    "same": (None, "slice"),
    "next-minus-current": (None,),
}
_WHY_NOT = {
    ("same", "alternate"): 'an untouched step rewards the step before it, which "same" never does',
    ("next-minus-current", "alternate"): "G_t of a transformed step is not a clean comparison",
    ("next-minus-current", "slice"): "G_t of the rewarded examples would be compared with itself",
    ("same", "held_out"): "the held-out batch is compared after the update, at the next weights",
    ("next-minus-current", "held_out"): "G_t of a transformed batch is not a clean comparison",
    ("same", "other_splits"): "an example's own batch is the one it was trained on",
    ("next-minus-current", "other_splits"): "G_t holds each example's own split",
}


class StepRecord(NamedTuple):
    """What one step leaves for the reward."""

    states: list[CallState]  # per recorded layer call: inputs, dL/dz, weight snapshot
    actions: dict[str, tf.Tensor]  # policy name -> actions of the rewarded examples
    gradient: list[tf.Tensor]  # the comparison gradient of this step's batch


class Target(NamedTuple):
    """The examples to reward this step and what to align them with."""

    states: list[CallState]
    actions: dict[str, tf.Tensor]
    direction: list[tf.Tensor]
    active: tf.Tensor  # False: no reward this step (first step, untouched batch)
    # The recorded calls of the batch whose gradient is ``direction``, or None (§12's Gram form).
    comparison: list[CallState] | None = None


@dataclasses.dataclass(frozen=True)
class RewardMode:
    """One combination of ``reward`` and ``clean_comparison`` (docs/method.md §3-4).

    ``reward``: ``"next"`` rewards batch t along ``G_{t+1}``; ``"same"`` along its own
    ``G_t``; ``"next-minus-current"`` along ``G_{t+1} - G_t``. ``clean_comparison``:
    None, ``"alternate"`` (policies transform even steps; each untouched odd step
    rewards the step before), ``"slice"`` (the last ``clean_size`` examples of each
    batch stay untouched, give the comparison gradient and get no reward) or
    ``"held_out"`` (each step takes a training batch and a held-out batch; the held-out
    gradient after the optimizer step is the direction for the training batch, §11) or
    ``"other_splits"`` (example i of split k is aligned with ``G^{(-k)}_{t+1}``, the mean
    gradient of batch t+1's examples from the other splits, §13; the record's gradient then
    holds one direction per split, stacked on axis 0).
    """

    reward: str = "next"
    clean_comparison: str | None = None
    clean_size: int = 0

    def __post_init__(self) -> None:
        if self.reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {self.reward!r}.")
        if self.clean_comparison not in CLEAN_COMPARISONS:
            raise ValueError(
                f"clean_comparison must be one of {CLEAN_COMPARISONS}, got "
                f"{self.clean_comparison!r}."
            )
        if self.clean_comparison not in VALID[self.reward]:
            why = _WHY_NOT[(self.reward, self.clean_comparison)]
            takes = " or ".join(f'"{r}"' for r in REWARDS if self.clean_comparison in VALID[r])
            raise ValueError(
                f'clean_comparison="{self.clean_comparison}" needs reward={takes}, got '
                f'"{self.reward}" ({why}).'
            )
        if (self.clean_comparison == "slice") != (self.clean_size >= 1):
            raise ValueError(
                'clean_comparison="slice" needs clean_size >= 1, and clean_size is used '
                f"only with it; got clean_comparison={self.clean_comparison!r}, "
                f"clean_size={self.clean_size}."
            )

    @property
    def held_out(self) -> bool:
        """Whether each step pairs a training batch with a held-out comparison batch."""
        return self.clean_comparison == "held_out"

    @property
    def other_splits(self) -> bool:
        """Whether each example is compared with the next batch's other splits only."""
        return self.clean_comparison == "other_splits"

    @property
    def direction_is_batch_gradient(self) -> bool:
        """Whether the direction is the whole gradient of a batch recorded this step (so
        the engine may use the Gram form, docs/method.md §12)."""
        return self.reward in ("next", "same") and self.clean_comparison in (None, "alternate")

    @property
    def uses_previous_step(self) -> bool:
        """Whether the rewarded batch is the one kept from the step before (not with
        ``"same"``, nor with ``"held_out"``, whose step holds both batches)."""
        return self.reward != "same" and not self.held_out

    def transforms(self, iteration: tf.Tensor) -> tf.Tensor | bool:
        """Whether the policies transform the batch of step ``iteration`` (0-based)."""
        if self.clean_comparison == "alternate":
            return iteration % 2 == 0
        return True

    def rewarded(self, batch: tf.Tensor) -> tf.Tensor:
        """How many of a batch's examples (the first ones) are rewarded."""
        return batch - self.clean_size

    def comparison_weights(self, batch: tf.Tensor, sample_weight=None) -> tf.Tensor | None:
        """Per-example weights whose weighted mean loss gives the comparison gradient:
        the clean slice (scaled to a mean over it), or None for the whole batch."""
        if not self.clean_size:
            return None
        mask = tf.cast(tf.range(batch) >= batch - self.clean_size, tf.float32)
        return (
            _times_sample_weight(mask, sample_weight) * tf.cast(batch, tf.float32) / self.clean_size
        )

    def other_splits_weights(self, splits, count: int, sample_weight=None) -> list[tf.Tensor]:
        """Per split k < ``count``, weights whose weighted mean compiled loss is the mean over
        the global batch's examples of the other splits, or over all of them where there are
        none (then that split's direction is ``"next"``'s; docs/method.md §13)."""
        splits = tf.cast(splits, tf.int32)
        masks = tf.cast(tf.not_equal(splits[None, :], tf.range(count)[:, None]), tf.float32)
        batch = tf.cast(tf.shape(splits)[0], tf.float32)
        counts, total = all_reduce_sum([tf.reduce_sum(masks, axis=1), batch])
        masks = tf.where(counts[:, None] > 0, masks, 1.0)
        counts = tf.where(counts > 0, counts, total)
        # Keras divides a replica's weighted loss by its batch and by the replicas.
        weights = _times_sample_weight(
            masks * (batch * num_replicas() / counts)[:, None], sample_weight
        )
        return tf.unstack(weights, num=count)

    def target(self, now: StepRecord, pending: PendingState) -> Target:
        """The examples to reward at this step, given this step's record."""
        comparison = now.states if self.direction_is_batch_gradient else None
        if not self.uses_previous_step:
            return Target(now.states, now.actions, now.gradient, tf.constant(True), comparison)
        before = self._unpack(now, pending.read(self._kept(now)))
        direction = now.gradient
        if self.reward == "next-minus-current":
            direction = [g - g_before for g, g_before in zip(now.gradient, before.gradient)]
        valid = pending.valid.read_value()
        return Target(before.states, before.actions, direction, valid, comparison)

    def keep(self, now: StepRecord, pending: PendingState, transformed) -> None:
        """Keeps what the next step's :meth:`target` reads; only a transformed batch may be
        rewarded (under ``"alternate"``, an untouched one is kept as not valid)."""
        if self.uses_previous_step:
            pending.store(self._kept(now), valid=transformed)

    def _kept(self, now: StepRecord) -> dict:
        gradient = now.gradient if self.reward == "next-minus-current" else []
        return {
            BATCHED: {"calls": [s.examples() for s in now.states], "actions": now.actions},
            FIXED: {"calls": [s.fixed() for s in now.states], "gradient": gradient},
        }

    @staticmethod
    def _unpack(now: StepRecord, kept: dict) -> StepRecord:
        examples, fixed = kept[BATCHED], kept[FIXED]
        states = [
            s.replaced(e, f) for s, e, f in zip(now.states, examples["calls"], fixed["calls"])
        ]
        return StepRecord(states, examples["actions"], fixed["gradient"])


def _times_sample_weight(weights: tf.Tensor, sample_weight) -> tf.Tensor:
    """``weights`` (examples on the last axis) times the batch's sample weights, if any."""
    if sample_weight is None:
        return weights
    return weights * tf.cast(tf.reshape(sample_weight, [-1]), tf.float32)


def rewards(
    engine: AlignmentEngine, target: Target, mode: RewardMode, splits: tf.Tensor | None = None
) -> tf.Tensor:
    """``r_i = <g_i, direction>`` [rewarded examples] of the target (zeros when inactive).

    Under ``"other_splits"`` the direction holds one gradient per split on axis 0 and
    ``splits`` is each rewarded example's split: ``r_i = <g_i, direction[splits_i]>``.
    """

    def aligned():
        if mode.other_splits:
            return leave_split_out(engine, target, splits)
        r = engine.alignment(target.states, target.direction, target.comparison)
        return r[: mode.rewarded(tf.shape(r)[0])]

    if tf.get_static_value(target.active) is True:
        return aligned()
    actions = list(target.actions.values())
    first = target.states[0]
    count = tf.shape(actions[0])[0] if actions else mode.rewarded(first.batch_size())
    return tf.cond(target.active, aligned, lambda: tf.zeros([count]))


def leave_split_out(engine: AlignmentEngine, target: Target, splits: tf.Tensor) -> tf.Tensor:
    """``r_i = <g_i, G^{(-s_i)}>``: each example along the direction of the splits it is not
    from (docs/method.md §13); one alignment per split, each example keeps its own."""
    per_split = [
        engine.alignment(target.states, [d[k] for d in target.direction])
        for k in range(target.direction[0].shape[0])
    ]
    chosen = tf.stack(per_split, axis=1)  # [B, K]
    splits = tf.cast(splits, tf.int32)
    return tf.gather(chosen, splits, axis=1, batch_dims=1)
