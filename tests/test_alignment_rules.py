"""Every built-in rule against brute-force per-example gradients (no BatchNorm)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import brute_force_alignment, random_direction, relative_error

import gar_tf

L = keras.layers
LOSS = keras.losses.sparse_categorical_crossentropy
B = 6

LAYER_CASES = {
    "dense": ((5,), lambda: L.Dense(4, activation="tanh")),
    "dense_no_bias_relu": ((5,), lambda: L.Dense(4, activation="relu", use_bias=False)),
    "dense_rank3": ((3, 5), lambda: L.Dense(4, activation="sigmoid")),
    "einsum_dense": (
        (3, 5),
        lambda: L.EinsumDense("abc,cd->abd", (3, 4), bias_axes="d", activation="tanh"),
    ),
    "einsum_dense_2d": ((5,), lambda: L.EinsumDense("ab,bc->ac", 4)),
    "conv1d_same_stride2": (
        (9, 3),
        lambda: L.Conv1D(4, 3, strides=2, padding="same", activation="relu"),
    ),
    "conv1d_causal_dilated": ((9, 3), lambda: L.Conv1D(4, 3, padding="causal", dilation_rate=2)),
    "conv1d_groups": ((9, 4), lambda: L.Conv1D(4, 3, groups=2)),
    "conv2d_valid": ((7, 7, 3), lambda: L.Conv2D(4, 3, activation="elu")),
    "conv2d_same_stride2": ((7, 7, 3), lambda: L.Conv2D(4, 3, strides=2, padding="same")),
    "conv2d_valid_stride2_nobias": ((8, 8, 3), lambda: L.Conv2D(4, 3, strides=2, use_bias=False)),
    "conv2d_dilated_same": (
        (8, 8, 3),
        lambda: L.Conv2D(4, 3, dilation_rate=2, padding="same", activation="tanh"),
    ),
    "conv2d_groups": ((6, 6, 4), lambda: L.Conv2D(6, 3, groups=2, padding="same")),
    "conv3d": ((5, 5, 5, 2), lambda: L.Conv3D(3, 2, strides=(1, 2, 1), padding="same")),
    "conv1d_transpose": ((5, 3), lambda: L.Conv1DTranspose(4, 3, strides=2, padding="same")),
    "conv2d_transpose_valid": (
        (4, 4, 3),
        lambda: L.Conv2DTranspose(4, 3, strides=2, activation="relu"),
    ),
    "conv2d_transpose_same": (
        (4, 4, 3),
        lambda: L.Conv2DTranspose(4, 3, strides=2, padding="same", use_bias=False),
    ),
    "conv3d_transpose": ((3, 3, 3, 2), lambda: L.Conv3DTranspose(2, 2, strides=2)),
    "depthwise1d": (
        (9, 3),
        lambda: L.DepthwiseConv1D(3, depth_multiplier=2, strides=2, padding="same"),
    ),
    "depthwise2d": ((7, 7, 3), lambda: L.DepthwiseConv2D(3, depth_multiplier=2, activation="relu")),
    "depthwise2d_dilated": (
        (8, 8, 3),
        lambda: L.DepthwiseConv2D(3, dilation_rate=2, padding="same", use_bias=False),
    ),
    "separable1d": ((9, 3), lambda: L.SeparableConv1D(4, 3, depth_multiplier=2, padding="same")),
    "separable2d": ((7, 7, 3), lambda: L.SeparableConv2D(4, 3, strides=2, activation="tanh")),
    "separable2d_dilated": (
        (8, 8, 3),
        lambda: L.SeparableConv2D(4, 3, dilation_rate=2, padding="same"),
    ),
}


def _model(input_shape, layer):
    inputs = keras.Input(input_shape)
    h = layer(inputs)
    outputs = L.Dense(3, activation="softmax")(L.Flatten()(h))
    return keras.Model(inputs, outputs)


def _check(model, x, y, sample_weight=None, **kwargs):
    direction = random_direction(model)
    r = gar_tf.per_example_alignment(model, LOSS, x, y, direction, sample_weight, **kwargs)
    assert r.shape == (len(y),) and r.dtype == tf.float32
    expected = brute_force_alignment(model, LOSS, x, y, direction, sample_weight)
    assert relative_error(r, expected) <= 1e-5
    return r


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_rule_matches_brute_force(case):
    input_shape, make_layer = LAYER_CASES[case]
    layer = make_layer()
    model = _model(input_shape, layer)
    x = np.random.default_rng(0).normal(size=(B, *input_shape)).astype(np.float32)
    y = np.arange(B) % 3
    engine = gar_tf.AlignmentEngine(model)
    assert [u.kind for u in engine.plan.units] == ["rule", "rule"]
    _check(model, x, y)


def test_embedding_rule_and_sample_weights():
    inputs = keras.Input((4,), dtype="int32")
    h = L.Embedding(10, 3)(inputs)
    outputs = L.Dense(3, activation="softmax")(L.Flatten()(h))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).integers(0, 10, size=(B, 4)).astype(np.int32)
    x[0, :] = x[1, :]  # repeated ids within and across examples
    y = np.arange(B) % 3
    weights = np.linspace(0.5, 2.0, B).astype(np.float32)
    _check(model, x, y, sample_weight=weights)


def test_keras_loss_instance_and_graph_mode():
    model = _model((5,), L.Dense(4, activation="relu"))
    x = np.random.default_rng(0).normal(size=(B, 5)).astype(np.float32)
    y = np.arange(B) % 3
    direction = random_direction(model)
    loss = keras.losses.SparseCategoricalCrossentropy()
    graph_fn = tf.function(lambda x, y: gar_tf.per_example_alignment(model, loss, x, y, direction))
    expected = brute_force_alignment(model, LOSS, x, y, direction)
    assert relative_error(graph_fn(x, y), expected) <= 1e-5
