"""GARModel: reward/action pairing against an independent computation, and fit end to end."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import RecordingPolicy, relative_error

import gar_tf

L = keras.layers
LOSS = keras.losses.sparse_categorical_crossentropy
B, STEPS, LR = 8, 4, 0.1


def _backbone(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((5,)), L.Dense(6, activation="tanh"), L.Dense(3, activation="softmax")]
    )


def _data(n=B * STEPS):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 5)).astype(np.float32), (np.arange(n) % 3).astype(np.int32)


def _reference_rewards(reward, x, y, clean=None, clean_size=0, held=()):
    """Rewards by brute force: per-example gradients, explicit SGD steps. ``held``: the
    held-out batches, served round-robin, whose gradient after each step is its direction."""
    model = _backbone()
    variables = model.trainable_variables

    def grads(xb, yb):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(LOSS(yb, model(xb, training=True)))
        return [tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)]

    def dot(a, b):
        return sum(float(tf.reduce_sum(p * q)) for p, q in zip(a, b))

    batches = [(x[k * B : (k + 1) * B], y[k * B : (k + 1) * B]) for k in range(STEPS)]
    rewarded = B - clean_size
    per_example, full, comparison, held_out = [], [], [], []
    for k, (xb, yb) in enumerate(batches):
        per_example.append([grads(xb[i : i + 1], yb[i : i + 1]) for i in range(rewarded)])
        full.append(grads(xb, yb))
        comparison.append(grads(xb[rewarded:], yb[rewarded:]) if clean_size else full[-1])
        for v, g in zip(variables, full[-1]):
            v.assign_sub(LR * g)
        if held:
            held_out.append(grads(*held[k % len(held)]))  # at the updated weights
    out = []
    for k in range(STEPS):
        if clean == "alternate" and k % 2:
            continue  # odd steps are clean: their examples get no reward
        if clean == "held_out":
            direction = held_out[k]
        elif reward == "same":
            direction = comparison[k]
        elif k + 1 == STEPS:
            break
        elif reward == "next":
            direction = comparison[k + 1]
        else:
            direction = [a - b for a, b in zip(full[k + 1], full[k])]
        out.append(([dot(g, direction) / B for g in per_example[k]], k))
    return np.array([r for r, _ in out]), [k for _, k in out]


@pytest.mark.parametrize(
    "reward, clean, clean_size, calls",
    [
        ("next", None, 0, STEPS - 1),
        ("same", None, 0, STEPS),
        ("next-minus-current", None, 0, STEPS - 1),
        ("next", "alternate", 0, STEPS // 2),
        ("next", "slice", 3, STEPS - 1),
        ("same", "slice", 3, STEPS),
    ],
)
def test_rewards_pair_with_the_actions_of_their_batch(reward, clean, clean_size, calls):
    x, y = _data()
    ids = np.arange(len(y), dtype=np.int32)
    data = (
        tf.data.Dataset.from_tensor_slices((x, y, ids))
        .map(lambda a, b, i: (a, b, None, {"ids": i}))
        .batch(B)
    )
    policy = RecordingPolicy(STEPS, B - clean_size)
    model = gar_tf.GARModel(
        _backbone(), [policy], reward=reward, clean_comparison=clean, clean_size=clean_size
    )
    model.compile(optimizer=keras.optimizers.SGD(LR), loss=LOSS)
    model.fit(data, epochs=1, verbose=0)

    expected, batches = _reference_rewards(reward, x, y, clean, clean_size)
    assert int(policy.calls.numpy()) == len(expected) == calls
    np.testing.assert_array_equal(
        policy.actions.numpy()[:calls], ids.reshape(STEPS, B)[batches, : B - clean_size]
    )
    assert relative_error(policy.rewards.numpy()[:calls], expected) <= 1e-5


def test_without_policies_training_equals_plain_keras():
    x, y = _data(64)
    plain = _backbone()
    plain.compile(optimizer=keras.optimizers.SGD(LR), loss=LOSS, metrics=["accuracy"])
    h_plain = plain.fit(x, y, batch_size=B, epochs=2, shuffle=False, verbose=0)

    model = gar_tf.GARModel(_backbone())
    model.compile(optimizer=keras.optimizers.SGD(LR), loss=LOSS, metrics=["accuracy"])
    h_gar = model.fit(x, y, batch_size=B, epochs=2, shuffle=False, verbose=0)

    for a, b in zip(plain.get_weights(), model.backbone.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(h_gar.history["loss"], h_plain.history["loss"], rtol=1e-6)
    np.testing.assert_allclose(h_gar.history["accuracy"], h_plain.history["accuracy"])
    assert h_gar.history["loss"][0] > 0
    for key in ("reward_mean", "reward_std", "reward_positive"):
        assert np.all(np.isfinite(h_gar.history[key]))
    assert 0.0 <= h_gar.history["reward_positive"][0] <= 1.0
    assert h_gar.history["reward_std"][0] > 0


def test_fit_with_batchnorm_partial_batch_and_callbacks(tmp_path):
    keras.utils.set_random_seed(0)
    backbone = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            L.Conv2D(4, 3, padding="same"),
            L.BatchNormalization(),
            L.ReLU(),
            L.Conv2D(4, 3, strides=2),
            L.GlobalAveragePooling2D(),
            L.Dense(3, activation="softmax"),
        ]
    )
    x = np.random.default_rng(0).normal(size=(37, 8, 8, 1)).astype(np.float32)
    y = np.arange(37) % 3
    model = gar_tf.GARModel(backbone)
    model.compile(optimizer="adam", loss=LOSS, metrics=["accuracy"])
    history = model.fit(
        x,
        y,
        batch_size=8,
        epochs=2,
        validation_data=(x[:8], y[:8]),
        callbacks=[keras.callbacks.TensorBoard(str(tmp_path / "tb"), update_freq=1)],
        verbose=0,
    )
    assert set(history.history) >= {"loss", "accuracy", "reward_mean", "val_loss"}
    assert all(np.isfinite(v).all() for v in history.history.values())
    assert any((tmp_path / "tb").rglob("*.tfevents.*"))
    model.evaluate(x, y, verbose=0)
    assert model.predict(x[:5], verbose=0).shape == (5, 3)
    path = tmp_path / "backbone.keras"
    model.backbone.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(
        restored.predict(x[:5], verbose=0), model.predict(x[:5], verbose=0), rtol=1e-5
    )


def test_compute_rewards_false_logs_no_rewards_and_rejects_policies():
    model = gar_tf.GARModel(_backbone(), compute_rewards=False)
    model.compile(optimizer="sgd", loss=LOSS)
    x, y = _data(16)
    history = model.fit(x, y, batch_size=B, verbose=0)
    assert set(history.history) == {"loss"}  # no all-zero reward statistics
    with pytest.raises(ValueError, match="without rewards"):
        gar_tf.GARModel(_backbone(), policies=[RecordingPolicy(1, 1)], compute_rewards=False)


def test_bad_arguments():
    with pytest.raises(ValueError, match="reward must be one of"):
        gar_tf.GARModel(_backbone(), reward="previous")
    with pytest.raises(ValueError, match="similarity must be one of"):
        gar_tf.GARModel(_backbone(), similarity="l2")
    with pytest.raises(ValueError, match="clean_comparison must be one of"):
        gar_tf.GARModel(_backbone(), clean_comparison="holdout")
    with pytest.raises(ValueError, match='needs reward="next"'):
        gar_tf.GARModel(_backbone(), reward="same", clean_comparison="alternate")
    with pytest.raises(ValueError, match="clean_size >= 1"):
        gar_tf.GARModel(_backbone(), clean_comparison="slice")
    with pytest.raises(TypeError, match="gar_tf.Policy"):
        gar_tf.GARModel(_backbone(), policies=[object()])


def test_pipeline_policy_without_actions_is_a_clear_error():
    model = gar_tf.GARModel(_backbone(), policies=[RecordingPolicy(1, B)])
    model.compile(optimizer="sgd", loss=LOSS)
    x, y = _data(16)
    with pytest.raises(ValueError, match="acts in the tf.data pipeline"):
        model.fit(x, y, batch_size=B, verbose=0)


def test_gar_model_save_and_load_round_trip(tmp_path):
    model = gar_tf.GARModel(_backbone(), reward="same", exclude=(L.LayerNormalization,))
    model.compile(optimizer="adam", loss=LOSS)
    x, y = _data(32)
    model.fit(x, y, batch_size=B, verbose=0)
    model.save(tmp_path / "gar.keras")
    restored = keras.models.load_model(tmp_path / "gar.keras")
    assert isinstance(restored, gar_tf.GARModel) and restored.reward == "same"
    assert restored.exclude == (L.LayerNormalization,)
    np.testing.assert_allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0))
    assert np.isfinite(restored.fit(x, y, batch_size=B, verbose=0).history["loss"][0])


@pytest.mark.parametrize("reward", ["next", "next-minus-current"])
def test_fit_with_fallback_layers_keeps_their_state_between_steps(reward):
    keras.utils.set_random_seed(0)
    backbone = keras.Sequential(
        [
            keras.Input((4, 5)),
            L.GRU(6, return_sequences=True),
            L.Flatten(),
            L.Dense(6),
            L.PReLU(),
            L.Dense(3, activation="softmax"),
        ]
    )
    x = np.random.default_rng(0).normal(size=(B * STEPS, 4, 5)).astype(np.float32)
    y = np.arange(B * STEPS) % 3
    ids = np.arange(B * STEPS, dtype=np.int32)
    data = (
        tf.data.Dataset.from_tensor_slices((x, y, ids))
        .map(lambda a, b, i: (a, b, None, {"ids": i}))
        .batch(B)
    )
    policy = RecordingPolicy(STEPS, B)
    model = gar_tf.GARModel(backbone, [policy], reward=reward)
    assert {u.kind for u in model.engine.plan.units} == {"rule", "fallback"}
    model.compile(optimizer=keras.optimizers.SGD(LR), loss=LOSS)
    model.fit(data, epochs=1, verbose=0)
    assert int(policy.calls.numpy()) == STEPS - 1
    rewards = policy.rewards.numpy()[: STEPS - 1]
    assert np.isfinite(rewards).all() and np.abs(rewards).max() > 0


def test_engine_follows_trainable_changes_between_fits():
    """Freeze, fit, unfreeze, recompile, fit: rewards must cover the unfrozen layer."""
    model = gar_tf.GARModel(_backbone(), reward="same")
    first = model.backbone.layers[0]
    first.trainable = False
    model.compile(optimizer=keras.optimizers.SGD(LR), loss=LOSS)
    x, y = _data(32)
    model.fit(x, y, batch_size=B, verbose=0)
    assert first not in [u.layer for u in model.engine.plan.units]
    first.trainable = True
    model.compile(optimizer=keras.optimizers.SGD(LR), loss=LOSS)
    history = model.fit(x, y, batch_size=32, verbose=0, shuffle=False)
    assert first in [u.layer for u in model.engine.plan.units]
    # "same" with dot: the rewards sum to |G|^2 > 0, so their mean is |G|^2 / B.
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(LOSS(y, model.backbone(x, training=True)))
    # (the weights moved by one step since; compare signs and magnitude loosely)
    grads = tape.gradient(loss, model.backbone.trainable_variables)
    assert history.history["reward_mean"][0] > 0
    assert history.history["reward_mean"][0] == pytest.approx(
        sum(float(tf.reduce_sum(g * g)) for g in grads) / 32, rel=0.5
    )


def test_clean_slice_larger_than_the_batch_is_a_clear_error():
    model = gar_tf.GARModel(_backbone(), clean_comparison="slice", clean_size=8)
    model.compile(optimizer="sgd", loss=LOSS)
    x, y = _data(16)
    with pytest.raises(tf.errors.InvalidArgumentError, match="clean_size=8 leaves no example"):
        model.fit(x, y, batch_size=8, verbose=0)


def test_predict_and_evaluate_accept_batches_with_actions():
    model = gar_tf.GARModel(_backbone())
    model.compile(optimizer="sgd", loss=LOSS)
    x, y = _data(16)
    data = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .map(lambda a, b: (a, b, None, {"ids": tf.constant(0)}))
        .batch(B)
    )
    assert model.predict(data, verbose=0).shape == (16, 3)
    assert np.isfinite(model.evaluate(data, verbose=0))


def test_mixed_precision_rewards_match_float32():
    """Rewards come from unscaled gradients: mixed_float16 logs about the float32 values."""
    x, y = _data(64)

    def reward_mean(policy):
        keras.config.set_dtype_policy(policy)
        try:
            model = gar_tf.GARModel(_backbone(), reward="same")
            model.compile(optimizer=keras.optimizers.SGD(LR), loss=LOSS)
            uses_scaling = isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
            history = model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
            return history.history["reward_mean"][0], uses_scaling
        finally:
            keras.config.set_dtype_policy("float32")

    full, _ = reward_mean("float32")
    mixed, scaled = reward_mean("mixed_float16")
    assert scaled
    assert mixed == pytest.approx(full, rel=0.05)


def test_mixed_precision_with_fallback_layers():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        backbone = keras.Sequential(
            [
                keras.Input((5,)),
                L.Dense(6),
                L.PReLU(),
                L.Dense(3, activation="softmax", dtype="float32"),
            ]
        )
        model = gar_tf.GARModel(backbone)
        model.compile(optimizer=keras.optimizers.SGD(LR), loss=LOSS)
        x, y = _data(32)
        history = model.fit(x, y, batch_size=B, verbose=0)
    finally:
        keras.config.set_dtype_policy("float32")
    assert np.isfinite(history.history["reward_mean"][0])
    assert history.history["reward_std"][0] > 0


def test_a_sequential_without_input_is_built_as_keras_builds_it():
    """The backbone trains exactly as the same plain Keras model would (rewards do not
    change the model's step)."""
    x, y = _data(32)

    def unbuilt():
        keras.utils.set_random_seed(0)
        return keras.Sequential([L.Dense(6, activation="tanh"), L.Dense(3, activation="softmax")])

    plain = unbuilt()
    plain.compile(optimizer=keras.optimizers.SGD(LR), loss=LOSS)
    plain.fit(x, y, batch_size=B, shuffle=False, verbose=0)
    model = gar_tf.GARModel(unbuilt())
    model.compile(optimizer=keras.optimizers.SGD(LR), loss=LOSS)
    history = model.fit(x, y, batch_size=B, shuffle=False, verbose=0)
    assert np.isfinite(history.history["reward_mean"][0])
    for a, b in zip(model.backbone.weights, plain.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("backbone", ["resnet", lambda x: x, tf.Module()])
def test_a_backbone_that_is_not_a_keras_layer_is_refused(backbone):
    with pytest.raises(TypeError, match="backbone must be a Keras model"):
        gar_tf.GARModel(backbone)


def _held_out_batches(count=3):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(count * B, 5)).astype(np.float32)
    y = rng.integers(0, 3, count * B).astype(np.int32)
    return [(x[k * B : (k + 1) * B], y[k * B : (k + 1) * B]) for k in range(count)]


def _paired(x, y, held):
    train = (
        tf.data.Dataset.from_tensor_slices((x, y, np.arange(len(y), dtype=np.int32)))
        .map(lambda a, b, i: (a, b, None, {"ids": i}))
        .batch(B, drop_remainder=True)
    )
    xh, yh = (np.concatenate(parts) for parts in zip(*held))
    return gar_tf.with_comparison(
        train, tf.data.Dataset.from_tensor_slices((xh, yh)).batch(B, drop_remainder=True)
    )


@pytest.mark.parametrize("jit_compile", [False, True])
def test_held_out_rewards_align_with_the_held_out_gradient_after_the_step(jit_compile):
    """Every step rewards its own batch (one policy update per pair, from the first step)
    along the held-out batch's gradient at the updated weights; held-out batches come
    round-robin (3 of them for 4 steps: the first is served again)."""
    x, y = _data()
    held = _held_out_batches()
    policy = RecordingPolicy(STEPS, B)
    model = gar_tf.GARModel(_backbone(), [policy], clean_comparison="held_out")
    model.compile(optimizer=keras.optimizers.SGD(LR), loss=LOSS, jit_compile=jit_compile)
    model.fit(_paired(x, y, held), epochs=1, verbose=0)

    expected, batches = _reference_rewards("next", x, y, "held_out", held=held)
    assert int(policy.calls.numpy()) == len(expected) == STEPS
    assert int(model.optimizer.iterations.numpy()) == STEPS  # no update on held-out batches
    np.testing.assert_array_equal(policy.actions.numpy(), np.arange(B * STEPS).reshape(STEPS, B))
    assert relative_error(policy.rewards.numpy(), expected) <= 1e-5


def _batchnorm_backbone():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((5,)),
            L.Dense(6),
            L.BatchNormalization(),
            L.Activation("tanh"),
            L.Dense(3, activation="softmax"),
        ]
    )


