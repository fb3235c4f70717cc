"""Runs one GAR fit under a tf.distribute strategy and prints the results as JSON.

Started as a subprocess by tests/test_distribute.py, because the logical CPU devices
and the multi-worker cluster must be set before TensorFlow starts:

    python tests/distributed_run.py one|mirrored|multiworker [steps] [held_out]

``one``: no strategy, global batch 128. ``mirrored``: MirroredStrategy on 2 logical
CPUs, 2 x 64. ``multiworker``: MultiWorkerMirroredStrategy, this process is one
worker of the cluster in ``TF_CONFIG``. The same data and initial weights in every mode.
``held_out``: ``clean_comparison="held_out"``, each batch paired with one of 2 held-out batches.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import tensorflow as tf

MODE = sys.argv[1]
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
HELD_OUT = sys.argv[3:] == ["held_out"]
BATCH = 128

if MODE == "mirrored":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    STRATEGY = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
elif MODE == "multiworker":
    STRATEGY = tf.distribute.MultiWorkerMirroredStrategy()
else:
    STRATEGY = tf.distribute.get_strategy()

import keras  # noqa: E402

import gar_tf  # noqa: E402

RECORDED: list[tuple[int, list[float], list[int]]] = []


class RecordingSampler(gar_tf.SplitSampler):
    """A SplitSampler that also records, per replica, the rewards it is updated with."""

    def update(self, rewards, actions, active=True):
        def record(replica, r, a, on):
            if bool(on):
                RECORDED.append((int(replica), r.numpy().tolist(), a.numpy().tolist()))
            return 0

        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        tf.py_function(record, [replica, rewards, actions, active], tf.int64)
        super().update(rewards, actions, active)


def main() -> dict:
    rng = np.random.default_rng(0)
    n = BATCH * STEPS
    x = rng.normal(size=(n, 8)).astype(np.float32)
    y = rng.integers(0, 3, n).astype(np.int32)
    ids = rng.integers(0, 3, n).astype(np.int32)
    data = tf.data.Dataset.from_tensor_slices((x, y, np.ones(n, np.float32), {"mix": ids}))
    data = data.batch(BATCH, drop_remainder=True)
    if HELD_OUT:
        held = (rng.normal(size=(2 * BATCH, 8)).astype(np.float32), rng.integers(0, 3, 2 * BATCH))
        held = tf.data.Dataset.from_tensor_slices(held).batch(BATCH, drop_remainder=True)
        data = gar_tf.with_comparison(data, held)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    data = data.with_options(options)
    with STRATEGY.scope():
        keras.utils.set_random_seed(0)
        backbone = keras.Sequential(
            [keras.Input((8,)), keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(3)]
        )
        splits = [tf.data.Dataset.from_tensor_slices((x[:10], y[:10])) for _ in range(3)]
        sampler = RecordingSampler(splits, batch_size=BATCH, seed=0, name="mix")
        model = gar_tf.GARModel(
            backbone, policies=[sampler], clean_comparison="held_out" if HELD_OUT else None
        )
        model.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    if MODE == "multiworker":
        # Keras 3 `fit` cannot reduce its logs under MultiWorkerMirroredStrategy
        # (keras-team/keras#20585), for any model: drive train_step with strategy.run.
        step = tf.function(lambda batch: STRATEGY.run(model.train_step, args=(batch,)))
        for batch in STRATEGY.experimental_distribute_dataset(data):
            step(batch)
    else:
        model.fit(data, epochs=1, verbose=0)
    return {
        "replicas": STRATEGY.num_replicas_in_sync,
        "logits": sampler.logits.numpy().tolist(),
        "policy_steps": int(sampler.policy_optimizer.iterations.numpy()),
        "kernel": backbone.weights[0].numpy().tolist(),
        "recorded": RECORDED,
    }


if __name__ == "__main__":
    print("RESULT " + json.dumps(main()), flush=True)
