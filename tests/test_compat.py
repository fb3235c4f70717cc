"""Every private Keras/TF access of gar_tf (all in gar_tf/_compat.py) works on the installed
versions, and a missing one fails with a message naming it and the tested range."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gar_tf import _compat


def _compiled_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def test_model_internals_compute_the_compiled_loss():
    model = _compiled_model()
    x, y = np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32)
    y_pred = model(x)
    expected = float(np.mean(np.square(y_pred.numpy())))
    assert float(_compat.compute_loss(model, x, y, y_pred, None)) == pytest.approx(expected)
    weights = tf.constant([0.0, 0.0, 2.0, 2.0])
    assert float(_compat.compiled_loss(model, y, y_pred, weights)) == pytest.approx(expected)
    assert _compat.loss_tracker(model).name == "loss"
    assert _compat.model_strategy(model) is None


def test_distribution_helpers():
    loss = tf.constant(3.0)
    assert float(_compat.unscale_loss_for_distribution(loss)) == 3.0  # one replica
    assert _compat.strategy_supports_no_merge_call() in (True, False)
    strategy = tf.distribute.get_strategy()
    optimizer = keras.optimizers.SGD()
    assert _compat.optimizer_strategy(optimizer) in (None, strategy)


def test_layer_internals():
    inputs = keras.Input((4, 2))
    conv = keras.layers.Conv1D(3, 3, padding="causal", dilation_rate=2)
    model = keras.Model(inputs, conv(inputs))
    assert conv in _compat.sublayers(model)
    assert [list(p) for p in _compat.causal_padding(conv)] == [[0, 0], [4, 0], [0, 0]]
    probabilities = keras.activations.softmax(tf.constant([[1.0, 2.0]]))
    np.testing.assert_allclose(_compat.keras_logits(probabilities).numpy(), [[1.0, 2.0]])
    with _compat.autocast_scope("float16"):
        variable = keras.Variable(np.ones(2, np.float32))
        assert variable.value.dtype == tf.float16


def test_first_replica_build_hooks_exist_on_keras_model():
    trainer = keras.Model.__mro__
    assert any("_maybe_symbolic_build" in vars(cls) for cls in trainer)
    assert any("_symbolic_build" in vars(cls) for cls in trainer)


def test_a_removed_private_piece_names_itself_and_the_tested_range():
    class WithoutIt:  # what a model would look like after an upgrade removed the method
        pass

    with pytest.raises(_compat.IncompatibleVersionError, match="_compute_loss") as error:
        _compat.compute_loss(WithoutIt(), None, None, None, None)
    assert _compat.TESTED in str(error.value) and keras.__version__ in str(error.value)
    with pytest.raises(_compat.IncompatibleVersionError, match="keras.src.nowhere"):
        _compat._private("keras.src.nowhere", "thing")


def test_tested_range_matches_setup_py():
    from pathlib import Path

    setup = (Path(__file__).parents[1] / "setup.py").read_text()
    for bound in _compat.TESTED.split(" and "):
        assert f'"{bound}"' in setup, f"setup.py does not declare {bound}"
