"""The engine on whole models: fallback layers, nesting, BatchNorm, cosine, bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import brute_force_alignment, random_direction, relative_error

import gar_tf

L = keras.layers
LOSS = keras.losses.sparse_categorical_crossentropy
B = 6


class ScaledDense(L.Layer):
    """A custom layer with its own weight and a Dense sublayer (no rule: fallback)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.inner = L.Dense(units)

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones")
        self.inner.build(input_shape)

    def call(self, x):
        return tf.tanh(self.inner(x * self.scale))


class WithOwnWeight(keras.Model):
    """A subclassed model whose call reads a weight it owns directly."""

    def __init__(self):
        super().__init__()
        self.hidden = L.Dense(4, activation="relu")
        self.out = L.Dense(3, activation="softmax")

    def build(self, input_shape):
        self.shift = self.add_weight(shape=(4,), initializer="random_normal")
        self.hidden.build(input_shape)
        self.out.build((None, 4))

    def call(self, x, training=None):
        return self.out(self.hidden(x) + self.shift)


def _data(shape, seed=0):
    x = np.random.default_rng(seed).normal(size=(B, *shape)).astype(np.float32)
    return x, np.arange(B) % 3


def _functional(input_shape, *layers):
    inputs = keras.Input(input_shape)
    h = inputs
    for layer in layers:
        h = layer(h)
    return keras.Model(inputs, L.Dense(3, activation="softmax")(L.Flatten()(h)))


def _assert_matches_brute_force(model, x, y):
    direction = random_direction(model)
    r = gar_tf.per_example_alignment(model, LOSS, x, y, direction, exclude=())
    assert relative_error(r, brute_force_alignment(model, LOSS, x, y, direction)) <= 1e-5


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: [L.Dense(4), L.PReLU()], (5,)),
        (lambda: [L.Dense(4), L.LayerNormalization()], (5,)),
        (lambda: [ScaledDense(4)], (5,)),
        (lambda: [L.LSTM(4, return_sequences=True)], (3, 2)),
        (lambda: [L.TimeDistributed(L.Dense(4, activation="relu"))], (3, 2)),
    ],
    ids=["prelu", "layernorm_included", "custom_layer", "lstm", "time_distributed"],
)
def test_fallback_layers_are_exact(make, shape):
    model = _functional(shape, *make())
    kinds = {u.layer.name: u.kind for u in gar_tf.AlignmentEngine(model, exclude=()).plan.units}
    assert "fallback" in kinds.values()
    _assert_matches_brute_force(model, *_data(shape))


def test_subclassed_model_with_own_weight():
    model = WithOwnWeight()
    x, y = _data((5,))
    model(x)
    engine = gar_tf.AlignmentEngine(model)
    assert sorted(u.kind for u in engine.plan.units) == ["fallback", "rule", "rule"]
    _assert_matches_brute_force(model, x, y)


def test_nested_models_and_shared_residual_block():
    inner_in = keras.Input((6, 6, 4))
    conv = L.Conv2D(4, 3, padding="same", activation="relu")
    h = conv(conv(inner_in))  # the same layer called twice
    block = keras.Model(inner_in, L.Add()([inner_in, h]), name="res_block")
    model = keras.Sequential(
        [
            keras.Input((6, 6, 3)),
            L.Conv2D(4, 1),
            block,
            L.GlobalAveragePooling2D(),
            L.Dense(3, activation="softmax"),
        ]
    )
    _assert_matches_brute_force(model, *_data((6, 6, 3)))


def test_strict_mode_names_the_layer():
    model = _functional((5,), L.Dense(4), L.PReLU(name="my_prelu"))
    with pytest.raises(ValueError, match=r"my_prelu \(PReLU\)"):
        gar_tf.AlignmentEngine(model, strict=True)


def test_batchnorm_sum_identity_and_exclusion():
    model = _functional((6, 6, 3), L.Conv2D(4, 3), L.BatchNormalization(), L.ReLU(), L.Conv2D(4, 3))
    x, y = _data((6, 6, 3))
    direction = random_direction(model)
    engine = gar_tf.AlignmentEngine(model)
    covered = {id(v) for v in engine.covered_variables}
    assert not any("batch_normalization" in v.path for v in engine.covered_variables)
    r = gar_tf.per_example_alignment(model, LOSS, x, y, direction)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(LOSS(y, model(x, training=True)))
    grads = tape.gradient(loss, model.trainable_variables)
    expected = sum(
        float(tf.reduce_sum(g * d))
        for v, g, d in zip(model.trainable_variables, grads, direction)
        if id(v) in covered
    )
    assert abs(float(tf.reduce_sum(r)) - expected) <= 1e-5 * abs(expected)


