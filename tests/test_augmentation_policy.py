"""AugmentationPolicy: its log-probabilities, sampling, ensemble, learning, export and logging."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import student_t_quantile

import gar_tf

OPS = ["Identity", "Invert", "FlipUD", "Rotate"]  # only Rotate's level changes the image
LEVELLED = ["Identity", "Rotate", "Solarize", "Contrast"]  # all but Identity have levels


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _policy(**kwargs):
    options = dict(ops=OPS, num_levels=5, max_ops=2, seed=0)
    options.update(kwargs)
    policy = gar_tf.AugmentationPolicy(**options)
    rng = np.random.default_rng(0)
    for w in (policy.count_logits, policy.op_logits, policy.level_logits):
        w.assign(rng.normal(size=w.shape).astype(np.float32))
    return policy


def test_log_prob_matches_a_hand_computation():
    policy = _policy()
    count = _softmax(policy.count_logits.numpy()[0])
    op = _softmax(policy.op_logits.numpy()[0])
    level = _softmax(policy.level_logits.numpy()[0])
    level[:3] = 1 / 5  # Identity, Invert and FlipUD: a level changes nothing, so uniform
    # (n - 1, op_0, op_1, level_0, level_1): n = 1 ignores the second slot; n = 2 uses both.
    actions = tf.constant([[0, 3, 1, 4, 2], [1, 3, 1, 4, 2]])
    expected = [
        np.log(count[0]) + np.log(op[3] * level[3, 4]),
        np.log(count[1]) + np.log(op[3] * level[3, 4]) + np.log(op[1] * level[1, 2]),
    ]
    np.testing.assert_allclose(policy.log_prob(actions).numpy(), expected, rtol=1e-5)


def test_sampling_follows_the_distributions_and_is_stateless():
    policy = _policy()
    seed = tf.constant([5, 6], tf.int64)
    a = policy.sample(4000, seed=seed).numpy()
    np.testing.assert_array_equal(a, policy.sample(4000, seed=seed).numpy())
    op = _softmax(policy.op_logits.numpy()[0])
    counts = np.bincount(a[:, 1], minlength=len(OPS))
    chi2 = ((counts - 4000 * op) ** 2 / (4000 * op)).sum()
    assert chi2 < 16.27  # 3 degrees of freedom, p = 0.001
    assert set(np.unique(a[:, 0])) == {0, 1} and a[:, 3:].max() < 5


def test_inactive_slots_are_identity():
    policy = _policy()
    images = np.random.default_rng(1).integers(0, 256, (3, 8, 8, 1)).astype(np.uint8)
    actions = tf.constant([[0, 1, 2, 0, 0], [0, 2, 1, 0, 0], [1, 1, 2, 0, 0]])
    out = policy.transform(tf.constant(images), actions).numpy()
    np.testing.assert_array_equal(out[0], 255 - images[0])  # Invert only
    np.testing.assert_array_equal(out[1], images[1, ::-1])  # FlipUD only
    np.testing.assert_array_equal(out[2], (255 - images[2])[::-1])  # both


def test_ensemble_members_sample_from_their_own_logits():
    policy = gar_tf.AugmentationPolicy(ops=OPS, num_levels=3, max_ops=1, ensemble=2)
    policy.op_logits.assign([[0.0, 9.0, 0.0, 0.0], [0.0, 0.0, 0.0, 9.0]])
    a = policy.sample(200, seed=tf.constant([1, 2], tf.int64)).numpy()
    assert (a[:100, 1] == 1).mean() > 0.95 and (a[100:, 1] == 3).mean() > 0.95
    odd = policy.sample(7, seed=tf.constant([3, 4], tf.int64)).numpy()  # slices of 4 and 3
    assert (odd[:4, 1] == 1).all() and (odd[4:, 1] == 3).all()


def test_update_raises_the_probability_of_rewarded_ops():
    policy = gar_tf.AugmentationPolicy(
        ops=LEVELLED, num_levels=3, max_ops=1, policy_optimizer=keras.optimizers.SGD(1.0)
    )
    actions = tf.constant([[0, op, 1, 0][:3] for op in (0, 1, 2, 3)] * 2)
    rewards = tf.constant([-1.0, 1.0, 1.0, 0.0] * 2)
    policy.update(rewards, actions)
    op = _softmax(policy.op_logits.numpy()[0])
    assert op[1] > op[3] > op[0] and op[1] == pytest.approx(op[2])
    levels = policy.distributions()["levels"]
    assert levels[1, 1] > 1 / 3 and levels[2, 1] > 1 / 3  # the rewarded level
    np.testing.assert_allclose(levels[0], 1 / 3)  # Identity's level is not learned


def test_levels_of_ops_without_a_magnitude_stay_uniform():
    policy = _policy()  # random logits everywhere
    levels = policy.distributions()["levels"]
    np.testing.assert_allclose(levels[:3], 1 / 5, rtol=1e-6)  # Identity, Invert, FlipUD
    assert not np.allclose(levels[3], 1 / 5)
    assert policy.distance_from_uniform()["levels"] == pytest.approx(
        0.5 * np.abs(levels[3] - 1 / 5).sum(), rel=1e-5
    )


def test_normal_levels_are_a_discretised_normal_with_learned_location_and_spread():
    policy = gar_tf.AugmentationPolicy(
        ops=LEVELLED, num_levels=5, max_ops=1, levels="normal", seed=0
    )
    policy.level_location.assign([[0.0, 1.0, -2.0, 0.5]])
    policy.level_log_scale.assign([[0.0, -1.0, -2.0, 0.3]])
    mu = 4 / (1 + np.exp(-np.array([0.0, 1.0, -2.0, 0.5])))
    sigma = 4 * np.exp(np.array([0.0, -1.0, -2.0, 0.3]))
    density = np.exp(-0.5 * ((np.arange(5)[None] - mu[:, None]) / sigma[:, None]) ** 2)
    level = density / density.sum(1, keepdims=True)
    level[0] = 1 / 5  # Identity: no magnitude, uniform
    np.testing.assert_allclose(policy.distributions()["levels"], level, rtol=1e-5)
    op, count = 0.25, 1.0  # zero logits, one slot
    actions = tf.constant([[0, 2, 0], [0, 1, 4], [0, 3, 2]])
    expected = [
        np.log(count * op * level[2, 0]),
        np.log(op * level[1, 4]),
        np.log(op * level[3, 2]),
    ]
    np.testing.assert_allclose(policy.log_prob(actions).numpy(), expected, rtol=1e-5)
    # Rewarding high levels of op 1 moves its location up: neighbouring levels share it.
    policy.policy_optimizer = keras.optimizers.SGD(1.0)
    before = policy.distributions()["levels"][1]
    policy.update(
        tf.constant([1.0, 1.0, -1.0, -1.0]),
        tf.constant([[0, 1, 4], [0, 1, 3]] + [[0, 1, 0], [0, 1, 1]]),
    )
    after = policy.distributions()["levels"][1]
    assert after @ np.arange(5) > before @ np.arange(5) and after[2] > 0  # no level dropped


def test_op_floor_keeps_every_op_probability_above_it():
    policy = gar_tf.AugmentationPolicy(ops=OPS, num_levels=3, max_ops=1, min_op_probability=0.1)
    policy.op_logits.assign([[0.0, -30.0, 5.0, 0.0]])
    expected = 0.6 * _softmax(np.array([0.0, -30.0, 5.0, 0.0])) + 0.1
    np.testing.assert_allclose(policy.distributions()["ops"], expected, rtol=1e-5)
    distance = policy.distance_from_uniform()
    assert distance["ops"] == pytest.approx(0.5 * np.abs(expected - 0.25).sum(), rel=1e-5)
    assert distance["levels"] == pytest.approx(0.0, abs=1e-6)  # zero level logits: uniform
    a = policy.sample(4000, seed=tf.constant([1, 2], tf.int64)).numpy()
    counts = np.bincount(a[:, 1], minlength=len(OPS))
    chi2 = ((counts - 4000 * expected) ** 2 / (4000 * expected)).sum()
    assert chi2 < 16.27  # 3 degrees of freedom, p = 0.001
    actions = tf.constant([[0, 1, 0]])
    np.testing.assert_allclose(
        policy.log_prob(actions).numpy(), [np.log(expected[1] / 3)], rtol=1e-5
    )


def test_export_of_normal_levels_and_a_floor_is_the_same_distribution(tmp_path):
    policy = gar_tf.AugmentationPolicy(
        ops="standard", levels="normal", min_op_probability=0.02, seed=0
    )
    rng = np.random.default_rng(3)
    for w in policy.policy_weights:
        w.assign(rng.normal(size=w.shape).astype(np.float32))
    path = gar_tf.export_policy(policy, tmp_path / "p", channels=1)
    loaded = gar_tf.load_policy(path)
    for name, value in policy.distributions().items():
        np.testing.assert_allclose(loaded.distributions()[name], value, rtol=1e-5, atol=1e-7)
    images = rng.integers(0, 256, (6, 16, 16, 1)).astype(np.uint8)
    seed = tf.constant([4, 5], tf.int64)
    np.testing.assert_array_equal(
        loaded.augment(images, seed).numpy(), policy.augment(images, seed).numpy()
    )
    restored = gar_tf.AugmentationPolicy.from_config(policy.get_config())
    assert (restored.levels, restored.min_op_probability) == ("normal", 0.02)


def test_bad_configuration():
    with pytest.raises(ValueError, match="first op must be Identity"):
        gar_tf.AugmentationPolicy(ops=["Invert", "Identity"])
    with pytest.raises(ValueError, match="unknown augmentation op"):
        gar_tf.AugmentationPolicy(ops=["Identity", "Teleport"])
    with pytest.raises(ValueError, match=">= 1"):
        gar_tf.AugmentationPolicy(max_ops=0)
    with pytest.raises(ValueError, match="levels must be one of"):
        gar_tf.AugmentationPolicy(levels="beta")
    with pytest.raises(ValueError, match=r"min_op_probability must be in \[0, 1/4\)"):
        gar_tf.AugmentationPolicy(ops=OPS, min_op_probability=0.25)


def test_export_round_trip_without_gar_tf(tmp_path):
    policy = _policy(ops="wide", num_levels=31)
    path = gar_tf.export_policy(policy, tmp_path / "policy", channels=3)
    images = np.random.default_rng(2).integers(0, 256, (5, 32, 32, 3)).astype(np.uint8)
    np.save(tmp_path / "images.npy", images)
    live = policy.augment(images, tf.constant([7, 8], tf.int64)).numpy()
    np.save(tmp_path / "live.npy", live)
    code = f"""
