"""Every reward path (docs/method.md §12) against brute-force per-example gradients, against
each other inside GARModel (also with cosine, mixed precision, XLA and a clean slice), and the
engine's choice and its errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import brute_force_alignment, random_direction, relative_error

import gar_tf

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
PATHS = ("tangent", "materialised")


def sequence_model() -> keras.Model:
    """Dense on [B, T, C] (with an L2 regulariser), an EinsumDense with bias axes, one with an
    ellipsis, and a Dense called twice (shared weights)."""
    inputs = keras.Input((6, 5))
    h = keras.layers.Dense(7, activation="tanh", kernel_regularizer="l2")(inputs)
    h = keras.layers.EinsumDense("abc,cde->abde", (6, 2, 3), bias_axes="de")(h)
    h = keras.layers.Reshape((6, 6))(h)
    h = keras.layers.EinsumDense("...c,cd->...d", 4, bias_axes="d", activation="relu")(h)
    shared = keras.layers.Dense(4, activation="tanh")
    h = shared(shared(h))
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(h)))


def data(batch=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, 6, 5)).astype("float32"), rng.integers(0, 3, batch)


@pytest.mark.parametrize("path", PATHS)
def test_each_path_matches_brute_force(path):
    model = sequence_model()
    x, y = data()
    direction = random_direction(model)
    r = gar_tf.per_example_alignment(model, LOSS, x, y, direction, paths=path)
    assert relative_error(r, brute_force_alignment(model, LOSS, x, y, direction)) < 1e-5


def test_materialised_cosine_matches_brute_force_per_tensor():
    model = sequence_model()
    x, y = data()
    direction = random_direction(model)
    expected = np.zeros(len(y))
    for i in range(len(y)):
        with tf.GradientTape() as tape:
            loss = LOSS(y[i : i + 1], model(x[i : i + 1], training=True)) / len(y)
        for g, v in zip(tape.gradient(loss, model.trainable_variables), direction):
            expected[i] += float(tf.reduce_sum(g * v) / (tf.norm(g) * tf.norm(v)))
    for path in PATHS:
        r = gar_tf.per_example_alignment(
            model, LOSS, x, y, direction, similarity="cosine", paths=path
        )
        np.testing.assert_allclose(r, expected, rtol=1e-4, atol=1e-6)


def fit(paths, *, steps=4, jit_compile=False, mixed=False, **options):
    """Weights and logged reward statistics after ``steps`` GAR steps from a fixed start."""
    keras.utils.set_random_seed(0)
    if mixed:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = gar_tf.GARModel(sequence_model(), paths=paths, **options)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=LOSS, jit_compile=jit_compile)
        x, y = data(16 * steps, seed=1)
        history = model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return [v.numpy() for v in model.backbone.trainable_variables], history.history, model


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"similarity": "cosine"},
        {"jit_compile": True},
        {"clean_comparison": "slice", "clean_size": 4},
        {"reward": "next-minus-current"},
    ],
    ids=["dot", "cosine", "xla", "slice", "next-minus-current"],
)
def test_materialised_training_equals_tangent_training(options):
    tangent, logs_tangent, _ = fit("tangent", **options)
    materialised, logs_materialised, model = fit("materialised", **options)
    assert {c.path for c in model.engine.describe(data()[0])} == {"materialised"}
    for a, b in zip(tangent, materialised):
        np.testing.assert_allclose(b, a, rtol=2e-5, atol=1e-6)
    for key in ("loss", "reward_mean", "reward_std"):
        np.testing.assert_allclose(logs_materialised[key], logs_tangent[key], rtol=1e-4, atol=1e-8)
    assert logs_tangent["reward_std"][-1] > 0


def test_materialised_training_under_mixed_precision():
    tangent, logs_tangent, _ = fit("tangent", mixed=True)
    materialised, logs_materialised, _ = fit("materialised", mixed=True)
    for a, b in zip(tangent, materialised):
        np.testing.assert_allclose(b, a, rtol=1e-2, atol=1e-3)
    np.testing.assert_allclose(
        logs_materialised["reward_mean"], logs_tangent["reward_mean"], rtol=1e-2, atol=1e-6
    )


def test_materialised_keeps_the_per_example_gradients_instead_of_inputs():
    *_, tangent = fit("tangent")
    *_, materialised = fit("materialised")
    params = sum(int(np.prod(v.shape)) for v in materialised.backbone.trainable_variables)
    second_call = 4 * 4 + 4  # the shared Dense is recorded twice, each call keeps its g_i
    # two buffers x batch 16 x float32 x the gradients of one example
    assert materialised.pending_bytes == 2 * 16 * 4 * (params + second_call)
    assert tangent.pending_bytes != materialised.pending_bytes


def test_auto_chooses_by_positions_per_example():
    inputs = keras.Input((64, 32))
    h = keras.layers.Dense(32, name="many_positions")(inputs)
    h = keras.layers.Dense(256, name="one_position")(keras.layers.Flatten()(h))
    engine = gar_tf.AlignmentEngine(keras.Model(inputs, h), paths="auto")
    costs = {c.layer: c for c in engine.describe(np.zeros((2, 64, 32), "float32"))}
    assert costs["many_positions"].path == "materialised"
    assert costs["one_position"].path == "tangent"
    # one example's tangent of the 32x32 kernel at 64 positions: 2 * 64 * 32 * 32 FLOPs
    assert costs["many_positions"].options["tangent"][0] == 2 * 64 * 32 * 32
    assert costs["many_positions"].bytes == 4 * (32 * 32 + 32)
    assert "many_positions: materialised" in str(costs["many_positions"])


def test_forced_paths_and_their_errors():
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3, name="conv"), keras.layers.Flatten()]
        + [keras.layers.Dense(3, name="head")]
    )
    x = np.zeros((2, 8, 8, 1), "float32")
    engine = gar_tf.AlignmentEngine(model, paths={"head": "materialised"})
    assert [(c.layer, c.path) for c in engine.describe(x)] == [
        ("conv", "tangent"),
        ("head", "materialised"),
    ]
    # a global choice applies where the path exists
    assert [c.path for c in gar_tf.AlignmentEngine(model, paths="materialised").describe(x)] == [
        "tangent",
        "materialised",
    ]
    with pytest.raises(ValueError, match="'conv', which has only \\['tangent'\\]"):
        gar_tf.AlignmentEngine(model, paths={"conv": "materialised"}).describe(x)
    with pytest.raises(ValueError, match="'nope'.*no rule in this model"):
        gar_tf.AlignmentEngine(model, paths={"nope": "tangent"})
    with pytest.raises(ValueError, match="one of"):
        gar_tf.AlignmentEngine(model, paths="gram")
    with pytest.raises(ValueError, match="one of"):
        gar_tf.GARModel(model, paths={"head": "fast"})


class AddPositions(keras.layers.Layer):
    """``h + E[arange(L)]``: an Embedding called without the batch axis."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.table = keras.layers.Embedding(5, 4, name="positions")

    def call(self, h):
        return h + self.table(keras.ops.arange(5))


def test_describe_lists_the_jvp_units():
    tokens = keras.Input((5,), dtype="int32")
    h = AddPositions()(keras.layers.Embedding(9, 4, name="tokens")(tokens))
    h = keras.layers.PReLU(name="prelu")(keras.layers.Flatten()(h))
    model = keras.Model(tokens, keras.layers.Dense(3, name="head")(h), name="net")
    described = gar_tf.AlignmentEngine(model).describe(np.zeros((2, 5), "int32"))
    assert sorted((c.layer, c.path) for c in described) == [
        ("add_positions (for positions)", "enclosing"),
        ("head", "tangent"),
        ("prelu", "fallback"),
        ("tokens", "tangent"),
    ]
    assert "add_positions (for positions): enclosing, ? FLOPs" in str(described[-1])


def test_paths_survive_saving(tmp_path):
    model = gar_tf.GARModel(sequence_model(), paths={"dense": "tangent"})
    model.compile(optimizer="sgd", loss=LOSS)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.paths == {"dense": "tangent"}
