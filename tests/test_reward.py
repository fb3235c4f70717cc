"""Reward modes: the table of valid combinations, which examples each rewards along which
direction (checked on hand-made records), and the clean-slice comparison weights."""

import numpy as np
import pytest
import tensorflow as tf

from gar_tf.pending import PendingState
from gar_tf.reward import CLEAN_COMPARISONS, REWARDS, VALID, RewardMode, StepRecord


def test_table_accepts_exactly_the_valid_combinations():
    for reward in REWARDS:
        for clean in CLEAN_COMPARISONS:
            size = 2 if clean == "slice" else 0
            if clean in VALID[reward]:
                RewardMode(reward, clean, size)
            else:
                with pytest.raises(ValueError, match=f'clean_comparison="{clean}" needs reward='):
                    RewardMode(reward, clean, size)
    with pytest.raises(ValueError, match="clean_size >= 1"):
        RewardMode("next", "slice", 0)


def _record(value, batch=3):
    # No layer states: the mode's bookkeeping is independent of them.
    actions = {"p": tf.fill([batch], value)}
    return StepRecord([], actions, [tf.constant([float(value), 2.0 * value])])


@pytest.mark.parametrize("reward", REWARDS)
def test_target_rewards_the_right_batch_along_the_right_direction(reward):
    mode, pending = RewardMode(reward), PendingState("p")
    first = mode.target(_record(1), pending)
    if reward == "same":
        assert bool(first.active)
    else:
        assert not bool(first.active)  # nothing kept yet
    mode.keep(_record(1), pending, transformed=True)
    second = mode.target(_record(5), pending)
    assert bool(second.active)
    expected_actions = 5 if reward == "same" else 1
    np.testing.assert_array_equal(second.actions["p"].numpy(), [expected_actions] * 3)
    direction = {"next": [5.0, 10.0], "same": [5.0, 10.0], "next-minus-current": [4.0, 8.0]}
    np.testing.assert_allclose(second.direction[0].numpy(), direction[reward])


def test_alternate_transforms_even_steps_and_rewards_only_after_them():
    mode, pending = RewardMode("next", "alternate"), PendingState("p")
    assert [bool(mode.transforms(tf.constant(i))) for i in range(4)] == [True, False] * 2
    mode.keep(_record(1), pending, transformed=mode.transforms(tf.constant(0)))
    assert bool(mode.target(_record(2), pending).active)
    mode.keep(_record(2), pending, transformed=mode.transforms(tf.constant(1)))
    assert not bool(mode.target(_record(3), pending).active)


def test_clean_slice_weights_average_the_last_examples():
    mode = RewardMode("next", "slice", 2)
    assert int(mode.rewarded(tf.constant(5))) == 3
    w = mode.comparison_weights(tf.constant(5), sample_weight=tf.constant([1, 1, 1, 1, 0.5]))
    np.testing.assert_allclose(w.numpy(), [0, 0, 0, 2.5, 1.25])
    assert RewardMode().comparison_weights(tf.constant(5)) is None


def test_held_out_rewards_this_steps_batch_along_the_held_out_gradient_and_keeps_nothing():
    """The model puts the held-out gradient into the record; the mode rewards the record's
    own actions along it, at every step, and leaves the pending state alone."""
    mode, pending = RewardMode("next", "held_out"), PendingState("p")
    assert mode.held_out and not mode.uses_previous_step
    assert bool(mode.transforms(tf.constant(1))) and mode.comparison_weights(5) is None
    for value in (1, 5):
        target = mode.target(_record(value), pending)
        assert bool(target.active)
        np.testing.assert_array_equal(target.actions["p"].numpy(), [value] * 3)
        np.testing.assert_allclose(target.direction[0].numpy(), [value, 2.0 * value])
        mode.keep(_record(value), pending, transformed=True)
        assert not bool(pending.valid.numpy())
