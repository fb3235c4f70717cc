"""The op type, and turning a Keras or keras-cv layer's per-example hook into an op.

Keras 3 image layers expose ``layer.transform_images(images, transformation,
training=True)`` and keras-cv layers ``layer.augment_images(images,
transformations)``: both apply a batch of per-example parameters chosen by the
caller. ``layer_op`` wraps either hook as an op ``(images, magnitude, noise) ->
images`` whose ``transformation`` is built from the per-image magnitude.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

OpFn = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]
"""An op: ``(images, magnitude, noise) -> images`` on float32 ``[n, H, W, C]`` in [0, 255].

``magnitude`` ``[n]`` is each image's signed strength (``table.Magnitude``) and
``noise`` ``[n, 2]`` is uniform in [0, 1), per-image randomness for the op's own
use (Cutout's centre). Ops must accept an empty batch (n = 0): ``apply_ops`` runs
every op of the space, also on empty groups.
"""

TransformationFn = Callable[[tf.Tensor, tf.Tensor], Any]


def layer_op(layer: keras.layers.Layer, transformation: TransformationFn | None = None) -> OpFn:
    """An op calling ``layer``'s per-example hook with ``transformation(magnitude, images)``.

    Args:
        layer: a Keras layer with ``transform_images`` or a keras-cv layer with
            ``augment_images``, built for pixel values in [0, 255] (e.g.
            ``value_range=(0, 255)``) and float32 compute.
        transformation: maps the per-image magnitudes ``[n]`` and the images
            ``[n, H, W, C]`` to the hook's transformation (e.g. a dict of
            ``[n, 1, 1, 1]`` tensors); ``None`` passes ``None`` (parameter-free hooks).

    Example, Keras' colour degeneration as an op (magnitude 0 = identity)::

        layer = keras.layers.RandomColorDegeneration(0.5, value_range=(0, 255))
        fn = layer_op(layer, lambda m, images: {"factor": m[:, None, None, None]})
    """
    is_keras = hasattr(layer, "transform_images")

    def call_hook(images: tf.Tensor, magnitude: tf.Tensor) -> tf.Tensor:
        params = None if transformation is None else transformation(magnitude, images)
        if is_keras:
            return tf.cast(layer.transform_images(images, params, training=True), tf.float32)
        return tf.cast(layer.augment_images(images, params), tf.float32)

    def op(images: tf.Tensor, magnitude: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
        # Some hooks reject empty batches (e.g. a min over no pixels): skip empty groups.
        return tf.cond(
            tf.shape(images)[0] > 0, lambda: call_hook(images, magnitude), lambda: images
        )

    return op
