"""A short GAR fit with BackupAndRestore, optionally killed by SIGKILL mid-epoch.

Started as a subprocess by tests/test_resume.py:

    python tests/resume_run.py BACKUP_DIR [--kill-at EPOCH BATCH] [--held-out]

``--held-out``: ``clean_comparison="held_out"``, each batch paired with a held-out one.

Prints ``RESULT {json}`` with the final policy, policy optimizer and model state.
"""

from __future__ import annotations

import argparse
import json
import os
import signal

import keras
import numpy as np
import tensorflow as tf

import gar_tf

EPOCHS, STEPS, BATCH = 3, 4, 32


class KillAt(keras.callbacks.Callback):
    """SIGKILLs this process at the start of (epoch, batch): no cleanup, no save."""

    def __init__(self, epoch: int, batch: int) -> None:
        super().__init__()
        self.at, self.epoch = (epoch, batch), 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            os.kill(os.getpid(), signal.SIGKILL)


def main() -> dict:
    p = argparse.ArgumentParser()
    p.add_argument("backup_dir")
    p.add_argument("--kill-at", type=int, nargs=2, default=None)
    p.add_argument("--held-out", action="store_true")
    args = p.parse_args()

    rng = np.random.default_rng(0)
    n = (STEPS + 2) * BATCH
    x = rng.uniform(0, 255, size=(n, 16, 16, 1)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 127.5).astype(np.int32)
    train = tf.data.Dataset.from_tensor_slices((x, y))
    data = train.take(STEPS * BATCH).batch(BATCH)  # same order every epoch
    if args.held_out:  # 2 held-out batches, round-robin
        data = gar_tf.with_comparison(data, train.skip(STEPS * BATCH).batch(BATCH))

    keras.utils.set_random_seed(0)
    backbone = keras.Sequential(
        [
            keras.Input((16, 16, 1)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2),
        ]
    )
    policy = gar_tf.AugmentationPolicy(ops="standard", max_ops=2, seed=0)
    model = gar_tf.GARModel(
        backbone, policies=[policy], clean_comparison="held_out" if args.held_out else None
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.build((None, 16, 16, 1))
    callbacks = [keras.callbacks.BackupAndRestore(args.backup_dir)]
    if args.kill_at:
        callbacks.append(KillAt(*args.kill_at))
    model.fit(data, epochs=EPOCHS, callbacks=callbacks, verbose=0)
    return {
        "policy": [w.numpy().tolist() for w in policy.policy_weights],
        "policy_optimizer": [v.numpy().tolist() for v in policy.policy_optimizer.variables],
        "model": [w.numpy().tolist() for w in backbone.weights],
        "steps": int(model.optimizer.iterations.numpy()),
    }


if __name__ == "__main__":
    print("RESULT " + json.dumps(main()), flush=True)
