"""Colour, histogram and filter ops with PIL's 8-bit semantics (docs/augmentation.md).

Each op is an ``OpFn`` (see ``hooks``): float32 images ``[n, H, W, C]`` in [0, 255],
a per-image magnitude ``[n]`` and per-image noise ``[n, 2]``. The ops reproduce
PIL's integer arithmetic, truncations included, so a float image holding whole
numbers gives exactly PIL's result for the same uint8 image.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from gar_tf.augment.hooks import layer_op

_LUMA = (19595, 38470, 7471)  # PIL's "L" conversion weights, in units of 2**-16
_SMOOTH = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / 13.0
_BLUR = np.pad(np.zeros((3, 3), np.float32), 1, constant_values=1.0) / 16.0


def identity(images: tf.Tensor, magnitude: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
    """x ↦ x."""
    return images


def invert(images: tf.Tensor, magnitude: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
    """x ↦ 255 − x (ImageOps.invert)."""
    return 255.0 - images


def _per_image(values: tf.Tensor) -> tf.Tensor:
    """Reshapes per-image values ``[n]`` to broadcast against ``[n, H, W, C]``."""
    return tf.reshape(tf.cast(values, tf.float32), [-1, 1, 1, 1])


_solarization = layer_op(
    keras.layers.Solarization(value_range=(0, 255), dtype="float32"),
    lambda threshold, images: {
        "additions": tf.zeros_like(_per_image(threshold)),
        "thresholds": _per_image(threshold),
    },
)
_posterization = layer_op(
    keras.layers.RandomPosterization(factor=(1, 8), value_range=(0, 255), dtype="float32"),
    lambda bits, images: {"shift_factor": tf.cast(8.0 - bits, tf.uint8)},
)
_auto_contrast = layer_op(keras.layers.AutoContrast(value_range=(0, 255), dtype="float32"))


def solarize(images: tf.Tensor, threshold: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
    """x ↦ 255 − x where x ≥ threshold (ImageOps.solarize); Keras' Solarization hook."""
    return _solarization(images, threshold, noise)