import sys, numpy as np, tensorflow as tf
m = tf.saved_model.load({str(path)!r})
out = m.augment(np.load({str(tmp_path / "images.npy")!r}), tf.constant([7, 8], tf.int64))
d = m.distributions()
assert "gar_tf" not in sys.modules
assert np.array_equal(out.numpy(), np.load({str(tmp_path / "live.npy")!r}))
np.save({str(tmp_path / "ops.npy")!r}, d["ops"].numpy())
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    np.testing.assert_allclose(
        np.load(tmp_path / "ops.npy"), policy.distributions()["ops"], rtol=1e-6
    )
    summary = json.loads((path / "policy.json").read_text())
    assert summary["policy"] == policy.policy_string() and len(summary["ops"]) == 19

    loaded = gar_tf.load_policy(path)
    np.testing.assert_array_equal(loaded.op_logits.numpy(), policy.op_logits.numpy())
    np.testing.assert_array_equal(
        loaded.augment(images, tf.constant([7, 8], tf.int64)).numpy(), live
    )
    mapped = (
        tf.data.Dataset.from_tensor_slices(images)
        .batch(5)
        .map(lambda x: loaded.transform(x, loaded.sample(5)))
    )
    assert next(iter(mapped)).shape == images.shape
    with pytest.raises(RuntimeError, match="frozen"):
        loaded.update(tf.ones(4), loaded.sample(4))
    with pytest.raises(FileExistsError, match="not empty"):
        gar_tf.export_policy(policy, path)


