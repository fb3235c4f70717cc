"""gar_tf.multi_worker in one process: the train function it builds trains like Keras'
(steps_per_execution, end of data), and each worker's callback paths."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import gar_tf
from gar_tf import multi_worker


def _fit(own_function: bool, steps_per_execution: int) -> tuple[list, dict]:
    keras.utils.set_random_seed(0)
    backbone = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model = gar_tf.GARModel(backbone)
    model.compile(
        optimizer="sgd", loss="mse", metrics=["mae"], steps_per_execution=steps_per_execution
    )
    if own_function:  # what GARModel builds under MultiWorkerMirroredStrategy
        model.make_train_function = lambda force=False: setattr(
            model, "train_function", multi_worker.step_function(model, model.train_step)
        )
    x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    data = tf.data.Dataset.from_tensor_slices((x, x[:, :2] * 2)).batch(8)  # 5 batches
    history = model.fit(data, epochs=2, verbose=0)
    assert ("step_function" in model.train_function.__qualname__) == own_function
    return [w.numpy() for w in backbone.weights], history.history


@pytest.mark.parametrize("steps_per_execution", [1, 2])
def test_the_multi_worker_train_function_trains_like_keras(steps_per_execution):
    keras_weights, keras_history = _fit(False, steps_per_execution)
    own_weights, own_history = _fit(True, steps_per_execution)
    for a, b in zip(own_weights, keras_weights):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert own_history.keys() == keras_history.keys()
    for key in keras_history:
        np.testing.assert_allclose(own_history[key], keras_history[key], rtol=1e-6, err_msg=key)


def test_mean_over_replicas_keeps_scalars_and_shapes():
    strategy = tf.distribute.get_strategy()
    logs = {"loss": tf.constant(2.0), "vector": tf.constant([1.0, 3.0])}
    reduced = multi_worker.mean_over_replicas(strategy, logs)
    assert reduced["loss"].shape == () and float(reduced["loss"]) == 2.0
    np.testing.assert_array_equal(reduced["vector"].numpy(), [1.0, 3.0])


def _tf_config(monkeypatch, cluster: dict, task_type: str, index: int) -> None:
    task = {"cluster": cluster, "task": {"type": task_type, "index": index}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(task))


def test_chief_and_worker_paths(monkeypatch, tmp_path):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert gar_tf.is_chief() and gar_tf.worker_path(tmp_path / "backup") == str(tmp_path / "backup")
    workers = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    _tf_config(monkeypatch, workers, "worker", 0)
    assert gar_tf.is_chief()
    assert gar_tf.worker_path("run/ckpt/m.weights.h5") == "run/ckpt/m.weights.h5"
    _tf_config(monkeypatch, workers, "worker", 1)
    assert not gar_tf.is_chief()
    assert gar_tf.worker_path("run/ckpt/m.weights.h5") == "run/ckpt/worker_1/m.weights.h5"
    assert gar_tf.worker_path("run/backup/") == "run/worker_1/backup"
    with_chief = {"chief": ["127.0.0.1:3"], **workers}
    _tf_config(monkeypatch, with_chief, "worker", 0)
    assert not gar_tf.is_chief() and gar_tf.worker_path("run/backup") == "run/worker_0/backup"
    _tf_config(monkeypatch, with_chief, "chief", 0)
    assert gar_tf.is_chief()
