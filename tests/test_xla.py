"""GARModel under XLA (jit_compile=True): same rewards as without, clear errors otherwise."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import gar_tf

BATCH, STEPS = 32, 4


def _data(drop_remainder=True):
    rng = np.random.default_rng(0)
    n = BATCH * STEPS + (0 if drop_remainder else 5)
    x = rng.normal(size=(n, 6, 6, 1)).astype(np.float32)
    y = rng.integers(0, 3, n).astype(np.int32)
    ids = rng.integers(0, 2, n).astype(np.int32)
    weights = np.ones(n, np.float32)
    data = tf.data.Dataset.from_tensor_slices((x, y, weights, {"mix": ids}))
    return data.batch(BATCH, drop_remainder=drop_remainder), (x, y)


RULES = {"reinforce": {}, "evidence": {"confidence": 0.0, "min_steps": 1}}  # move at once


def _fit(jit_compile, policies=None, drop_remainder=True, rule="reinforce"):
    data, (x, y) = _data(drop_remainder)
    keras.utils.set_random_seed(0)
    backbone = keras.Sequential(
        [
            keras.Input((6, 6, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(3),
        ]
    )
    if policies is None:
        splits = [tf.data.Dataset.from_tensor_slices((x[:8], y[:8]))] * 2
        policies = [
            gar_tf.SplitSampler(
                splits, batch_size=BATCH, seed=0, name="mix", rule=rule, **RULES[rule]
            )
        ]
    model = gar_tf.GARModel(backbone, policies=policies, reward="next-minus-current")
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    history = model.fit(data, epochs=2, verbose=0)
    return model, history


@pytest.mark.parametrize("rule", list(RULES))
def test_xla_matches_the_uncompiled_step(rule):
    compiled, h_xla = _fit(jit_compile=True, rule=rule)
    plain, h_plain = _fit(jit_compile=False, rule=rule)
    assert compiled.jit_compile and not plain.jit_compile
    sampler_xla, sampler_plain = compiled.policies[0], plain.policies[0]
    if rule == "reinforce":
        assert int(sampler_xla.policy_optimizer.iterations) == 2 * STEPS - 1
    else:
        for a, b in zip(sampler_xla.statistics, sampler_plain.statistics):
            # float32 sums of rewards over steps: XLA reorders the additions
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(sampler_xla.logits.numpy(), sampler_plain.logits.numpy(), atol=1e-6)
    assert np.abs(sampler_plain.logits.numpy()).max() > 1e-3
    for a, b in zip(compiled.backbone.weights, plain.backbone.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
    for key in ("reward_mean", "reward_std", "loss"):
        np.testing.assert_allclose(h_xla.history[key], h_plain.history[key], rtol=1e-4)


def test_xla_with_a_variable_batch_size_is_a_clear_error():
    with pytest.raises(ValueError, match="drop_remainder=True"):
        _fit(jit_compile=True, drop_remainder=False)


def test_in_step_augmentation_rules_out_xla():
    with pytest.raises(ValueError, match="no XLA kernels"):
        _fit(jit_compile=True, policies=[gar_tf.AugmentationPolicy(ops="standard", seed=0)])
    backbone = keras.Sequential(
        [keras.Input((6, 6, 1)), keras.layers.Flatten(), keras.layers.Dense(3)]
    )
    model = gar_tf.GARModel(backbone, policies=[gar_tf.AugmentationPolicy(seed=0)])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")  # "auto"
    assert model.jit_compile is False