def test_corrupt_or_missing_exports_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No exported policy"):
        gar_tf.load_policy(tmp_path / "nowhere")
    path = gar_tf.export_policy(_policy(), tmp_path / "p", channels=1)
    summary = json.loads((path / "policy.json").read_text())
    (path / "policy.json").write_text("{not json")
    with pytest.raises(ValueError, match="Corrupt policy export"):
        gar_tf.load_policy(path)
    (path / "policy.json").write_text(json.dumps({**summary, "format_version": 99}))
    with pytest.raises(ValueError, match="format version 99"):
        gar_tf.load_policy(path)
    (path / "policy.json").write_text(json.dumps(summary))
    for f in (path / "variables").iterdir():
        f.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="Corrupt policy export"):
        gar_tf.load_policy(path)


def test_short_gar_run_moves_the_distributions_and_logs(tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (256, 12, 12, 1)).astype(np.float32)
    y = (x[:, :6].mean((1, 2, 3)) > x[:, 6:].mean((1, 2, 3))).astype(np.int32)
    policy = gar_tf.AugmentationPolicy(ops=OPS, num_levels=5, max_ops=1, seed=0)
    backbone = keras.Sequential(
        [
            keras.Input((12, 12, 1)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model = gar_tf.GARModel(backbone, [policy], clean_comparison="alternate")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    logger = gar_tf.callbacks.AugmentationPolicyLogger(
        policy, every=4, log_dir=str(tmp_path), images=x[:8].astype(np.uint8)
    )
    model.fit(x, y, batch_size=32, epochs=2, callbacks=[logger], verbose=0)
    assert not np.allclose(policy.op_logits.numpy(), 0.0)
    assert [h["step"] for h in logger.history] == [0, 4, 8, 12, 16]
    assert logger.history[0]["ops"]["Invert"]["probability"] == pytest.approx(0.25)
    events = list((tmp_path / "augmentation_policy").glob("*.tfevents.*"))
    tags = {
        v.tag for e in tf.compat.v1.train.summary_iterator(str(events[0])) for v in e.summary.value
    }
    assert {
        "op_probability/Invert",
        "mean_level/Rotate",
        "mean_magnitude/Rotate",
        "augmented",
    } <= tags
    # Rotate: int(135 * l / 4) degrees for levels 0..4 = 0, 33, 67, 101, 135; uniform mean 67.2.
    assert logger.history[0]["ops"]["Rotate"]["mean_magnitude"] == pytest.approx(67.2)
    png = gar_tf.plots.plot_augmentation_heatmap(policy.summary(), tmp_path / "h.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_composes_with_standard_augmentation_before_and_after():
    """Before: a tf.data map; after: Keras preprocessing layers at the start of the backbone."""
    keras.utils.set_random_seed(1)
    x = np.random.default_rng(1).integers(0, 256, (64, 12, 12, 1)).astype(np.float32)
    y = np.arange(64) % 2
    data = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .batch(32)
        .map(lambda a, b: (tf.image.flip_left_right(a), b))  # before the policy
    )
    backbone = keras.Sequential(
        [
            keras.Input((12, 12, 1)),
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant"),  # after it
            keras.layers.RandomFlip("horizontal"),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Flatten(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    policy = gar_tf.AugmentationPolicy(ops=OPS, num_levels=5, max_ops=1, seed=0)
    model = gar_tf.GARModel(backbone, [policy], clean_comparison="alternate")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = model.fit(data, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert not np.allclose(policy.op_logits.numpy(), 0.0)


def test_gar_model_with_a_policy_saves_and_loads_as_keras(tmp_path):
    """A .keras file of a GARModel with an AugmentationPolicy reloads with the learned
    logits and the policy optimizer (its settings and state), and trains on."""
    keras.utils.set_random_seed(0)
    backbone = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(4, 3),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3),
        ]
    )
    policy = gar_tf.AugmentationPolicy(
        ops="standard", seed=0, policy_optimizer=keras.optimizers.Adam(0.05)
    )
    model = gar_tf.GARModel(backbone, policies=[policy], clean_comparison="alternate")
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer="sgd", loss=loss)
    x = np.random.default_rng(0).integers(0, 256, (64, 8, 8, 1)).astype(np.uint8)
    y = np.arange(64) % 3
    model.fit(x, y, batch_size=16, verbose=0)
    model.save(tmp_path / "model.keras")
    restored = keras.models.load_model(tmp_path / "model.keras")
    loaded = restored.policies[0]
    assert isinstance(loaded, gar_tf.AugmentationPolicy)
    assert float(loaded.policy_optimizer.learning_rate) == pytest.approx(0.05)
    assert int(loaded.policy_optimizer.iterations) == int(policy.policy_optimizer.iterations) > 0
    for a, b in zip(loaded.policy_weights, policy.policy_weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    restored.fit(x, y, batch_size=16, verbose=0)
    assert int(loaded.policy_optimizer.iterations) > int(policy.policy_optimizer.iterations)


def test_exported_augment_takes_the_seeds_a_user_passes_and_refuses_wrong_images(tmp_path):
    path = gar_tf.export_policy(_policy(), tmp_path / "p", channels=1)
    exported = tf.saved_model.load(str(path))
    images = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 1)).astype(np.uint8)
    reference = exported.augment(images, tf.constant([7, 0], tf.int64)).numpy()
    for seed in (7, np.int32(7), tf.constant(7), tf.constant([7, 0], tf.int32), [7, 0]):
        np.testing.assert_array_equal(exported.augment(images, seed).numpy(), reference)
    fresh = [exported.augment(images).numpy() for _ in range(3)]  # no seed: new draws
    assert fresh[0].shape == images.shape
    assert not all(np.array_equal(fresh[0], f) for f in fresh[1:])
    for bad in (images.astype(np.float32) / 255, np.repeat(images, 3, axis=-1)):
        with pytest.raises(
            tf.errors.InvalidArgumentError, match=r"takes uint8 images \[B, H, W, 1\]"
        ):
            exported.augment(bad, 7)


def test_value_range_maps_images_to_the_ops_range_and_refuses_the_wrong_one():
    images = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 1)).astype(np.uint8)
    seed = tf.constant([3, 4], tf.int64)
    in_255 = _policy().augment(images.astype(np.float32), seed).numpy()
    in_unit = _policy(value_range=(0, 1)).augment(images.astype(np.float32) / 255, seed).numpy()
    np.testing.assert_allclose(in_unit, in_255 / 255, atol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match="pass value_range=\\(0, 1\\)"):
        _policy().augment(images.astype(np.float32) / 255, seed)
    with pytest.raises(tf.errors.InvalidArgumentError, match="above value_range"):
        _policy(value_range=(0, 1)).augment(images.astype(np.float32), seed)
    with pytest.raises(TypeError, match="uint8 images are in \\[0, 255\\]"):
        _policy(value_range=(0, 1)).augment(images, seed)
    with pytest.raises(ValueError, match="low < high"):
        _policy(value_range=(1, 0))


