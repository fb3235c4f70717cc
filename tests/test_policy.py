"""Policy.update: REINFORCE against an analytic gradient; standardisation; skipped updates."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import gar_tf


class Categorical(gar_tf.Policy):
    """A softmax over K actions, the smallest concrete policy."""

    def __init__(self, k, **kwargs):
        super().__init__(**kwargs)
        self.logits = self.add_policy_weight("logits", (k,))

    def sample(self, batch_size):
        return tf.random.categorical(self.logits.value[None], batch_size)[0]

    def log_prob(self, actions):
        return tf.gather(tf.nn.log_softmax(self.logits.value), actions)


def test_standardise_matches_numpy_per_group():
    r = np.random.default_rng(0).normal(size=12).astype(np.float32)
    w = gar_tf.standardise(r, groups=3).numpy()
    for g in range(3):
        part = r[4 * g : 4 * g + 4]
        expected = (part - part.mean()) / (part.std(ddof=1) + 1e-8)
        np.testing.assert_allclose(w[4 * g : 4 * g + 4], expected, rtol=1e-5)
    assert np.all(gar_tf.standardise(np.ones(4, np.float32)).numpy() == 0)
    uneven = gar_tf.standardise(r[:7], groups=2).numpy()  # slices r[:4] and r[4:7]
    for part, out in ((r[:4], uneven[:4]), (r[4:7], uneven[4:])):
        np.testing.assert_allclose(out, (part - part.mean()) / (part.std(ddof=1) + 1e-8), rtol=1e-5)


def test_update_follows_the_analytic_reinforce_gradient():
    k, rewards = 3, np.array([1.0, -2.0, 0.5, 3.0, 0.0, -1.0], np.float32)
    actions = np.array([0, 1, 2, 0, 1, 1])
    policy = Categorical(k, policy_optimizer=keras.optimizers.SGD(1.0), clip_value=100.0)
    policy.logits.assign(np.array([0.2, -0.1, 0.4], np.float32))
    policy.build_optimizer()
    p = tf.nn.softmax(policy.logits.value).numpy()
    w = (rewards - rewards.mean()) / (rewards.std(ddof=1) + 1e-8)
    # dJ/dz = -mean_i w_i (onehot(a_i) - p)
    grad = -np.mean(w[:, None] * (np.eye(k)[actions] - p[None]), axis=0)
    expected = policy.logits.numpy() - grad
    policy.update(tf.constant(rewards), tf.constant(actions))
    np.testing.assert_allclose(policy.logits.numpy(), expected, rtol=1e-5, atol=1e-6)
    # Positive-reward actions gain probability: action 0 had the largest weights.
    assert np.argmax(tf.nn.softmax(policy.logits.value).numpy() - p) == 0


def test_gradient_is_clipped_by_value():
    policy = Categorical(2, policy_optimizer=keras.optimizers.SGD(1.0), clip_value=0.01)
    policy.build_optimizer()
    policy.update(tf.constant([5.0, -5.0]), tf.constant([0, 1]))
    np.testing.assert_allclose(np.abs(policy.logits.numpy()), [0.01, 0.01], rtol=1e-5)


def test_non_finite_rewards_skip_the_update():
    policy = Categorical(2)
    policy.build_optimizer()
    policy.update(tf.constant([np.nan, 1.0]), tf.constant([0, 1]))
    policy.update(tf.constant([np.inf, 1.0]), tf.constant([0, 1]))
    assert int(policy.skipped_updates.numpy()) == 2
    np.testing.assert_array_equal(policy.logits.numpy(), [0.0, 0.0])


def test_policy_weights_are_invisible_to_the_model_optimizer():
    policy = Categorical(4)
    assert policy.trainable_weights == [] and policy.policy_weights == [policy.logits]
    with pytest.raises(ValueError, match="groups"):
        Categorical(2, groups=0)


def test_gar_rewards_move_the_policy_away_from_label_noise():
    """End to end through GARModel.fit: the split with random labels loses probability."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    n = 2048
    x = rng.normal(size=(n, 8)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32)
    split = rng.integers(0, 2, n).astype(np.int32)
    y = np.where(split == 1, rng.integers(0, 2, n), y).astype(np.int32)  # split 1: random labels
    data = (
        tf.data.Dataset.from_tensor_slices((x, y, split))
        .map(lambda a, b, s: (a, b, None, {"split": s}))
        .batch(64, drop_remainder=True)
    )
    policy = Categorical(
        2, name="split", acts_in="pipeline", policy_optimizer=keras.optimizers.Adam(0.02)
    )
    backbone = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(2)]
    )
    model = gar_tf.GARModel(backbone, policies=[policy])
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(data, epochs=3, verbose=0)
    p_clean, p_noisy = tf.nn.softmax(policy.logits.value).numpy()
    assert p_noisy < 0.4 < 0.6 < p_clean
