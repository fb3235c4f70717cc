"""Runs one GAR ``fit`` under a tf.distribute strategy and prints the results as JSON.

Started as a subprocess by tests/test_distribute.py, because the logical CPU devices
and the multi-worker cluster must be set before TensorFlow starts:

    python tests/distributed_run.py MODE [STEPS] [POLICY] [DIR]

MODE: one|mirrored|multiworker; POLICY: split (default)|split-evidence|split-held-out|
split-other-splits|augment|augment-evidence.

``one``: no strategy, global batch 128. ``mirrored``: MirroredStrategy on 2 logical
CPUs, 2 x 64. ``multiworker``: MultiWorkerMirroredStrategy, this process is one
worker of the cluster in ``TF_CONFIG`` (``model.fit`` as in the other modes). ``split``
trains a SplitSampler (actions from the pipeline; ``split-evidence``: its evidence rule, with
``confidence=0`` and ``min_steps=1`` so that its logits move within a few steps;
``split-held-out``: with ``clean_comparison="held_out"``, each batch paired with one of 2
held-out batches; ``split-other-splits``: with ``clean_comparison="other_splits"``),
``augment`` an AugmentationPolicy
(actions drawn in the step, one stream per replica; ``augment-evidence``: one op per image,
``op_rule="evidence"`` with ``confidence=0``, ``min_steps=1`` and a horizon that forgets
nothing). With
``DIR``, ``fit`` runs 2 epochs with ``BackupAndRestore`` and ``ModelCheckpoint`` on every
worker (own paths, ``gar_tf.worker_path``) and ``TensorBoard`` on the chief. The same data
and initial weights in every mode. ``GAR_TF_TEST_PATHS`` (default ``auto``) is GARModel's ``paths``.
"""

from __future__ import annotations

import functools
import json
import os
import sys

import numpy as np
import tensorflow as tf

MODE = sys.argv[1]
STEPS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
POLICY = sys.argv[3] if len(sys.argv) > 3 else "split"
DIR = sys.argv[4] if len(sys.argv) > 4 else None
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


def _sharded(data: tf.data.Dataset, held_out: tf.data.Dataset | None = None) -> tf.data.Dataset:
    """Batches of BATCH (each paired with a held-out batch, if given), split between workers by
    example (replica r: the r-th slice)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    data = data.batch(BATCH, drop_remainder=True)
    if held_out is not None:
        data = gar_tf.with_comparison(data, held_out.batch(BATCH, drop_remainder=True))
    return data.with_options(options)


def split_case(rng: np.random.Generator, rule: str = "reinforce", comparison: str | None = None):
    """(data, backbone, policy, GARModel options): a SplitSampler over 3 splits."""
    n = BATCH * STEPS
    x = rng.normal(size=(n, 8)).astype(np.float32)
    y = rng.integers(0, 3, n).astype(np.int32)
    ids = rng.integers(0, 3, n).astype(np.int32)
    data = tf.data.Dataset.from_tensor_slices((x, y, np.ones(n, np.float32), {"mix": ids}))
    backbone = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(3)]
    )
    splits = [tf.data.Dataset.from_tensor_slices((x[:10], y[:10])) for _ in range(3)]
    options = {"confidence": 0.0, "min_steps": 1} if rule == "evidence" else {}
    sampler = RecordingSampler(splits, batch_size=BATCH, seed=0, name="mix", rule=rule, **options)
    if comparison != "held_out":
        return _sharded(data), backbone, sampler, {"clean_comparison": comparison}
    held = (rng.normal(size=(2 * BATCH, 8)).astype(np.float32), rng.integers(0, 3, 2 * BATCH))
    held = tf.data.Dataset.from_tensor_slices(held)
    return _sharded(data, held), backbone, sampler, {"clean_comparison": "held_out"}


def augment_case(rng: np.random.Generator, op_rule: str = "reinforce"):
    """(data, backbone, policy, GARModel options): an AugmentationPolicy on 8x8 images."""
    n = BATCH * STEPS
    x = rng.uniform(0, 255, size=(n, 8, 8, 1)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 127.5).astype(np.int32)
    backbone = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2),
        ]
    )
    ops = ["Identity", "Invert", "FlipLR", "Rotate"]
    if op_rule == "evidence":
        options = {"confidence": 0.0, "horizon": 1e9, "min_steps": 1}
        policy = gar_tf.AugmentationPolicy(
            ops=ops, max_ops=1, op_rule=op_rule, evidence_options=options, seed=0
        )
    else:
        policy = gar_tf.AugmentationPolicy(ops=ops, seed=0)
    return _sharded(tf.data.Dataset.from_tensor_slices((x, y))), backbone, policy, {}


def callbacks(directory: str) -> list[keras.callbacks.Callback]:
    """Backup and checkpoint on every worker, each in its own files; TensorBoard on the chief."""
    found = [
        keras.callbacks.BackupAndRestore(gar_tf.worker_path(os.path.join(directory, "backup"))),
        keras.callbacks.ModelCheckpoint(
            gar_tf.worker_path(os.path.join(directory, "ckpt", "model.weights.h5")),
            save_weights_only=True,
        ),
    ]
    if gar_tf.is_chief():
        found.append(gar_tf.callbacks.TensorBoard(os.path.join(directory, "tensorboard")))
    return found


def main() -> dict:
    rng = np.random.default_rng(0)
    case = {
        "split": split_case,
        "split-evidence": functools.partial(split_case, rule="evidence"),
        "split-held-out": functools.partial(split_case, comparison="held_out"),
        "split-other-splits": functools.partial(split_case, comparison="other_splits"),
        "augment": augment_case,
        "augment-evidence": functools.partial(augment_case, op_rule="evidence"),
    }[POLICY]
    with STRATEGY.scope():
        keras.utils.set_random_seed(0)
        data, backbone, policy, options = case(rng)
        paths = os.environ.get("GAR_TF_TEST_PATHS", "auto")
        model = gar_tf.GARModel(backbone, policies=[policy], paths=paths, **options)
        model.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
    epochs = 2 if DIR else 1
    history = model.fit(data, epochs=epochs, verbose=0, callbacks=callbacks(DIR) if DIR else None)
    return {
        "replicas": STRATEGY.num_replicas_in_sync,
        "chief": gar_tf.is_chief(),
        "policy": [w.numpy().tolist() for w in policy.policy_weights],
        "logits": policy.policy_weights[0].numpy().tolist(),
        "policy_steps": int(policy.policy_optimizer.iterations.numpy()),
        "model": [w.numpy().tolist() for w in backbone.weights],
        "kernel": backbone.weights[0].numpy().tolist(),
        "statistics": [v.numpy().tolist() for v in getattr(policy, "statistics", [])],
        "op_statistics": [v.numpy().tolist() for v in getattr(policy, "op_statistics", [])],
        "op_logits": policy.op_logits.numpy().tolist() if POLICY.startswith("augment") else None,
        "history": history.history,
        "recorded": RECORDED,
    }


if __name__ == "__main__":
    print("RESULT " + json.dumps(main()), flush=True)