def test_evidence_op_rule_matches_numpy_per_member_and_slot():
    """op_rule='evidence': each active slot adds its image's reward (standardised within its
    ensemble member) to its op; logits = the shrunk gap to the best op / T, per member."""
    b, members, n_ops, steps = 24, 2, len(OPS), 5
    t, c, h = 0.2, 1.0, 3.0
    policy = gar_tf.AugmentationPolicy(
        ops=OPS,
        num_levels=5,
        max_ops=2,
        ensemble=members,
        op_rule="evidence",
        evidence_options=dict(
            temperature=t, confidence=c, horizon=h, max_log_ratio=np.inf, min_steps=1
        ),
        seed=0,
    )
    policy.build_optimizer()
    levels_before = policy.level_logits.numpy().copy()
    rng = np.random.default_rng(3)
    s_steps, n_steps = [], []
    for _ in range(steps):
        count = rng.integers(0, 2, b)  # n - 1
        ops = rng.integers(0, n_ops, (b, 2))
        actions = np.concatenate([count[:, None], ops, rng.integers(0, 5, (b, 2))], 1)
        rewards = rng.normal(size=b) - 3.0 * (ops[:, 0] == 3)  # Rotate in slot 0 is bad
        member = np.arange(b) * members // b
        s, n = np.zeros((members, n_ops)), np.zeros((members, n_ops))
        for m in range(members):
            r = rewards[member == m]
            w = (r - r.mean()) / (r.std(ddof=1) + 1e-8)
            for wi, ci, oi in zip(w, count[member == m], ops[member == m]):
                for slot in range(ci + 1):
                    s[m, oi[slot]] += wi
                    n[m, oi[slot]] += 1
        s_steps.append(s)
        n_steps.append(n)
        policy.update(tf.constant(rewards, tf.float32), tf.constant(actions, tf.int32))
    omega = (1 - 1 / h) ** (steps - 1 - np.arange(steps))[:, None, None]
    s, n = np.array(s_steps), np.array(n_steps)
    a = (omega * s).sum(0) / (omega * n).sum(0)
    se = np.sqrt((omega**2 * (s - a * n) ** 2).sum(0)) / (omega * n).sum(0)
    effective_steps = (omega * n).sum(0) ** 2 / (omega**2 * n**2).sum(0)
    se *= np.sqrt(effective_steps / (effective_steps - 1))
    margin = student_t_quantile(c, effective_steps - 1) * se
    best = (a - margin).max(-1, keepdims=True)
    expected = np.minimum(a + margin - best, 0.0) / t
    np.testing.assert_allclose(policy.op_logits.numpy(), expected, rtol=1e-4, atol=1e-5)
    assert np.all(expected[:, 3] < 0)  # the bad op fell in both members
    got = policy.op_advantages()
    np.testing.assert_allclose([got[o]["a"] for o in OPS], a.T, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose([got[o]["se"] for o in OPS], se.T, rtol=1e-4, atol=1e-6)
    assert not np.allclose(policy.level_logits.numpy(), levels_before)  # levels: REINFORCE
    config = policy.get_config()
    assert config["op_rule"] == "evidence" and config["evidence_options"]["temperature"] == t
    again = gar_tf.AugmentationPolicy.from_config(config)
    assert again.op_rule == "evidence" and again.evidence_options == policy.evidence_options


def test_evidence_op_rule_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="op_advantages\\(\\) is kept by op_rule='evidence'"):
        gar_tf.AugmentationPolicy().op_advantages()
    with pytest.raises(ValueError, match="op_rule must be one of"):
        gar_tf.AugmentationPolicy(op_rule="bandit")
    with pytest.raises(ValueError, match="needs learn_ops=True"):
        gar_tf.AugmentationPolicy(op_rule="evidence", learn_ops=False)
    with pytest.raises(ValueError, match="evidence_options are for op_rule='evidence'"):
        gar_tf.AugmentationPolicy(evidence_options={"temperature": 0.1})
    with pytest.raises(ValueError, match="Unknown evidence option"):
        gar_tf.AugmentationPolicy(op_rule="evidence", evidence_options={"entropy": 0.1})
    with pytest.raises(ValueError, match="temperature must be a number > 0"):
        gar_tf.AugmentationPolicy(op_rule="evidence", evidence_options={"temperature": 0})