def test_cosine_matches_per_tensor_brute_force():
    model = _functional((6, 6, 2), L.Conv2D(3, 3, strides=2, activation="relu"))
    x, y = _data((6, 6, 2))
    direction = random_direction(model)
    r = gar_tf.per_example_alignment(model, LOSS, x, y, direction, similarity="cosine")
    expected = []
    for i in range(B):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(LOSS(y[i : i + 1], model(x[i : i + 1], training=True)))
        grads = tape.gradient(loss, model.trainable_variables)
        expected.append(
            sum(
                float(tf.reduce_sum(g * d) / (tf.norm(g) * tf.norm(d)))
                for g, d in zip(grads, direction)
            )
        )
    assert relative_error(r, expected) <= 1e-5


def test_custom_rule_registration():
    class Scaled(L.Layer):
        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], 4), name="kernel")

        def call(self, x):
            return 2.0 * tf.matmul(x, self.kernel)

    @gar_tf.register_rule(Scaled, weights=("kernel",), activation=None)
    def _scaled(layer, inputs, direction, weights):
        return {"kernel": 2.0 * tf.matmul(inputs, direction["kernel"])}

    model = _functional((5,), Scaled())
    assert [u.kind for u in gar_tf.AlignmentEngine(model).plan.units] == ["rule", "rule"]
    _assert_matches_brute_force(model, *_data((5,)))


def test_model_is_unchanged_after_recording():
    dense = L.Dense(4, activation="relu")
    model = _functional((5,), dense)
    x, y = _data((5,))
    before = model(x).numpy()
    gar_tf.per_example_alignment(model, LOSS, x, y, random_direction(model))
    assert "call" not in dense.__dict__ and dense.activation is keras.activations.relu
    np.testing.assert_array_equal(model(x).numpy(), before)


class TestBadInput:
    def setup_method(self):
        self.model = _functional((5,), L.Dense(4))
        self.x, self.y = _data((5,))
        self.direction = random_direction(self.model)

    def test_direction_wrong_length(self):
        with pytest.raises(ValueError, match="direction has 3 tensors but the model has 4"):
            gar_tf.per_example_alignment(self.model, LOSS, self.x, self.y, self.direction[:3])

    def test_direction_wrong_shape(self):
        bad = list(self.direction)
        bad[0] = tf.zeros((4, 5))
        with pytest.raises(ValueError, match=r"has shape \(4, 5\), expected \(5, 4\)"):
            gar_tf.per_example_alignment(self.model, LOSS, self.x, self.y, bad)

    def test_scalar_loss(self):
        def scalar(y, p):
            return tf.reduce_mean(LOSS(y, p))

        with pytest.raises(ValueError, match="returned a scalar"):
            gar_tf.per_example_alignment(self.model, scalar, self.x, self.y, self.direction)

    def test_nan_loss(self):
        x = self.x.copy()
        x[2, 0] = np.nan
        with pytest.raises(ValueError, match="not finite"):
            gar_tf.per_example_alignment(self.model, LOSS, x, self.y, self.direction)

    def test_unbatched_input(self):
        with pytest.raises(ValueError, match="batch"):
            gar_tf.per_example_alignment(self.model, LOSS, self.x[0], self.y[:1], self.direction)

    def test_all_none_direction(self):
        with pytest.raises(ValueError, match="No covered weight"):
            gar_tf.per_example_alignment(self.model, LOSS, self.x, self.y, [None] * 4)


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: [L.LSTM(3, return_sequences=True)], (3, 2)),
        (lambda: [L.GRU(3)], (3, 2)),
        (lambda: [L.Bidirectional(L.SimpleRNN(2))], (3, 2)),
        (lambda: [L.Dense(4), L.PReLU()], (5,)),
    ],
    ids=["lstm", "gru", "bidirectional", "prelu"],
)
def test_fallback_is_exact_inside_tf_function(make, shape):
    model = _functional(shape, *make())
    x, y = _data(shape)
    direction = random_direction(model)
    graph = tf.function(lambda x, y: gar_tf.per_example_alignment(model, LOSS, x, y, direction))
    expected = brute_force_alignment(model, LOSS, x, y, direction)
    assert relative_error(graph(x, y), expected) <= 1e-5


def test_layers_never_recorded_are_reported():
    class Branchy(keras.Model):
        def __init__(self):
            super().__init__()
            self.used = L.Dense(3, activation="softmax")
            self.unused = L.Dense(3)

        def build(self, input_shape):
            self.used.build(input_shape)
            self.unused.build(input_shape)

        def call(self, x, training=None):
            return self.used(x)

    model = Branchy()
    x, y = _data((5,))
    model(x)
    direction = random_direction(model)
    with pytest.warns(UserWarning, match=rf"recorded no call of \['{model.unused.name}'\]"):
        gar_tf.per_example_alignment(model, LOSS, x, y, direction)
