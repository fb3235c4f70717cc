"""TensorBoard output of the callbacks: epoch summaries, Custom Scalars layouts, example images."""

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import gar_tf


def _tags(folder: Path) -> dict[str, list[int]]:
    """Tag -> steps written, read back from the event files with plain TensorFlow."""
    tags: dict[str, list[int]] = {}
    for events in sorted(folder.glob("*.tfevents.*")):
        for e in tf.compat.v1.train.summary_iterator(str(events)):
            for v in e.summary.value:
                tags.setdefault(v.tag, []).append(e.step)
    return tags


def _fit(callbacks, steps_per_epoch: int = 5, epochs: int = 2) -> None:
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).normal(size=(8 * steps_per_epoch, 3)).astype(np.float32)
    model.fit(x, np.arange(len(x)) % 2, batch_size=8, epochs=epochs, callbacks=callbacks, verbose=0)


def test_epoch_summaries_are_written_whatever_update_freq_is(tmp_path: Path) -> None:
    # 5 steps per epoch, update_freq=3: neither epoch ends on a multiple of 3.
    _fit([keras.callbacks.TensorBoard(str(tmp_path / "keras"), update_freq=3)])
    assert "epoch_loss" not in _tags(tmp_path / "keras/train")  # what Keras alone does
    _fit([gar_tf.callbacks.TensorBoard(str(tmp_path / "ours"), update_freq=3)])
    tags = _tags(tmp_path / "ours/train")
    assert tags["epoch_loss"] == tags["epoch_accuracy"] == [0, 1]
    assert tags["batch_loss"] == [3, 6, 9]  # batch summaries still every 3 steps


def test_loggers_write_one_multi_line_layout(tmp_path: Path) -> None:
    policy = gar_tf.AugmentationPolicy(ops=["Identity", "Invert", "Rotate"], seed=0)
    logger = gar_tf.callbacks.AugmentationPolicyLogger(policy, every=2, log_dir=str(tmp_path))
    _fit([logger])
    events = sorted((tmp_path / "augmentation_policy").glob("*.tfevents.*"))
    layouts = [
        v.tensor.string_val[0]
        for e in tf.compat.v1.train.summary_iterator(str(events[0]))
        for v in e.summary.value
        if v.metadata.plugin_data.plugin_name == "custom_scalars"
    ]
    assert len(layouts) == 1  # once, at the first record
    assert b"op_probability/.*" in layouts[0] and b"mean_level/.*" in layouts[0]
    bars = gar_tf.plots.op_probability_bars(policy.summary(), step=4)
    assert bars.dtype == np.uint8 and bars.shape[-1] == 3
    assert {"op_probabilities", "op_probability/Rotate"} <= set(
        _tags(tmp_path / "augmentation_policy")
    )


def test_example_image_shows_each_image_with_its_ops_and_levels(tmp_path: Path) -> None:
    policy = gar_tf.AugmentationPolicy(ops=["Identity", "Invert"], num_levels=5, max_ops=1)
    # actions (n - 1, op, level): Invert at level 3, then Identity.
    actions = tf.constant([[0, 1, 3], [0, 0, 2]])
    assert policy.describe(actions) == ["Invert 3", "Identity 2"]
    images = np.random.default_rng(0).integers(0, 256, (2, 6, 6, 1)).astype(np.uint8)
    out = policy.transform(images, actions, seed=tf.constant([1, 2], tf.int64)).numpy()
    np.testing.assert_array_equal(out[0], 255 - images[0])  # Invert, independent of level
    np.testing.assert_array_equal(out[1], images[1])
    assert int(policy.rng_state.numpy()[1]) == 0  # a given seed leaves the stream alone

    logger = gar_tf.callbacks.AugmentationPolicyLogger(policy, images=np.repeat(images, 4, 0))
    picture = logger.examples()
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[-1] == 3
    assert picture.min() < 40 and picture.max() > 215  # images drawn, not a blank canvas
    with pytest.raises(ValueError, match="must describe the same images"):
        gar_tf.plots.augmentation_examples(images, images[:1], ["Invert 3"])