def posterize(images: tf.Tensor, bits: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
    """Keeps the top ``bits`` bits of ⌊x⌋ (ImageOps.posterize); Keras' RandomPosterization hook."""
    return _posterization(images, bits, noise)


def auto_contrast(images: tf.Tensor, magnitude: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
    """Per channel, x ↦ ⌊255 (x − lo) / (hi − lo)⌋ with lo, hi the channel's min and max.

    ImageOps.autocontrast(cutoff=0): Keras' AutoContrast hook (which leaves
    constant channels alone, as PIL does) followed by PIL's truncation.
    """
    return tf.floor(_auto_contrast(images, magnitude, noise))


def _slots(levels: tf.Tensor) -> tf.Tensor:
    """Index of each pixel's (image, channel, level) cell in a flat ``[n, C, 256]`` table."""
    n, channels = tf.shape(levels)[0], tf.shape(levels)[3]
    return (tf.range(n)[:, None, None, None] * channels + tf.range(channels)) * 256 + levels


def _histograms(levels: tf.Tensor) -> tf.Tensor:
    """Counts ``[n, C, 256]`` of the integer levels ``[n, H, W, C]`` per image and channel."""
    bins = tf.shape(levels)[0] * tf.shape(levels)[3] * 256
    counts = tf.math.bincount(tf.reshape(_slots(levels), [-1]), minlength=bins, maxlength=bins)
    return tf.reshape(counts, [tf.shape(levels)[0], tf.shape(levels)[3], 256])


def _lookup(levels: tf.Tensor, tables: tf.Tensor) -> tf.Tensor:
    """Maps each level of ``[n, H, W, C]`` through its image's channel table ``[n, C, 256]``."""
    return tf.gather(tf.reshape(tables, [-1]), _slots(levels))


def equalize(images: tf.Tensor, magnitude: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
    """Per channel, x ↦ ⌊(⌊s/2⌋ + #{pixels < x}) / s⌋, s = ⌊(N − n_last) / 255⌋ (ImageOps.equalize).

    ``n_last`` is the count of the highest occupied level; s = 0 leaves the
    channel unchanged. Plain TF: Keras' Equalization hook pools the histogram over
    the whole batch and uses another formula.
    """
    levels = tf.cast(tf.clip_by_value(images, 0.0, 255.0), tf.int32)
    counts = _histograms(levels)
    occupied = tf.cast(counts > 0, tf.int32)
    highest = 255 - tf.argmax(tf.reverse(occupied, axis=[-1]), axis=-1, output_type=tf.int32)
    last_count = tf.gather(counts, highest, batch_dims=2)
    step = (tf.reduce_sum(counts, axis=-1) - last_count) // 255
    below = tf.cumsum(counts, axis=-1, exclusive=True)
    safe_step = tf.maximum(step, 1)[..., None]
    tables = tf.minimum((safe_step // 2 + below) // safe_step, 255)
    tables = tf.where(step[..., None] > 0, tables, tf.range(256))
    return tf.cast(_lookup(levels, tables), tf.float32)


def _blend(degenerate: tf.Tensor, images: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """⌊clip(d + f (x − d), 0, 255)⌋: Image.blend, the core of every ImageEnhance class."""
    blended = degenerate + _per_image(factor) * (images - degenerate)
    return tf.floor(tf.clip_by_value(blended, 0.0, 255.0))


def _grayscale(images: tf.Tensor) -> tf.Tensor:
    """PIL's "L" image ⌊(19595 R + 38470 G + 7471 B + 2¹⁵) / 2¹⁶⌋ ``[n, H, W, 1]`` (C = 1: kept)."""
    if images.shape[-1] == 1:
        return images
    weighted = tf.tensordot(images, tf.constant(_LUMA, tf.float32), axes=[[3], [0]])
    return tf.floor((weighted[..., None] + 2.0**15) / 2.0**16)


def _kernel_filter(images: tf.Tensor, kernel: np.ndarray) -> tf.Tensor:
    """ImageFilter.Kernel: rounded ``kernel`` correlation, the outer k//2-pixel frame copied."""
    size = kernel.shape[0]
    channels = images.shape[-1]
    weights = tf.constant(np.tile(kernel[:, :, None, None], [1, 1, channels, 1]))
    filtered = tf.floor(tf.nn.depthwise_conv2d(images, weights, [1] * 4, "SAME") + 0.5)
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    rim = size // 2
    rows = (tf.range(height) >= rim) & (tf.range(height) < height - rim)
    cols = (tf.range(width) >= rim) & (tf.range(width) < width - rim)
    inside = rows[:, None, None] & cols[None, :, None]
    return tf.where(inside, tf.clip_by_value(filtered, 0.0, 255.0), images)


def color(images: tf.Tensor, factor: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
    """blend(L(x), x, f) (ImageEnhance.Color); grayscale images are unchanged."""
    return _blend(_grayscale(images), images, factor)


def contrast(images: tf.Tensor, factor: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
    """blend(m, x, f), m the mean of L(x) rounded to an integer (ImageEnhance.Contrast).

    Plain TF: Keras' RandomContrast blends towards each channel's own mean.
    """
    mean = tf.reduce_mean(_grayscale(images), axis=[1, 2, 3], keepdims=True)
    return _blend(tf.floor(mean + 0.5), images, factor)


def brightness(images: tf.Tensor, factor: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
    """blend(0, x, f) = ⌊f x⌋ clipped (ImageEnhance.Brightness); Keras' hook adds a delta."""
    return _blend(tf.zeros_like(images), images, factor)


def sharpness(images: tf.Tensor, factor: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
    """blend(SMOOTH(x), x, f) (ImageEnhance.Sharpness), the 1-pixel border kept.

    Plain TF: Keras' RandomSharpness zero-pads the border and does not round the
    smoothed image.
    """
    return _blend(_kernel_filter(images, _SMOOTH), images, factor)


def blur(images: tf.Tensor, magnitude: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
    """ImageFilter.BLUR: mean of the 16 pixels on the 5×5 ring, the 2-pixel border kept."""
    return _kernel_filter(images, _BLUR)
