"""Reference backbones for this library's experiments and examples.

``small_cnn``, ``small_resnet`` and ``wide_resnet`` build them; ``from_name`` builds one
from a short name (``"small_cnn"``, ``"resnet8"``, ``"resnet14_w32"``, ``"wrn28_10"``), as
the trainers' ``--model`` flag takes it.
"""

from __future__ import annotations

import re

import keras

NAMES = (
    "small_cnn, or resnetD / resnetD_wW (D = 6 n + 2, e.g. resnet8, resnet14_w32), "
    "or wrnD_K (wide ResNet, D = 6 n + 4, e.g. wrn28_10)"
)
_RESNET = re.compile(r"resnet([1-9]\d*)(?:_w([1-9]\d*))?")
_WRN = re.compile(r"wrn([1-9]\d*)_([1-9]\d*)")


def small_cnn(
    input_shape: tuple[int, ...] = (28, 28, 1), num_classes: int = 10, name: str = "small_cnn"
) -> keras.Model:
    """Two 3x3 conv layers (16, 32 filters) with max-pooling, then Dense 64 and softmax."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(input_shape),
            layers.Conv2D(16, 3, activation="relu", padding="same"),
            layers.MaxPooling2D(),
            layers.Conv2D(32, 3, activation="relu", padding="same"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name=name,
    )


def small_resnet(
    input_shape: tuple[int, ...] = (28, 28, 1),
    num_classes: int = 10,
    depth: int = 8,
    width: int = 16,
    name: str | None = None,
) -> keras.Model:
    """A CIFAR-style pre-activation ResNet of ``depth = 6 n + 2`` layers, widths
    ``width``, ``2 width``, ``4 width`` (ResNet-8: n = 1; WRN-style: raise ``width``)."""
    if (depth - 2) % 6:
        raise ValueError(f"depth must be 6 n + 2 (8, 14, 20, ...), got {depth}.")
    widths = (width, 2 * width, 4 * width)
    return _preact_resnet(
        input_shape, num_classes, width, widths, (depth - 2) // 6, name or f"resnet{depth}_w{width}"
    )


def wide_resnet(
    input_shape: tuple[int, ...] = (32, 32, 3),
    num_classes: int = 10,
    depth: int = 28,
    widen: int = 10,
    name: str | None = None,
) -> keras.Model:
    """WRN-``depth``-``widen`` (Zagoruyko & Komodakis 2016): a 16-filter 3x3 conv, then
    ``n = (depth - 4) / 6`` pre-activation blocks per stage of widths ``16 k, 32 k, 64 k``
    (k = ``widen``), a 1x1 projection where the width or stride changes; no dropout."""
    if (depth - 4) % 6 or depth < 10:
        raise ValueError(f"depth must be 6 n + 4 (10, 16, 22, 28, ...), got {depth}.")
    widths = (16 * widen, 32 * widen, 64 * widen)
    return _preact_resnet(
        input_shape, num_classes, 16, widths, (depth - 4) // 6, name or f"wrn{depth}_{widen}"
    )


def _preact_resnet(input_shape, num_classes, stem, widths, blocks, name) -> keras.Model:
    """``stem`` 3x3 conv, ``blocks`` pre-activation blocks per stage of ``widths`` (stride 2
    from the second stage on), BN-ReLU, global average pooling and a softmax Dense."""
    layers = keras.layers
    inputs = keras.Input(input_shape)
    h = layers.Conv2D(stem, 3, padding="same", use_bias=False)(inputs)
    for stage, filters in enumerate(widths):
        for block in range(blocks):
            strides = 2 if stage and not block else 1
            pre = layers.ReLU()(layers.BatchNormalization()(h))
            r = layers.Conv2D(filters, 3, strides, padding="same", use_bias=False)(pre)
            r = layers.ReLU()(layers.BatchNormalization()(r))
            r = layers.Conv2D(filters, 3, padding="same", use_bias=False)(r)
            if strides != 1 or h.shape[-1] != filters:
                h = layers.Conv2D(filters, 1, strides, use_bias=False)(pre)
            h = layers.Add()([h, r])
    h = layers.GlobalAveragePooling2D()(layers.ReLU()(layers.BatchNormalization()(h)))
    outputs = layers.Dense(num_classes, activation="softmax")(h)
    return keras.Model(inputs, outputs, name=name)


def from_name(
    name: str, input_shape: tuple[int, ...] = (28, 28, 1), num_classes: int = 10
) -> keras.Model:
    """The backbone called ``name``: ``"small_cnn"`` (``small_cnn``), ``"resnetD"`` /
    ``"resnetD_wW"`` (``small_resnet`` of depth D and width W, default 16), or ``"wrnD_K"``
    (``wide_resnet`` of depth D and widen factor K).

    Raises:
        ValueError: ``name`` is none of these forms, or D is not 6 n + 2 (resnet) or
            6 n + 4 (wrn).
    """
    if name == "small_cnn":
        return small_cnn(input_shape, num_classes)
    wide = _WRN.fullmatch(name)
    if wide is not None:
        depth, widen = int(wide[1]), int(wide[2])
        if (depth - 4) % 6 or depth < 10:
            raise ValueError(
                f"backbone name {name!r}: depth {depth} is not 6 n + 4 (n >= 1); use {NAMES}"
            )
        return wide_resnet(input_shape, num_classes, depth, widen)
    match = _RESNET.fullmatch(name)
    if match is None:
        raise ValueError(f"unknown backbone name {name!r}; use {NAMES}")
    depth, width = int(match[1]), int(match[2] or 16)
    if (depth - 2) % 6:
        raise ValueError(f"backbone name {name!r}: depth {depth} is not 6 n + 2; use {NAMES}")
    return small_resnet(input_shape, num_classes, depth, width)
