import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

import gar_tf


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session()


def brute_force_alignment(model, loss_fn, x, y, direction, sample_weight=None):
    """(1/B) w_i <grad l_i, V> by one backward pass per example (the independent reference)."""
    batch = len(y)
    weights = np.ones(batch, np.float32) if sample_weight is None else sample_weight
    out = []
    for i in range(batch):
        xi = tf.nest.map_structure(lambda t, i=i: t[i : i + 1], x)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(loss_fn(y[i : i + 1], model(xi, training=True)))
        grads = tape.gradient(loss, model.trainable_variables)
        dot = sum(
            float(tf.reduce_sum(tf.convert_to_tensor(g) * d))
            for g, d in zip(grads, direction)
            if g is not None and d is not None
        )
        out.append(weights[i] * dot / batch)
    return np.array(out)


def random_direction(model, seed=1):
    rng = np.random.default_rng(seed)
    return [
        tf.constant(rng.normal(size=v.shape).astype(np.float32)) for v in model.trainable_variables
    ]


def relative_error(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


def student_t_quantile(confidence, dof):
    """Student's t quantile at the normal level Phi(c), per entry of ``dof``, by integrating
    the t density numerically (t = tan u on a fine grid of u in [0, pi/2))."""
    level = math.erf(confidence / math.sqrt(2.0)) / 2.0  # Phi(c) - 1/2
    u = np.linspace(0.0, np.pi / 2, 400_001)[:-1]
    quantiles = []
    for nu in np.atleast_1d(np.asarray(dof, float)).ravel():
        log_norm = math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi)
        t = np.tan(u)
        density = np.exp(log_norm - (nu + 1) / 2 * np.log1p(t * t / nu)) / np.cos(u) ** 2
        mass = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2 * np.diff(u))])
        quantiles.append(np.tan(np.interp(level, mass, u)))
    return np.reshape(quantiles, np.shape(dof))


class RecordingPolicy(gar_tf.Policy):
    """Deterministic: its actions are the example ids the data carries; update() records."""

    def __init__(self, steps, batch, **kwargs):
        super().__init__(acts_in="pipeline", name="ids", **kwargs)
        self.theta = self.add_policy_weight("theta", (1,))
        self.rewards = self.add_weight(shape=(steps, batch), initializer="zeros", trainable=False)
        self.actions = self.add_weight(
            shape=(steps, batch), initializer="zeros", dtype="int32", trainable=False
        )
        self.calls = self.add_weight(shape=(), initializer="zeros", dtype="int32", trainable=False)

    def sample(self, batch_size):
        raise AssertionError("an in-pipeline policy is never asked to sample")

    def log_prob(self, actions):
        return tf.zeros(tf.shape(actions)) + self.theta[0]

    def update(self, rewards, actions, active=True):
        def record():
            row = self.calls.value
            self.rewards.assign(tf.tensor_scatter_nd_update(self.rewards.value, [[row]], [rewards]))
            self.actions.assign(tf.tensor_scatter_nd_update(self.actions.value, [[row]], [actions]))
            self.calls.assign_add(1)

        tf.cond(active, record, lambda: None)
