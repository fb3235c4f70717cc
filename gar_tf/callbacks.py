"""Keras callbacks that log what the policies learn."""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from gar_tf.policies import SplitSampler


class SplitSamplerLogger(keras.callbacks.Callback):
    """Every ``every`` steps, records the sampler's split probabilities and the mean
    GAR reward per split since the last record.

    The records are kept in :attr:`history` (``{"step", "probabilities",
    "mean_rewards"}`` dicts, for :func:`gar_tf.plots.plot_split_probabilities`)
    and, with ``log_dir``, written to TensorBoard as ``split_probability/<name>``
    and ``split_reward/<name>``.
    """

    def __init__(self, sampler: SplitSampler, every: int = 10, log_dir: str | None = None):
        super().__init__()
        if every <= 0:
            raise ValueError(f"every must be a positive number of steps, got {every}.")
        self.sampler = sampler
        self.every = int(every)
        self.history: list[dict] = []
        self._writer = (
            tf.summary.create_file_writer(str(Path(log_dir) / "split_sampler")) if log_dir else None
        )
        self._step = 0

    def on_train_begin(self, logs=None) -> None:
        if not self.history:
            self.record()

    def on_train_batch_end(self, batch, logs=None) -> None:
        self._step += 1
        if self._step % self.every == 0:
            self.record()

    def record(self) -> None:
        """Records now (also called every ``every`` steps and at the start of training)."""
        entry = {
            "step": self._step,
            "probabilities": self.sampler.probabilities(),
            "mean_rewards": self.sampler.take_mean_rewards(),
        }
        self.history.append(entry)
        if self._writer is not None:
            with self._writer.as_default(step=self._step):
                for name, p in entry["probabilities"].items():
                    tf.summary.scalar(f"split_probability/{name}", p)
                for name, r in entry["mean_rewards"].items():
                    if r == r:  # not NaN: the split was drawn in this window
                        tf.summary.scalar(f"split_reward/{name}", r)
            self._writer.flush()
