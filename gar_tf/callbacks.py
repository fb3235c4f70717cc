"""Keras callbacks that log what the policies learn."""

from __future__ import annotations

import abc
from pathlib import Path

import keras
import tensorflow as tf

from gar_tf.policies import AugmentationPolicy, SplitSampler


class _PeriodicLogger(keras.callbacks.Callback, abc.ABC):
    """Records at the start of training and every ``every`` steps into :attr:`history`
    and, with ``log_dir``, into TensorBoard under ``log_dir/<subdir>``."""

    def __init__(self, every: int, log_dir: str | None, subdir: str) -> None:
        super().__init__()
        if every <= 0:
            raise ValueError(f"every must be a positive number of steps, got {every}.")
        self.every = int(every)
        self.history: list[dict] = []
        self._writer = (
            tf.summary.create_file_writer(str(Path(log_dir) / subdir)) if log_dir else None
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
        """Records now (also every ``every`` steps and at the start of training)."""
        entry = {"step": self._step, **self._entry()}
        self.history.append(entry)
        if self._writer is not None:
            with self._writer.as_default(step=self._step):
                self._write(entry)
            self._writer.flush()

    @abc.abstractmethod
    def _entry(self) -> dict:
        """What to record now."""

    @abc.abstractmethod
    def _write(self, entry: dict) -> None:
        """Writes ``entry`` as TensorBoard summaries (the default writer is set)."""


class SplitSamplerLogger(_PeriodicLogger):
    """Every ``every`` steps, records the sampler's split probabilities and the mean
    GAR reward per split since the last record.

    The records are kept in :attr:`history` (``{"step", "probabilities",
    "mean_rewards"}`` dicts, for :func:`gar_tf.plots.plot_split_probabilities`)
    and, with ``log_dir``, written to TensorBoard as ``split_probability/<name>``
    and ``split_reward/<name>``.
    """

    def __init__(self, sampler: SplitSampler, every: int = 10, log_dir: str | None = None):
        self.sampler = sampler
        super().__init__(every, log_dir, "split_sampler")

    def _entry(self) -> dict:
        return {
            "probabilities": self.sampler.probabilities(),
            "mean_rewards": self.sampler.take_mean_rewards(),
        }

    def _write(self, entry: dict) -> None:
        for name, p in entry["probabilities"].items():
            tf.summary.scalar(f"split_probability/{name}", p)
        for name, r in entry["mean_rewards"].items():
            if r == r:  # not NaN: the split was drawn in this window
                tf.summary.scalar(f"split_reward/{name}", r)


class AugmentationPolicyLogger(_PeriodicLogger):
    """Every ``every`` steps, logs what an :class:`AugmentationPolicy` has learned.

    TensorBoard (``log_dir/augmentation_policy``): ``op_probability/<op>``,
    ``mean_level/<op>``, ``mean_magnitude/<op>``, ``ops_per_image/<n>`` scalars, a
    histogram of the op probabilities and, given ``images`` (uint8 ``[n, H, W, C]``), a
    grid of them augmented by the current policy. :attr:`history` keeps each record's
    :meth:`AugmentationPolicy.summary`.
    """

    def __init__(
        self,
        policy: AugmentationPolicy,
        every: int = 50,
        log_dir: str | None = None,
        images=None,
    ):
        self.policy = policy
        self.images = None if images is None else tf.convert_to_tensor(images)
        super().__init__(every, log_dir, "augmentation_policy")

    def _entry(self) -> dict:
        return self.policy.summary()

    def _write(self, entry: dict) -> None:
        for name, op in entry["ops"].items():
            tf.summary.scalar(f"op_probability/{name}", op["probability"])
            tf.summary.scalar(f"mean_level/{name}", op["mean_level"])
            tf.summary.scalar(f"mean_magnitude/{name}", op["mean_magnitude"])
        for n, p in entry["ops_per_image"].items():
            tf.summary.scalar(f"ops_per_image/{n}", p)
        tf.summary.histogram(
            "op_probabilities", [op["probability"] for op in entry["ops"].values()]
        )
        if self.images is not None:
            augmented = self.policy.augment(self.images, tf.constant([self._step, 0], tf.int64))
            tf.summary.image("augmented", _grid(augmented), max_outputs=1)


def _grid(images: tf.Tensor, columns: int = 8) -> tf.Tensor:
    """A batch ``[n, H, W, C]`` tiled into one image ``[1, rows*H, columns*W, C]``."""
    n, h, w, c = images.shape
    rows = -(-n // columns)
    padded = tf.concat([images, tf.zeros([rows * columns - n, h, w, c], images.dtype)], 0)
    tiles = tf.reshape(padded, [rows, columns, h, w, c])
    return tf.reshape(tf.transpose(tiles, [0, 2, 1, 3, 4]), [1, rows * h, columns * w, c])
