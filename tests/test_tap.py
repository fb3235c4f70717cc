"""The tap: recording wraps planned layer calls only inside the block, records the
pre-activation output of rule layers, and leaves the model exactly as it was."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gar_tf.alignment import plan, tap

L = keras.layers


def _model():
    return keras.Sequential([keras.Input((3,)), L.Dense(4, activation="relu"), L.PReLU()])


def test_records_input_and_pre_activation_output_then_restores_the_model():
    model = _model()
    dense, prelu = model.layers
    x = tf.constant(np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32))
    before = model(x).numpy()
    with tap.recording(plan.build_plan(model)) as rec:
        during = model(x).numpy()
    np.testing.assert_array_equal(during, before)  # same outputs while recording
    units = [call.unit.layer for call in rec.calls]
    assert units == [dense, prelu]
    dense_call = rec.calls[0]
    np.testing.assert_array_equal(dense_call.inputs[0].numpy(), x.numpy())
    pre_activation = x.numpy() @ dense.kernel.numpy() + dense.bias.numpy()
    np.testing.assert_allclose(dense_call.outputs[0].numpy(), pre_activation, rtol=1e-6)
    assert rec.calls[1].weights and not dense_call.weights  # fallback snapshots its weights
    assert "call" not in vars(dense) and dense.activation is keras.activations.relu
    np.testing.assert_array_equal(model(x).numpy(), before)


def test_states_pair_calls_with_output_gradients_and_split_by_batch_axis():
    model = _model()
    x = tf.ones((2, 3))
    with tf.GradientTape() as t, tap.recording(plan.build_plan(model)) as rec:
        loss = tf.reduce_sum(model(x))
    states = rec.states(t.gradient(loss, rec.outputs))
    assert [len(s.grads) for s in states] == [1, 1]
    examples, fixed = states[1].examples(), states[1].fixed()
    assert set(examples) == {"inputs", "grads"} and set(fixed) == {"weights"}
    copy = states[1].replaced(examples, fixed)
    assert copy.unit is states[1].unit and copy.weights == fixed["weights"]


def test_nested_recording_is_refused_and_unrecorded_layers_warn():
    model = _model()
    p = plan.build_plan(model)
    with tap.recording(p), pytest.raises(RuntimeError, match="already open"), tap.recording(p):
        pass
    with pytest.warns(UserWarning, match="recorded no call"), tap.recording(p):
        pass  # the model is never called
