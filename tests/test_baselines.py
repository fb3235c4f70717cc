"""Fixed baselines: the actions they draw and that they run in tf.data."""

import numpy as np
import tensorflow as tf

from gar_tf import augment
from gar_tf.augment import baselines

SEED = tf.constant([4, 2], tf.int64)


def _chi2(values, k):
    counts = np.bincount(values.ravel(), minlength=k)
    expected = values.size / k
    return float(((counts - expected) ** 2 / expected).sum())


def test_trivial_augment_wide_is_the_14_ops_with_wide_ranges():
    assert baselines.TRIVIAL_WIDE.names == augment.space_ops("standard")
    rotate = {op.name: op for op in baselines.TRIVIAL_WIDE.ops}["Rotate"]
    assert rotate.magnitude.values(31)[-1] == 135.0  # standard RandAugment: 30 degrees


def test_rand_augment_draws_n_uniform_ops_at_level_m():
    ops, levels = baselines.rand_augment_actions(4000, SEED, num_ops=3, magnitude=7)
    assert ops.shape == (4000, 3) and np.all(levels.numpy() == 7)
    assert _chi2(ops.numpy(), 14) < 34.5  # 13 degrees of freedom, p = 0.001


def test_trivial_augment_draws_one_op_and_a_uniform_level():
    ops, levels = baselines.trivial_augment_actions(6200, SEED)
    assert ops.shape == levels.shape == (6200, 1)
    assert _chi2(ops.numpy(), 14) < 34.5
    assert _chi2(levels.numpy(), 31) < 59.7  # 30 degrees of freedom, p = 0.001


def test_uniform_augment_keeps_each_op_with_probability_half():
    ops, _ = baselines.uniform_augment_actions(4000, SEED)
    identity = (ops.numpy() == 0).mean()  # dropped slots, plus Identity drawn (1/14)
    assert abs(identity - (0.5 + 0.5 / 14)) < 0.03


def test_baselines_run_in_tf_data_and_are_deterministic():
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3)).astype(np.uint8)
    for fn in (baselines.rand_augment, baselines.trivial_augment_wide, baselines.uniform_augment):
        ds = (
            tf.data.Dataset.from_tensor_slices(images)
            .batch(4)
            .enumerate()
            .map(lambda i, x, fn=fn: fn(x, tf.stack([i, tf.constant(0, tf.int64)])))
        )
        first, again = [np.concatenate(list(ds.as_numpy_iterator())) for _ in range(2)]
        assert first.dtype == np.uint8 and first.shape == images.shape
        np.testing.assert_array_equal(first, again)
        assert not np.array_equal(first, images)


def test_crop_flip_is_a_uniform_crop_of_the_padded_image_maybe_mirrored():
    rng = np.random.default_rng(0)
    images = rng.integers(1, 256, size=(400, 6, 5, 1)).astype(np.float32)
    out = baselines.crop_flip(images, SEED, pad=2).numpy()
    padded = np.pad(images, [(0, 0), (2, 2), (2, 2), (0, 0)])
    seen = []
    for image, result in zip(padded, out):
        matches = [
            (dy, dx, flip)
            for dy in range(5)
            for dx in range(5)
            for flip in (False, True)
            if np.array_equal(
                result, (lambda c: c[:, ::-1] if flip else c)(image[dy : dy + 6, dx : dx + 5])
            )
        ]
        assert len(matches) == 1
        seen.append(matches[0])
    dy, dx, flip = map(np.array, zip(*seen))
    assert _chi2(dy, 5) < 18.5 and _chi2(dx, 5) < 18.5  # 4 degrees of freedom, p = 0.001
    assert 0.4 < flip.mean() < 0.6


def test_crop_without_flip_never_mirrors_and_crops_as_with_it():
    rng = np.random.default_rng(1)
    images = rng.integers(1, 256, size=(200, 6, 5, 1)).astype(np.float32)
    flipped = baselines.crop_flip(images, SEED, pad=2).numpy()
    cropped = baselines.crop_flip(images, SEED, pad=2, flip=False).numpy()
    padded = np.pad(images, [(0, 0), (2, 2), (2, 2), (0, 0)])
    for image, crop, maybe_mirrored in zip(padded, cropped, flipped):
        offsets = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if np.array_equal(crop, image[dy : dy + 6, dx : dx + 5])
        ]
        assert len(offsets) == 1  # a crop, never mirrored
        assert np.array_equal(maybe_mirrored, crop) or np.array_equal(
            maybe_mirrored, crop[:, ::-1]
        )  # same offsets as with the flip