def test_held_out_batches_change_no_weight_nor_batchnorm_statistics():
    """The backbone ends exactly as a plain Keras run on the training batches alone
    (moving mean and variance included), with the held-out data far off distribution."""
    x, y = _data()
    held = [(100 + 10 * xb, yb) for xb, yb in _held_out_batches()]
    plain = _batchnorm_backbone()
    plain.compile(optimizer=keras.optimizers.SGD(LR), loss=LOSS)
    plain.fit(x, y, batch_size=B, epochs=2, shuffle=False, verbose=0)

    model = gar_tf.GARModel(
        _batchnorm_backbone(), [RecordingPolicy(2 * STEPS, B)], clean_comparison="held_out"
    )
    model.compile(optimizer=keras.optimizers.SGD(LR), loss=LOSS)
    history = model.fit(_paired(x, y, held), epochs=2, verbose=0)
    assert np.isfinite(history.history["reward_mean"]).all()
    assert int(model.policies[0].calls.numpy()) == 2 * STEPS
    for a, b in zip(plain.weights, model.backbone.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6, err_msg=a.path)
    np.testing.assert_allclose(history.history["loss"], plain.history.history["loss"], rtol=1e-6)


def test_held_out_needs_pairs_and_pairs_need_held_out():
    x, y = _data()
    pairs = _paired(x, y, _held_out_batches())
    model = gar_tf.GARModel(_backbone(), [RecordingPolicy(STEPS, B)])
    model.compile(optimizer="sgd", loss=LOSS)
    with pytest.raises(ValueError, match='needs GARModel\\(clean_comparison="held_out"\\)'):
        model.fit(pairs, verbose=0)
    model = gar_tf.GARModel(_backbone(), clean_comparison="held_out")
    model.compile(optimizer="sgd", loss=LOSS)
    with pytest.raises(ValueError, match="gar_tf.with_comparison"):
        model.fit(x, y, batch_size=B, verbose=0)
    with pytest.raises(ValueError, match='clean_comparison="held_out" needs reward="next"'):
        gar_tf.GARModel(_backbone(), reward="same", clean_comparison="held_out")
    with pytest.raises(TypeError, match="batched tf.data.Datasets"):
        gar_tf.with_comparison((x, y), pairs)


