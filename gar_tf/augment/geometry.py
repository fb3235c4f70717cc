"""Geometric ops with PIL's semantics: affine maps, flips and Cutout (docs/augmentation.md).

PIL's ``Image.transform(size, AFFINE, (a, b, c, d, e, f), NEAREST)`` fills output
pixel (x, y) from input pixel ⌊(a (x+½) + b (y+½) + c, d (x+½) + e (y+½) + f)⌋,
black outside the image: the matrix maps output to input about the top-left
corner. All ops are ``OpFn``s (see ``hooks``) with per-image magnitudes.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

Coefficient = tf.Tensor | float


def _affine(images: tf.Tensor, *matrix: Coefficient) -> tf.Tensor:
    """PIL's nearest-neighbour AFFINE transform with black fill, one ``(a, …, f)`` per image.

    ``keras.ops.image.affine_transform`` samples round(M q + t') at integer pixel
    indices q; t' = t + M (½, ½) − ½ turns that into PIL's ⌊M (q + ½) + t⌋.
    """
    ones = tf.ones([tf.shape(images)[0]])
    a, b, c, d, e, f = (coefficient * ones for coefficient in matrix)
    c = c + (a + b - 1.0) / 2.0
    f = f + (d + e - 1.0) / 2.0
    transform = tf.stack([a, b, c, d, e, f, 0.0 * ones, 0.0 * ones], axis=1)
    return keras.ops.image.affine_transform(
        images, transform, interpolation="nearest", fill_mode="constant", fill_value=0
    )


def rotate(images: tf.Tensor, degrees: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
    """Counter-clockwise rotation by ``degrees`` about the image centre (Image.rotate)."""
    theta = -degrees * (math.pi / 180.0)
    cos, sin = tf.cos(theta), tf.sin(theta)
    cx = tf.cast(tf.shape(images)[2], tf.float32) / 2.0
    cy = tf.cast(tf.shape(images)[1], tf.float32) / 2.0
    return _affine(images, cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy)


def shear_x(images: tf.Tensor, shear: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
    """AFFINE (1, s, 0, 0, 1, 0): output (x, y) ← input (x + s y, y)."""
    return _affine(images, 1.0, shear, 0.0, 0.0, 1.0, 0.0)


def shear_y(images: tf.Tensor, shear: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
    """AFFINE (1, 0, 0, s, 1, 0): output (x, y) ← input (x, y + s x)."""
    return _affine(images, 1.0, 0.0, 0.0, shear, 1.0, 0.0)


def translate_x(images: tf.Tensor, pixels: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
    """AFFINE (1, 0, t, 0, 1, 0): output (x, y) ← input (x + t, y), i.e. a shift left by t."""
    return _affine(images, 1.0, 0.0, pixels, 0.0, 1.0, 0.0)


def translate_y(images: tf.Tensor, pixels: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
    """AFFINE (1, 0, 0, 0, 1, t): output (x, y) ← input (x, y + t), i.e. a shift up by t."""
    return _affine(images, 1.0, 0.0, 0.0, 0.0, 1.0, pixels)


def flip_lr(images: tf.Tensor, magnitude: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
    """Mirror left-right (ImageOps.mirror)."""
    return tf.reverse(images, axis=[2])


def flip_ud(images: tf.Tensor, magnitude: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
    """Mirror top-bottom (ImageOps.flip)."""
    return tf.reverse(images, axis=[1])


def _span(size: tf.Tensor, side: tf.Tensor, centre: tf.Tensor) -> tf.Tensor:
    """``[n, size]`` mask of [x0, x0 + side), x0 = ⌊max(0, centre·size − side/2)⌋."""
    size_f = tf.cast(size, tf.float32)
    start = tf.floor(tf.maximum(0.0, centre * size_f - side / 2.0))
    positions = tf.range(size_f)
    return (positions >= start[:, None]) & (positions < (start + side)[:, None])


def cutout(images: tf.Tensor, side: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
    """Blacks out a ``side``-pixel square, centre uniform over the image, clipped at the border.

    ``noise[:, 0]`` and ``noise[:, 1]`` place the centre at (u W, v H), as the reference code
    does (docs/augmentation.md).
    """
    rows = _span(tf.shape(images)[1], side, noise[:, 1])
    cols = _span(tf.shape(images)[2], side, noise[:, 0])
    square = rows[:, :, None, None] & cols[:, None, :, None]
    return tf.where(square, 0.0, images)
