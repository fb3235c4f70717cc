"""Layers whose tensors do not carry the batch on axis 0 (a positional Embedding over
``arange``, a Dense on a time-major tensor, a weight projected then broadcast): exact
per-example rewards against brute force, eager and in tf.function, and in GARModel.fit."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import RecordingPolicy, brute_force_alignment, random_direction, relative_error
from keras import ops

import gar_tf

L = keras.layers
LOSS = keras.losses.sparse_categorical_crossentropy
B, VOCAB, D, CLASSES = 6, 7, 4, 3


class PositionalEmbedding(L.Layer):
    """``x + E_pos[arange(L)]``: the standard Transformer input block's position part."""

    def __init__(self, length, **kwargs):
        super().__init__(**kwargs)
        self.positions = L.Embedding(length, D)

    def call(self, x):
        return x + self.positions(ops.arange(ops.shape(x)[1]))


class Table(L.Layer):
    """A fallback layer that ignores its input and returns a learned [length, D] table."""

    def __init__(self, length, **kwargs):
        super().__init__(**kwargs)
        self.length = length

    def build(self, input_shape):
        self.table = self.add_weight(shape=(self.length, D), initializer="random_normal")

    def call(self, x):
        return self.table * 1.0

    def compute_output_shape(self, input_shape):
        return (self.length, D)


class ProjectedTable(L.Layer):
    """``x + Dense(table)``: a fallback layer whose own weight feeds a Dense sublayer."""

    def __init__(self, length, **kwargs):
        super().__init__(**kwargs)
        self.length = length
        self.project = L.Dense(D)

    def build(self, input_shape):
        self.table = self.add_weight(shape=(self.length, D), initializer="random_normal")
        self.project.build((self.length, D))

    def call(self, x):
        return x + self.project(self.table)


def _time_major(layer, h):
    """``layer`` applied to ``h`` [B, T, D] transposed to time-major [T, B, D], and back."""
    return ops.transpose(layer(ops.transpose(h, (1, 0, 2))), (1, 0, 2))


def _head():
    return [L.GlobalAveragePooling1D(), L.Dense(CLASSES, activation="softmax")]


def _functional(case, length):
    ids = keras.Input((length,), dtype="int32")
    h = L.Embedding(VOCAB, D)(ids)
    if case == "positional":
        h = PositionalEmbedding(length)(h)
    elif case == "time_major":
        h = _time_major(L.Dense(D, activation="tanh"), h)
    elif case == "projected_table":
        h = h + L.Dense(D)(Table(length)(ids))
    else:  # "table_inside_layer"
        h = ProjectedTable(length)(h)
    pool, out = _head()
    return keras.Model(ids, out(pool(h)))


class Subclassed(keras.Model):
    """The same three cases in a subclassed model's own ``call``."""

    def __init__(self, case, length):
        super().__init__()
        self.case = case
        self.tokens = L.Embedding(VOCAB, D)
        if case == "positional":
            self.positions = L.Embedding(length, D)
        if case in ("time_major", "projected_table"):
            self.inner = L.Dense(D, activation="tanh")
        if case == "projected_table":
            self.table = Table(length)
        if case == "table_inside_layer":
            self.projected = ProjectedTable(length)
        self.pool, self.out = _head()

    def call(self, ids, training=None):
        h = self.tokens(ids)
        if self.case == "positional":
            h = h + self.positions(ops.arange(ops.shape(ids)[1]))
        elif self.case == "time_major":
            h = _time_major(self.inner, h)
        elif self.case == "projected_table":
            h = h + self.inner(self.table(ids))
        else:
            h = self.projected(h)
        return self.out(self.pool(h))


CASES = [
    ("positional", 5),  # B != L: used to crash at tf.add_n
    ("positional", B),  # B == L: used to give silently wrong rewards
    ("time_major", 5),
    ("projected_table", 5),
    ("projected_table", B),
    ("table_inside_layer", B),
]


def _model(kind, case, length):
    model = _functional(case, length) if kind == "functional" else Subclassed(case, length)
    ids, y = _data(length)
    model(ids)
    return model, ids, y


def _data(length, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, VOCAB, size=(B, length)).astype(np.int32), np.arange(B) % CLASSES


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf_function"])
@pytest.mark.parametrize("kind", ["functional", "subclassed"])
@pytest.mark.parametrize("case, length", CASES, ids=[f"{c}_L{n}" for c, n in CASES])
def test_unbatched_calls_are_exact(case, length, kind, compiled):
    model, ids, y = _model(kind, case, length)
    direction = random_direction(model)

    def align(x, y):
        return gar_tf.per_example_alignment(model, LOSS, x, y, direction)

    r = (tf.function(align) if compiled else align)(tf.constant(ids), tf.constant(y))
    assert relative_error(r, brute_force_alignment(model, LOSS, ids, y, direction)) <= 1e-5


