"""Every reward path (docs/method.md §12) against brute-force per-example gradients, against
each other inside GARModel (also with cosine, mixed precision, XLA and a clean slice), and the
engine's choice and its errors."""

import dataclasses

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


def mlp(regularizer=None) -> keras.Model:
    """Dense layers on one position per example, where the Gram form is cheaper at small
    batches (32->64, 64->64), and a head where it is not (64->3)."""
    inputs = keras.Input((32,))
    h = keras.layers.Dense(64, "tanh", kernel_regularizer=regularizer, name="wide_in")(inputs)
    h = keras.layers.Dense(64, activation="relu", name="wide")(h)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(h))


def data(batch=8, seed=0, shape=(6, 5)):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, *shape)).astype("float32"), rng.integers(0, 3, batch)


def counting_rules():
    """The default rules with Dense's Gram form counting the times it runs (in a variable,
    so a Gram form traced in an untaken tf.cond branch does not count)."""
    rules = gar_tf.default_rules()
    dense = dict(rules.items())[keras.layers.Dense]
    runs = tf.Variable(0)

    def gram(*args):
        if tf.executing_eagerly() or tf.inside_function():  # not the engine's trace-only probe
            runs.assign_add(1)
        return dense.gram(*args)

    rules.add(keras.layers.Dense, dataclasses.replace(dense, gram=gram), replace=True)
    return rules, runs


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


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf.function"])
def test_gram_matches_brute_force_where_it_runs(compiled):
    """Batch a aligned with the gradient of batch b (sample-weighted) by the Gram form: the
    two wide layers take it, the head (cheaper as a tangent at this batch) does not."""
    rules, runs = counting_rules()
    model = mlp()
    engine = gar_tf.AlignmentEngine(model, paths="auto", rules=rules, batch_direction=True)
    xa, ya = data(8, seed=0, shape=(32,))
    xb, yb = data(6, seed=1, shape=(32,))
    wb = np.linspace(0.5, 2.0, 6).astype("float32")
    assert [c.path for c in engine.describe(xa)] == ["gram", "gram", "tangent"]

    def record(x, y, w=None):
        with tf.GradientTape() as tape:
            with engine.recording(x) as rec:
                losses = LOSS.call(y, model(x, training=True))
            loss = tf.reduce_mean(losses if w is None else losses * w)
        grads = tape.gradient(loss, model.trainable_variables + rec.outputs)
        n = len(model.trainable_variables)
        return rec.states(grads[n:]), grads[:n]

    def aligned(xa, ya, xb, yb, wb):
        states, _ = record(xa, ya)
        comparison, direction = record(xb, yb, wb)
        return engine.alignment(states, direction, comparison), direction

    if compiled:  # the batch is not static: the engine chooses per batch inside tf.cond
        spec = [tf.TensorSpec([None, 32]), tf.TensorSpec([None], tf.int64)]
        aligned = tf.function(aligned, input_signature=[*spec, *spec, tf.TensorSpec([None])])
    r, direction = aligned(xa, ya, xb, yb, wb)
    expected = brute_force_alignment(model, LOSS, xa, ya, direction)
    assert relative_error(r, expected) < 1e-5
    assert int(runs.numpy()) == 2


def fit(paths, *, steps=4, jit_compile=False, mixed=False, backbone=sequence_model, **options):
    """Weights and logged reward statistics after ``steps`` GAR steps from a fixed start."""
    keras.utils.set_random_seed(0)
    if mixed:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        net = backbone()
        model = gar_tf.GARModel(net, paths=paths, **options)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss=LOSS, jit_compile=jit_compile)
        x, y = data(16 * steps, seed=1, shape=net.input_shape[1:])
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


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"clean_comparison": "alternate"},
        {"reward": "same"},
        {"jit_compile": True},
        {"mixed": True},
    ],
    ids=["next", "alternate", "same", "xla", "mixed-precision"],
)
def test_gram_training_equals_tangent_training(options):
    """Where the direction is a recorded batch's gradient, the Gram form runs and trains as
    the tangent does (the head's Gram form costs more at batch 16, so only two layers)."""
    tolerance = {"rtol": 2e-2, "atol": 1e-6} if options.get("mixed") else {"rtol": 2e-5}
    _, logs_tangent, _ = fit("tangent", backbone=mlp, **options)
    rules, runs = counting_rules()
    _, logs_gram, _ = fit("gram", backbone=mlp, rules=rules, **options)
    assert int(runs.numpy()) > 0
    # without policies the weights do not depend on the rewards: compare what is logged
    for key in ("loss", "reward_mean", "reward_std"):
        np.testing.assert_allclose(logs_gram[key], logs_tangent[key], **{"atol": 1e-8, **tolerance})


