"""PendingState: a named structure kept between steps, any batch size, two buffers,
checkpoint and restore by name."""

import numpy as np
import pytest
import tensorflow as tf

from gar_tf.pending import PendingState


def _structure(batch, offset=0.0):
    rows = np.arange(batch * 2, dtype=np.float32).reshape(batch, 2) + offset
    return {
        "examples": {"calls": [{"inputs": [tf.constant(rows)]}], "ids": tf.range(batch)},
        "fixed": {"weights": [tf.constant([1.0, 2.0, 3.0]) + offset]},
    }


def _assert_equal(a, b):
    tf.nest.assert_same_structure(a, b)
    for x, y in zip(tf.nest.flatten(a), tf.nest.flatten(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_store_then_read_returns_the_same_structure_for_any_batch_size():
    pending = PendingState("p")
    assert not bool(pending.valid.numpy())
    for batch, offset in ((4, 0.0), (3, 10.0), (5, 20.0)):  # smaller, then larger batches
        pending.store(_structure(batch, offset))
        _assert_equal(pending.read(_structure(1)), _structure(batch, offset))
    assert bool(pending.valid.numpy())
    pending.reset()
    assert not bool(pending.valid.numpy())


def test_inside_tf_function_a_step_reads_the_previous_store():
    pending = PendingState("p")

    @tf.function
    def step(structure):
        before = pending.read(structure)
        pending.store(structure)
        return before

    step(_structure(4, 0.0))
    before = step(_structure(3, 10.0))  # written after the read: the read sees batch 4
    _assert_equal(before, _structure(4, 0.0))


def test_valid_flag_follows_store():
    pending = PendingState("p")
    pending.store(_structure(2), valid=False)
    assert not bool(pending.valid.numpy())
    pending.store(_structure(2), valid=tf.constant(True))
    assert bool(pending.valid.numpy())


def test_changed_structure_or_shape_is_a_clear_error():
    pending = PendingState("p")
    pending.store(_structure(2))
    changed = _structure(2)
    changed["fixed"]["weights"] = [tf.constant([1.0, 2.0])]
    with pytest.raises(ValueError, match="tensors to keep between steps changed"):
        pending.store(changed)


def test_checkpoint_is_keyed_by_name_and_restores_into_a_new_state():
    pending = PendingState("p")
    pending.store(_structure(3, 5.0))
    saved = pending.checkpoint()
    assert bool(saved["valid"]) and "examples.ids" in saved and "fixed.weights.0" in saved
    fresh = PendingState("q")
    fresh.restore(saved)  # before its variables exist: kept until the first read
    assert bool(fresh.valid.numpy())
    _assert_equal(fresh.read(_structure(1)), _structure(3, 5.0))
    existing = PendingState("r")
    existing.store(_structure(2))
    existing.restore(saved)  # variables exist: assigned now
    _assert_equal(existing.read(_structure(1)), _structure(3, 5.0))


def test_a_restored_state_that_does_not_fit_is_dropped_with_a_warning():
    pending = PendingState("p")
    pending.store(_structure(3))
    saved = pending.checkpoint()
    del saved["examples.ids"]
    fresh = PendingState("q")
    fresh.restore(saved)
    with pytest.warns(UserWarning, match="does not fit this model"):
        fresh.read(_structure(1))
    assert not bool(fresh.valid.numpy())
    assert set(PendingState("e").checkpoint()) == {"valid"}


def test_nbytes_counts_both_buffers_at_the_stored_batch_size():
    state = PendingState("nbytes")
    assert state.nbytes == 0
    structure = {
        "examples": {"x": tf.zeros([5, 3]), "n": tf.zeros([5], tf.int32)},
        "fixed": {"w": tf.zeros([2, 2], tf.float64)},
    }
    state.store(structure)
    one_buffer = 5 * 3 * 4 + 5 * 4 + 4 * 8
    assert state.nbytes == 2 * one_buffer