@pytest.mark.parametrize("kind", ["functional", "subclassed"])
def test_the_engine_folds_unbatched_layers_into_the_nearest_batched_layer(kind):
    model, ids, _ = _model(kind, "positional", B)
    engine = gar_tf.AlignmentEngine(model)
    plan = engine.plan_for(tf.constant(ids))
    folded = [u for u in plan.units if u.kind == "enclosing"]
    assert len(folded) == 1
    if kind == "functional":  # the PositionalEmbedding layer holds it: its JVP suffices
        assert folded[0].layer is model.layers[2]
        assert [layer.name for layer in folded[0].folded] == [model.layers[2].positions.name]
    else:  # called in the model's own call: only the model's JVP holds it
        assert folded[0].layer is model
        assert [layer.name for layer in folded[0].folded] == [model.positions.name]
    assert {id(v) for u in plan.units for v in u.variables.values()} == {
        id(v) for v in engine.covered_variables
    }


def test_cosine_names_the_unbatched_layer():
    model, ids, y = _model("functional", "time_major", 5)
    dense = next(layer for layer in model.layers if isinstance(layer, L.Dense))
    with pytest.raises(ValueError, match=rf"cosine.*{dense.name}"):
        gar_tf.per_example_alignment(
            model, LOSS, ids, y, random_direction(model), similarity="cosine"
        )


def test_an_output_without_the_batch_axis_is_refused():
    ids = keras.Input((5,), dtype="int32")
    h = L.Embedding(VOCAB, D)(ids)
    model = keras.Model(ids, ops.sum(h, axis=0))  # sums over the batch
    x, _ = _data(5)
    model(x)
    with pytest.raises(ValueError, match=rf"{model.name}.*output"):
        gar_tf.AlignmentEngine(model).plan_for(tf.constant(x))


def test_a_model_that_fixes_the_batch_size_is_refused():
    class FixedBatch(keras.Model):
        def __init__(self):
            super().__init__()
            self.tokens, self.out = L.Embedding(VOCAB, D), L.Dense(CLASSES)

        def call(self, ids, training=None):
            return self.out(ops.reshape(self.tokens(ids), (B, -1)))

    model = FixedBatch()
    x, _ = _data(5)
    model(x)
    with pytest.raises(ValueError, match="fixed_batch.*any batch size"):
        gar_tf.AlignmentEngine(model).plan_for(tf.constant(x))


def _brute_force_fit_rewards(model, x, y, steps, lr):
    """``reward="next"`` by brute force: r_i = <g_i(theta_t), G_{t+1}(theta_{t+1})> / B."""
    variables = model.trainable_variables

    def grads(xb, yb):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(LOSS(yb, model(xb, training=True)))
        return [tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)]

    batches = [(x[k * B : (k + 1) * B], y[k * B : (k + 1) * B]) for k in range(steps)]
    per_example, full = [], []
    for xb, yb in batches:
        per_example.append([grads(xb[i : i + 1], yb[i : i + 1]) for i in range(B)])
        full.append(grads(xb, yb))
        for v, g in zip(variables, full[-1]):
            v.assign_sub(lr * g)
    return np.array(
        [
            [sum(float(tf.reduce_sum(a * b)) for a, b in zip(g, full[k + 1])) / B for g in gs]
            for k, gs in enumerate(per_example[:-1])
        ]
    )


@pytest.mark.parametrize("kind", ["functional", "subclassed"])
def test_fit_rewards_a_positional_embedding_exactly(kind):
    steps, lr, length = 3, 0.1, 5
    x = np.concatenate([_data(length, seed=s)[0] for s in range(steps)])
    y = np.arange(steps * B) % CLASSES
    model, _, _ = _model(kind, "positional", length)
    initial = [v.numpy() for v in model.weights]
    policy = RecordingPolicy(steps, B)
    data = (
        tf.data.Dataset.from_tensor_slices((x, y, np.arange(len(y), dtype=np.int32)))
        .map(lambda a, b, i: (a, b, None, {"ids": i}))
        .batch(B)
    )
    gar = gar_tf.GARModel(model, [policy])
    gar.compile(optimizer=keras.optimizers.SGD(lr), loss=LOSS)
    gar.fit(data, epochs=1, verbose=0)
    assert int(policy.calls.numpy()) == steps - 1

    for v, value in zip(model.weights, initial):
        v.assign(value)
    expected = _brute_force_fit_rewards(model, x, y, steps, lr)
    assert relative_error(policy.rewards.numpy()[: steps - 1], expected) <= 1e-5
