"""SplitSampler: the mixture it draws, its REINFORCE step, bad input, logging, and fit."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import student_t_quantile

import gar_tf
from gar_tf.policies import evidence

CHI2_999 = {3: 16.27}  # chi-square critical values at p = 0.001, by degrees of freedom


def _constant_splits(sizes=(30, 5, 20, 50)):
    """Split i yields x == i, so every example shows where it came from."""
    return [
        tf.data.Dataset.from_tensor_slices(
            (np.full((n, 2), i, np.float32), np.full(n, i % 2, np.int32))
        )
        for i, n in enumerate(sizes)
    ]


def _counts(batches, k):
    counts = np.zeros(k)
    for x, _, weight, actions in batches:
        ids = actions["split_sampler"].numpy()
        assert weight is None
        np.testing.assert_array_equal(x.numpy()[:, 0], ids)  # the id is the true source
        counts += np.bincount(ids, minlength=k)
    return counts


def test_empirical_mixture_matches_probabilities():
    sampler = gar_tf.SplitSampler(_constant_splits(), batch_size=64, seed=3)
    sampler.logits.assign([1.0, 0.0, -1.0, 0.5])
    p = np.array(list(sampler.probabilities().values()))
    counts = _counts(sampler.dataset().take(150), 4)
    expected = counts.sum() * p
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < CHI2_999[3], (counts, expected)


def test_mixture_follows_the_logits_while_iterating():
    sampler = gar_tf.SplitSampler(_constant_splits(), batch_size=32, seed=0)
    it = iter(sampler.dataset())
    next(it)
    sampler.logits.assign([-20.0, -20.0, 20.0, -20.0])  # now (almost) only split 2
    for _ in range(5):  # batches prefetched with the old logits
        next(it)
    assert _counts([next(it) for _ in range(10)], 4)[2] == 320


def test_probability_floor_and_log_prob():
    sampler = gar_tf.SplitSampler(_constant_splits(), batch_size=8, min_probability=0.05)
    sampler.logits.assign([50.0, 0.0, 0.0, 0.0])
    p = sampler.probabilities()
    assert min(p.values()) == pytest.approx(0.05, rel=1e-5)
    assert sum(p.values()) == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_allclose(
        np.exp(sampler.log_prob(tf.constant([0, 3])).numpy()), [p["split_0"], p["split_3"]]
    )


def test_reinforce_step_matches_the_analytic_gradient():
    k, f = 4, 0.02
    sampler = gar_tf.SplitSampler(
        _constant_splits(),
        batch_size=8,
        min_probability=f,
        rule="reinforce",
        entropy=0.0,
        policy_optimizer=keras.optimizers.SGD(1.0),
    )
    sampler.clip_value = 1e9
    z0 = np.array([0.3, -0.2, 0.1, 0.0], np.float32)
    sampler.logits.assign(z0)
    rewards = np.array([0.5, -1.0, 2.0, 0.1, -0.3, 1.5, 0.0, -2.0], np.float32)
    ids = np.array([0, 1, 2, 3, 0, 2, 1, 3])
    q = np.exp(z0) / np.exp(z0).sum()
    p = (1 - k * f) * q + f
    w = (rewards - rewards.mean()) / (rewards.std(ddof=1) + 1e-8)
    # d log p_s / dz_k = (1 - K f) q_s (delta_sk - q_k) / p_s
    dlogp = (1 - k * f) * q[ids, None] * (np.eye(k)[ids] - q[None]) / p[ids, None]
    grad = -np.mean(w[:, None] * dlogp, axis=0)
    sampler.update(tf.constant(rewards), tf.constant(ids))
    np.testing.assert_allclose(sampler.logits.numpy(), z0 - grad, rtol=1e-5, atol=1e-6)
    means = sampler.take_mean_rewards()
    assert means["split_2"] == pytest.approx((2.0 + 1.5) / 2)
    assert np.isnan(sampler.take_mean_rewards()["split_0"])  # reset after reading


def _evidence_in_numpy(steps, k, temperature, confidence, horizon, max_log_ratio, min_steps):
    """The evidence rule worked out directly: for each split, the discounted ratio mean of
    the standardised rewards and its batch-clustered variance, times G / (G - 1) for G
    effective steps, bounds of Student's t with G - 1 degrees of freedom; splits with
    G < min_steps neither move nor set the best (docs/method.md §10)."""
    g = 1.0 - 1.0 / horizon
    total = len(steps)
    s_steps, n_steps = [], []
    for rewards, ids in steps:
        w = (rewards - rewards.mean()) / (rewards.std(ddof=1) + 1e-8)
        s_steps.append(np.array([w[ids == j].sum() for j in range(k)]))
        n_steps.append(np.array([(ids == j).sum() for j in range(k)], float))
    omega = g ** (total - 1 - np.arange(total))[:, None]  # the weight of each step
    s, n = np.array(s_steps), np.array(n_steps)
    a = (omega * s).sum(0) / (omega * n).sum(0)
    se = np.sqrt((omega**2 * (s - a * n) ** 2).sum(0)) / (omega * n).sum(0)
    steps = (omega * n).sum(0) ** 2 / (omega**2 * n**2).sum(0)
    se *= np.sqrt(steps / (steps - 1))
    margin = student_t_quantile(confidence, steps - 1) * se
    compared = steps >= min_steps
    best_lower_bound = np.max((a - margin)[compared])
    shrunk = np.where(compared, np.minimum(a + margin - best_lower_bound, 0.0), 0.0)
    return a, se, shrunk / max(temperature, -shrunk.min() / max_log_ratio)


@pytest.mark.parametrize("max_log_ratio", [np.inf, 1.5])
def test_evidence_rule_matches_numpy(max_log_ratio):
    k, rng = 4, np.random.default_rng(1)
    options = dict(temperature=0.2, confidence=1.0, horizon=4, max_log_ratio=max_log_ratio)
    sampler = gar_tf.SplitSampler(_constant_splits(), batch_size=32, min_steps=1, **options)
    steps = []
    for _ in range(6):
        ids = rng.integers(0, k, 32)
        rewards = rng.normal(size=32) - 0.4 * ids  # split 3 worst
        steps.append((rewards.astype(np.float32), ids))
        sampler.update(tf.constant(steps[-1][0]), tf.constant(ids))
    a, se, logits = _evidence_in_numpy(steps, k, 0.2, 1.0, 4, max_log_ratio, 1)
    np.testing.assert_allclose(sampler.logits.numpy(), logits, rtol=1e-4, atol=1e-5)
    assert logits.max() - logits.min() <= max_log_ratio + 1e-6
    if max_log_ratio < np.inf:  # the cap binds here: the worst split at exactly -L
        assert logits.min() == pytest.approx(-max_log_ratio, rel=1e-6)
    got = sampler.advantages()
    np.testing.assert_allclose([got[f"split_{j}"]["a"] for j in range(k)], a, rtol=1e-4)
    np.testing.assert_allclose([got[f"split_{j}"]["se"] for j in range(k)], se, rtol=1e-4)
    p = np.array(list(sampler.probabilities().values()))
    assert np.all(np.diff(p) <= 0) and p[3] < p[0], p  # ordered by how bad
    assert sampler.policy_optimizer.iterations.numpy() == 0  # no optimizer in this rule


def test_evidence_rule_waits_for_min_steps():
    """Split 3 is drawn in every fourth step only, so it has fewer effective steps: the
    others are compared (and the worse fall) while split 3 stays at the best's logit and
    does not set the best; nothing moves before any split spans min_steps."""
    k, rng, steps = 4, np.random.default_rng(5), []
    options = dict(temperature=0.2, confidence=1.0, horizon=50, max_log_ratio=np.inf)
    sampler = gar_tf.SplitSampler(_constant_splits(), batch_size=32, min_steps=8, **options)
    for t in range(12):
        ids = rng.integers(0, k if t % 4 == 0 else k - 1, 32)
        rewards = rng.normal(size=32) - 0.5 * ids + 3.0 * (ids == 3)  # split 3 looks best
        steps.append((rewards.astype(np.float32), ids))
        sampler.update(tf.constant(steps[-1][0]), tf.constant(ids))
        if t < 6:  # fewer than 8 effective steps everywhere
            np.testing.assert_array_equal(sampler.logits.numpy(), np.zeros(k))
    *_, logits = _evidence_in_numpy(steps, k, 0.2, 1.0, 50, np.inf, 8)
    np.testing.assert_allclose(sampler.logits.numpy(), logits, rtol=1e-4, atol=1e-5)
    assert logits[3] == 0.0 and logits[0] == 0.0 and logits[2] < logits[1] < 0.0, logits


def test_evidence_rule_keeps_indistinguishable_splits_level():
    rng = np.random.default_rng(2)
    sampler = gar_tf.SplitSampler(_constant_splits(), batch_size=64, min_steps=1)
    for _ in range(30):
        ids = rng.integers(0, 4, 64)
        sampler.update(tf.constant(rng.normal(size=64).astype(np.float32)), tf.constant(ids))
    p = np.array(list(sampler.probabilities().values()))
    assert np.ptp(p) < 0.02, p  # pure noise: (almost) nothing moves
    unseen = gar_tf.SplitSampler(_constant_splits(), batch_size=8)
    unseen.update(tf.constant([1.0, -1.0, 0.5, 2.0]), tf.constant([0, 0, 1, 1]))
    assert np.isinf(unseen.advantages()["split_3"]["se"])
    assert unseen.advantages()["split_3"]["shrunk"] == 0.0  # never drawn: no evidence


def test_evidence_rule_does_not_move_on_one_step():
    """One step gives the means but no spread between steps: the mixture stays uniform (it
    moved on the first step whatever the confidence before se had the G / (G - 1) factor)."""
    sampler = gar_tf.SplitSampler(_constant_splits(), batch_size=8, confidence=100.0, min_steps=1)
    ids = tf.constant([0, 0, 1, 1, 2, 2, 3, 3])
    sampler.update(tf.constant([3.0, 2.0, 0.0, 0.1, -1.0, -2.0, 0.5, 0.4]), ids)
    advantages = sampler.advantages()
    assert advantages["split_0"]["a"] > 0 > advantages["split_2"]["a"]
    assert all(np.isinf(a["se"]) for a in advantages.values())
    np.testing.assert_array_equal(sampler.logits.numpy(), np.zeros(4))
    sampler.update(tf.constant([2.5, 2.0, 0.2, 0.0, -1.5, -2.0, 0.3, 0.5]), ids)
    assert all(np.isfinite(a["se"]) for a in sampler.advantages().values())
    np.testing.assert_array_equal(sampler.logits.numpy(), np.zeros(4))  # c = 100: still noise


def test_rules_take_only_their_own_options():
    splits = _constant_splits()
    with pytest.raises(ValueError, match="rule must be one of"):
        gar_tf.SplitSampler(splits, batch_size=4, rule="doge")
    with pytest.raises(ValueError, match="entropy belong\\(s\\) to rule='reinforce'"):
        gar_tf.SplitSampler(splits, batch_size=4, entropy=0.1)
    with pytest.raises(ValueError, match="temperature belong\\(s\\) to rule='evidence'"):
        gar_tf.SplitSampler(splits, batch_size=4, rule="reinforce", temperature=0.1)
    for bad in (
        {"temperature": 0.0},
        {"confidence": -1},
        {"horizon": 0.5},
        {"temperature": True},
        {"max_log_ratio": 0},
        {"temperature": float("inf")},
        {"min_steps": 0.5},
    ):
        with pytest.raises(ValueError, match=f"{next(iter(bad))} must be a number"):
            gar_tf.SplitSampler(splits, batch_size=4, **bad)
    with pytest.raises(ValueError, match="min_steps=30 can never be reached with horizon=10"):
        gar_tf.SplitSampler(splits, batch_size=4, horizon=10)  # at most 2 H - 1 = 19
    with pytest.raises(ValueError, match="entropy must be a number >= 0"):
        gar_tf.SplitSampler(splits, batch_size=4, rule="reinforce", entropy=float("nan"))
    with pytest.raises(ValueError, match="advantages\\(\\) is kept by rule='evidence'"):
        gar_tf.SplitSampler(splits, batch_size=4, rule="reinforce").advantages()


def test_get_config_says_what_the_sampler_does():
    splits = _constant_splits()
    config = gar_tf.SplitSampler(splits, batch_size=4, temperature=0.1, seed=3).get_config()
    assert config["rule"] == "evidence" and config["temperature"] == 0.1
    assert (config["confidence"], config["horizon"], config["seed"]) == (1.75, 300.0, 3)
    assert (config["max_log_ratio"], config["min_steps"]) == (3.0, 30.0)
    assert "entropy" not in config and "policy_optimizer" not in config
    reference = gar_tf.SplitSampler(splits, batch_size=4, rule="reinforce", entropy=0.2)
    config = reference.get_config()
    assert (config["rule"], config["entropy"]) == ("reinforce", 0.2)
    assert config["policy_optimizer"]["class_name"] == "Adam" and "temperature" not in config
    assert config["names"] == [f"split_{i}" for i in range(4)]


@pytest.mark.parametrize("rule", ["evidence", "reinforce"])
def test_non_finite_rewards_skip_the_update_with_a_warning(capfd, rule):
    sampler = gar_tf.SplitSampler(_constant_splits(), batch_size=4, rule=rule)
    sampler.update(tf.constant([np.nan, 1.0, np.inf, 0.0]), tf.constant([0, 1, 2, 3]))
    assert "non-finite rewards" in capfd.readouterr().err
    np.testing.assert_array_equal(sampler.logits.numpy(), np.zeros(4))
    assert int(sampler.skipped_updates.numpy()) == 1
    assert all(np.isnan(v) for v in sampler.take_mean_rewards().values())
    if rule == "evidence":
        assert all(not v.numpy().any() for v in sampler.statistics)


class TestBadInput:
    def test_batch_size(self):
        for bad in (0, -3, 2.5):
            with pytest.raises(ValueError, match="batch_size must be a positive integer"):
                gar_tf.SplitSampler(_constant_splits(), batch_size=bad)

    def test_empty_split(self):
        splits = _constant_splits()
        splits[1] = splits[1].take(0)
        with pytest.raises(ValueError, match="Split 'split_1' is empty"):
            gar_tf.SplitSampler(splits, batch_size=4)

    def test_empty_split_of_unknown_size(self):
        splits = _constant_splits()
        splits[2] = splits[2].filter(lambda x, y: False)
        with pytest.raises(ValueError, match="Split 'split_2' is empty"):
            gar_tf.SplitSampler(splits, batch_size=4)

    def test_batched_split(self):
        splits = [s.batch(3) for s in _constant_splits()]
        with pytest.raises(ValueError, match="looks batched"):
            gar_tf.SplitSampler(splits, batch_size=4)
        sequences = tf.data.Dataset.from_generator(  # variable length, but unbatched
            lambda: ((np.ones(n, np.float32), 0) for n in (2, 3)),
            output_signature=(tf.TensorSpec([None]), tf.TensorSpec([], tf.int32)),
        )
        gar_tf.SplitSampler([sequences, sequences], batch_size=2)

    def test_different_element_specs(self):
        splits = _constant_splits()
        splits[3] = splits[3].map(lambda x, y: (tf.concat([x, x], 0), y))
        with pytest.raises(ValueError, match="same element spec"):
            gar_tf.SplitSampler(splits, batch_size=4)

    def test_names(self):
        with pytest.raises(ValueError, match="4 distinct strings"):
            gar_tf.SplitSampler(_constant_splits(), batch_size=4, names=["a", "b"])
        with pytest.raises(ValueError, match="4 distinct strings"):
            gar_tf.SplitSampler(_constant_splits(), batch_size=4, names=["a", "a", "b", "c"])
        with pytest.raises(ValueError, match="dict already names"):
            gar_tf.SplitSampler(dict(a=_constant_splits()[0]), batch_size=4, names=["a"])

    def test_one_split_and_floor(self):
        with pytest.raises(ValueError, match="at least 2 splits"):
            gar_tf.SplitSampler(_constant_splits()[:1], batch_size=4)
        with pytest.raises(ValueError, match="min_probability"):
            gar_tf.SplitSampler(_constant_splits(), batch_size=4, min_probability=0.25)

    def test_not_a_dataset_and_bad_elements(self):
        with pytest.raises(TypeError, match="not a tf.data.Dataset"):
            gar_tf.SplitSampler([np.zeros(3), np.zeros(3)], batch_size=4)
        single = tf.data.Dataset.from_tensor_slices(np.zeros((4, 2), np.float32))
        with pytest.raises(ValueError, match=r"\(x, y\) or \(x, y, sample_weight\)"):
            gar_tf.SplitSampler([single, single], batch_size=4)


def test_fit_moves_probability_away_from_label_noise_and_logs(tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)

    def split(noisy):
        x = rng.normal(size=(1000, 8)).astype(np.float32)
        y = (x[:, 0] + x[:, 1] > 0).astype(np.int32)
        if noisy:
            y = rng.integers(0, 2, len(y)).astype(np.int32)
        return tf.data.Dataset.from_tensor_slices((x, y))

    sampler = gar_tf.SplitSampler(
        {"clean_a": split(False), "clean_b": split(False), "noisy": split(True)},
        batch_size=64,
        seed=0,
        rule="evidence",
    )
    logger = gar_tf.callbacks.SplitSamplerLogger(sampler, every=20, log_dir=str(tmp_path))
    backbone = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(2)]
    )
    model = gar_tf.GARModel(backbone, policies=[sampler], reward="next-minus-current")
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(sampler.dataset(), steps_per_epoch=100, epochs=2, callbacks=[logger], verbose=0)
    p = sampler.probabilities()
    assert p["noisy"] < 0.2 < min(p["clean_a"], p["clean_b"])
    assert [h["step"] for h in logger.history] == list(range(0, 201, 20))
    assert (
        logger.history[-1]["mean_rewards"]["noisy"] < logger.history[-1]["mean_rewards"]["clean_a"]
    )
    assert any((tmp_path / "split_sampler").glob("*.tfevents.*"))
    png = gar_tf.plots.plot_split_probabilities(logger.history, tmp_path / "p.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unseeded_samplers_draw_different_mixtures():
    draws = [
        _counts(gar_tf.SplitSampler(_constant_splits(), batch_size=64).dataset().take(3), 4)
        for _ in range(2)
    ]
    assert not np.array_equal(*draws)


@pytest.mark.parametrize("confidence", [0.5, 1.5, 3.0])
def test_evidence_bounds_widen_to_student_t_with_few_steps(confidence):
    """With G effective steps the bound is Student's t with G - 1 degrees of freedom at the
    normal level of c: wide after two steps (Cauchy for G = 2), c itself after many."""
    dof = np.array([1.0, 1.7, 4.0, 30.0, 600.0], np.float32)
    got = evidence.student_t_quantile(confidence, tf.constant(dof)).numpy()
    np.testing.assert_allclose(got, student_t_quantile(confidence, dof), rtol=2e-4)
    assert np.all(np.diff(got) < 0) and confidence < got[-1] < 1.01 * confidence


@pytest.mark.parametrize("confidence, level", [(None, True), (1.5, False)])
def test_evidence_rule_default_never_moves_on_pure_noise(confidence, level):
    """Four equal splits tested at every step: the defaults (c = 1.75, t bounds, compared from
    30 effective steps) keep them exactly level at every step of this run; c = 1.5 is
    crossed by chance on the same rewards."""
    sampler = gar_tf.SplitSampler(_constant_splits(), batch_size=128, confidence=confidence)
    rng, spreads = np.random.default_rng(3), []
    for _ in range(150):
        ids = rng.integers(0, 4, 128)
        rewards = rng.normal(size=128) + 0.3 * rng.normal(size=4)[ids]
        sampler.update(tf.constant(rewards.astype(np.float32)), tf.constant(ids))
        spreads.append(np.ptp(list(sampler.probabilities().values())))
    assert (max(spreads) == 0.0) == level, max(spreads)