def test_held_out_under_mixed_precision_matches_float32():
    """The held-out gradient is taken of the unscaled loss: mixed_float16 logs about the
    float32 rewards (as test_mixed_precision_rewards_match_float32 for the other modes)."""
    x, y = _data()
    held = _held_out_batches()

    def reward_mean(dtype_policy):
        keras.config.set_dtype_policy(dtype_policy)
        try:
            model = gar_tf.GARModel(
                _backbone(), [RecordingPolicy(STEPS, B)], clean_comparison="held_out"
            )
            model.compile(optimizer=keras.optimizers.SGD(LR), loss=LOSS)
            history = model.fit(_paired(x, y, held), epochs=1, verbose=0)
            return history.history["reward_mean"][0]
        finally:
            keras.config.set_dtype_policy("float32")

    assert reward_mean("mixed_float16") == pytest.approx(reward_mean("float32"), rel=0.05)


def test_held_out_loss_is_the_comparison_loss_after_each_step():
    """``held_out_loss`` averages, over the epoch, the held-out batch's loss at the weights
    after each step (computed here by a callback on the model itself); evaluate() leaves
    it out."""
    x, y = _data()
    held = _held_out_batches()
    seen = []

    class HeldOutLoss(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            xh, yh = held[batch % len(held)]
            seen.append(float(tf.reduce_mean(LOSS(yh, self.model.backbone(xh, training=True)))))

    model = gar_tf.GARModel(_backbone(), [RecordingPolicy(STEPS, B)], clean_comparison="held_out")
    model.compile(optimizer=keras.optimizers.SGD(LR), loss=LOSS)
    history = model.fit(_paired(x, y, held), epochs=1, callbacks=[HeldOutLoss()], verbose=0)
    assert history.history["held_out_loss"][0] == pytest.approx(np.mean(seen), rel=1e-5)
    assert "held_out_loss" not in model.evaluate(x, y, verbose=0, return_dict=True)


class _RecordingSampler(gar_tf.SplitSampler):
    """A SplitSampler that also records what each update() got."""

    def __init__(self, k, name="splits"):
        splits = [tf.data.Dataset.from_tensor_slices((np.zeros((2, 5), np.float32), [0, 0]))] * k
        super().__init__(splits, batch_size=B, name=name)
        self.recorded = RecordingPolicy(STEPS, B)

    def update(self, rewards, actions, active=True):
        self.recorded.update(rewards, actions, active)
        super().update(rewards, actions, active)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_other_splits_aligns_each_example_with_the_next_batchs_other_splits(jit_compile):
    """r_i = w_i <g_i, G^(-s_i)_{t+1}> / B, G^(-k) the sample-weighted mean gradient of batch
    t+1's examples whose split is not k (all of them where none is: batch 2 is all split 0),
    by brute force (docs/method.md §13)."""
    x, y = _data()
    rng = np.random.default_rng(2)
    splits = rng.integers(0, 3, len(y)).astype(np.int32)
    splits[2 * B : 3 * B] = 0
    weights = rng.uniform(0.2, 2.0, len(y)).astype(np.float32)
    data = (
        tf.data.Dataset.from_tensor_slices((x, y, weights, splits))
        .map(lambda a, b, w, s: (a, b, w, {"splits": s}))
        .batch(B, drop_remainder=True)
    )
    sampler = _RecordingSampler(3)
    model = gar_tf.GARModel(_backbone(), [sampler], clean_comparison="other_splits")
    model.compile(optimizer=keras.optimizers.SGD(LR), loss=LOSS, jit_compile=jit_compile)
    model.fit(data, epochs=1, verbose=0)

    reference = _backbone()
    variables = reference.trainable_variables

    def grads(rows):  # the gradient of sum_j w_j l_j / len(rows)
        with tf.GradientTape() as tape:
            losses = LOSS(y[rows], reference(x[rows], training=True)) * weights[rows]
            loss = tf.reduce_mean(losses)
        return tape.gradient(loss, variables)

    per_example, others = [], []
    for k in range(STEPS):
        rows = np.arange(k * B, (k + 1) * B)
        per_example.append([grads(rows[i : i + 1]) for i in range(B)])
        outside = {s: rows[splits[rows] != s] for s in range(3)}
        others.append({s: grads(r if len(r) else rows) for s, r in outside.items()})
        for v, g in zip(variables, grads(rows)):
            v.assign_sub(LR * g)
    expected = [
        [
            sum(float(tf.reduce_sum(a * b)) for a, b in zip(g, others[k + 1][splits[k * B + i]]))
            / B
            for i, g in enumerate(per_example[k])
        ]
        for k in range(STEPS - 1)
    ]
    recorded = sampler.recorded
    assert int(recorded.calls.numpy()) == STEPS - 1
    np.testing.assert_array_equal(
        recorded.actions.numpy()[: STEPS - 1], splits.reshape(STEPS, B)[: STEPS - 1]
    )
    assert relative_error(recorded.rewards.numpy()[: STEPS - 1], np.array(expected)) <= 1e-5


def test_other_splits_needs_one_split_sampler_and_reward_next():
    two = [_RecordingSampler(2), _RecordingSampler(2, "more")]
    for policies in ([RecordingPolicy(STEPS, B)], two):
        with pytest.raises(ValueError, match="exactly one"):
            gar_tf.GARModel(_backbone(), policies, clean_comparison="other_splits")
    with pytest.raises(ValueError, match='needs reward="next"'):
        gar_tf.GARModel(
            _backbone(),
            [_RecordingSampler(2)],
            reward="next-minus-current",
            clean_comparison="other_splits",
        )