@pytest.mark.parametrize(
    "options",
    [{"reward": "next-minus-current"}, {"clean_comparison": "slice", "clean_size": 4}, {}],
    ids=["next-minus-current", "slice", "regularised"],
)
def test_gram_steps_aside_where_the_direction_is_not_a_batch_gradient(options):
    """G_{t+1} - G_t, a clean slice's gradient or a regularised loss's: the tangent runs."""
    backbone = mlp if options else (lambda: mlp(regularizer="l2"))
    _, logs_tangent, _ = fit("tangent", backbone=backbone, **options)
    rules, runs = counting_rules()
    _, logs_gram, model = fit("gram", backbone=backbone, rules=rules, **options)
    assert int(runs.numpy()) == 0
    # regularised: offered (describe cannot know), stepped aside at run time
    expected = ["tangent"] * 3 if options else ["gram", "gram", "tangent"]
    assert [c.path for c in model.engine.describe(data(shape=(32,))[0])] == expected
    for key in ("reward_mean", "reward_std"):
        np.testing.assert_allclose(logs_gram[key], logs_tangent[key], rtol=1e-4)


class TiedDense(keras.layers.Dense):
    """A Dense that holds another Dense's kernel (weight tying) and its own bias."""

    def __init__(self, units, source, **kwargs):
        super().__init__(units, **kwargs)
        object.__setattr__(self, "_source", source)  # not tracked as a sublayer

    def build(self, input_shape):
        self._kernel = self._source._kernel
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        self.built = True


def test_a_tied_kernel_keeps_the_tangent():
    """The direction of a kernel two layers hold is the sum of both layers' shares; the Gram
    form of either would see its own only, so neither takes it and the rewards stay exact."""
    inputs = keras.Input((32,))
    first = keras.layers.Dense(32, activation="tanh", name="first")
    h = TiedDense(32, first, activation="tanh", name="tied")(first(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(h))
    engine = gar_tf.AlignmentEngine(model, paths="gram", batch_direction=True)
    xa, ya = data(8, seed=0, shape=(32,))
    xb, yb = data(6, seed=1, shape=(32,))
    assert {c.layer: c.path for c in engine.describe(xa)} == {
        "first": "tangent",
        "tied": "tangent",
        "head": "tangent",
    }
    with tf.GradientTape(persistent=True) as tape:
        with engine.recording(xa) as rec_a:
            loss_a = tf.reduce_mean(LOSS.call(ya, model(xa, training=True)))
        with engine.recording(xb) as rec_b:
            loss_b = tf.reduce_mean(LOSS.call(yb, model(xb, training=True)))
    states = rec_a.states(tape.gradient(loss_a, rec_a.outputs))
    comparison = rec_b.states(tape.gradient(loss_b, rec_b.outputs))
    direction = tape.gradient(loss_b, model.trainable_variables)
    r = engine.alignment(states, direction, comparison)
    assert relative_error(r, brute_force_alignment(model, LOSS, xa, ya, direction)) < 1e-5


def test_a_layer_forced_to_gram_at_a_batch_where_it_costs_more_runs_the_tangent():
    rules, runs = counting_rules()
    forced = {"head": "gram", "wide_in": "tangent", "wide": "tangent"}
    model = gar_tf.GARModel(mlp(), paths=forced, rules=rules)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=LOSS)
    x, y = data(64, seed=1, shape=(32,))
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(16, drop_remainder=True)
    model.fit(batches, epochs=1, verbose=0)
    described = {c.layer: c for c in model.engine.describe(x[:16])}
    assert described["head"].path == "gram"
    assert described["head"].flops == described["head"].options["tangent"][0]
    assert int(runs.numpy()) == 0


def test_garmodel_takes_the_gram_form_by_default_where_it_is_cheaper():
    x = data(8, shape=(32,))[0]
    assert [c.path for c in gar_tf.GARModel(mlp()).engine.describe(x)] == [
        "gram",
        "gram",
        "tangent",
    ]
    for other in ({"reward": "next-minus-current"}, {"similarity": "cosine"}):
        described = gar_tf.GARModel(mlp(), **other).engine.describe(x)
        assert [c.path for c in described] == ["tangent"] * 3
    # the engine alone aligns with any direction: no Gram form
    assert {c.path for c in gar_tf.AlignmentEngine(mlp(), paths="gram").describe(x)} == {"tangent"}


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
        gar_tf.AlignmentEngine(model, paths="fast")
    with pytest.raises(ValueError, match="'head', which has only \\['materialised', 'tangent'\\]"):
        gar_tf.AlignmentEngine(model, paths={"head": "gram"}).describe(x)
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
