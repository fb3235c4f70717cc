"""Keras callbacks that log what the policies learn."""

from __future__ import annotations

import abc
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import summary as custom_scalar_summary

from gar_tf import plots
from gar_tf.policies import AugmentationPolicy, SplitSampler


class TensorBoard(keras.callbacks.TensorBoard):
    """``keras.callbacks.TensorBoard`` that writes the epoch summaries (``epoch_loss``, ...)
    whatever ``update_freq`` is: Keras' own skips them unless an epoch's last step is a
    multiple of an integer ``update_freq``."""

    def on_epoch_end(self, epoch, logs=None) -> None:
        with tf.summary.record_if(True):
            super().on_epoch_end(epoch, logs)


def _write_layout(title: str, charts: dict[str, str]) -> None:
    """Writes a TensorBoard Custom Scalars layout: one multi-line chart per
    ``{chart title: tag regex}``, so related scalars are compared on one axis."""
    layout = layout_pb2.Layout(
        category=[
            layout_pb2.Category(
                title=title,
                chart=[
                    layout_pb2.Chart(
                        title=chart, multiline=layout_pb2.MultilineChartContent(tag=[regex])
                    )
                    for chart, regex in charts.items()
                ],
            )
        ]
    )
    tf.summary.experimental.write_raw_pb(custom_scalar_summary.pb(layout).SerializeToString(), 0)


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
            with self._writer.as_default(step=self._step), tf.summary.record_if(True):
                if len(self.history) == 1:
                    _write_layout(*self._layout())
                self._write(entry)
            self._writer.flush()

    @abc.abstractmethod
    def _layout(self) -> tuple[str, dict[str, str]]:
        """The Custom Scalars category: (title, {chart title: tag regex})."""

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

    def _layout(self) -> tuple[str, dict[str, str]]:
        return "split sampler", {
            "split probabilities": r"split_probability/.*",
            "mean reward per split": r"split_reward/.*",
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
    ``mean_level/<op>``, ``mean_magnitude/<op>``, ``ops_per_image/<n>`` scalars (and a
    Custom Scalars layout that draws each family in one chart), a histogram and a labelled
    bar-chart image (``op_probabilities``) of the op probabilities and, given ``images``
    (``[n, H, W, C]`` in the policy's value range), the :meth:`examples` image: each
    beside its augmentation, titled with its ops and levels.
    :attr:`history` keeps each record's :meth:`AugmentationPolicy.summary`.
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

    def _layout(self) -> tuple[str, dict[str, str]]:
        return "augmentation policy", {
            "op probabilities": r"op_probability/.*",
            "mean level per op": r"mean_level/.*",
            "ops per image": r"ops_per_image/.*",
        }

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
        tf.summary.image("op_probabilities", plots.op_probability_bars(entry, self._step)[None])
        if self.images is not None:
            tf.summary.image("augmented", self.examples()[None], max_outputs=1)

    def examples(self) -> np.ndarray:
        """``images`` beside their augmentation by the current policy, titled with each
        image's ops and levels (RGB ``uint8``); the draws depend only on the step."""
        sample_seed, apply_seed = tf.unstack(
            tf.random.experimental.stateless_split(tf.constant([self._step, 0], tf.int64), 2)
        )
        actions = self.policy.sample(len(self.images), seed=sample_seed)
        augmented = self.policy.transform(self.images, actions, seed=apply_seed)
        return plots.augmentation_examples(
            self.images, augmented, self.policy.describe(actions), self.policy.value_range
        )
