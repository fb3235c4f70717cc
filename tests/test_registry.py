"""Rule registries: one rule per type, refused duplicates, scoped registries."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import brute_force_alignment, random_direction, relative_error

import gar_tf
from gar_tf.alignment.registry import RuleRegistry


class Doubled(keras.layers.Layer):
    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], 2), name="kernel")

    def call(self, x):
        return 2.0 * (x @ self.kernel)


def _doubled_rule(layer, inputs, direction, weights):
    return {"kernel": 2.0 * (inputs @ direction["kernel"])}


def test_default_rules_cover_the_builtin_layers_and_refuse_duplicates():
    rules = gar_tf.default_rules()
    assert keras.layers.Dense in rules and keras.layers.Conv2D in rules
    with pytest.raises(ValueError, match="already registered; pass replace=True"):
        rules.register(keras.layers.Dense, weights=("kernel",))(_doubled_rule)
    rules.register(keras.layers.Dense, weights=("kernel", "bias"), replace=True)(_doubled_rule)
    assert gar_tf.default_rules().rule_for(keras.layers.Dense(2)) is not None


def test_a_scoped_registry_serves_one_engine_and_leaves_the_global_one_alone():
    model = keras.Sequential([keras.Input((3,)), Doubled()])
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    y = np.random.default_rng(1).normal(size=(4, 2)).astype(np.float32)
    model(x)
    rules = gar_tf.default_rules()
    rules.register(Doubled, weights=("kernel",), activation=None)(_doubled_rule)
    engine = gar_tf.AlignmentEngine(model, strict=True, rules=rules)
    assert engine.plan.units[0].rule is not None
    with pytest.raises(ValueError, match="strict=True"):
        gar_tf.AlignmentEngine(model, strict=True)  # the global registry has no rule
    loss = keras.losses.mean_squared_error
    direction = random_direction(model)
    r = gar_tf.per_example_alignment(model, loss, x, y, direction, strict=True, rules=rules)
    expected = brute_force_alignment(model, loss, tf.constant(x), y, direction)
    assert relative_error(r.numpy(), expected) < 1e-5


def test_registry_from_several_refuses_overlaps():
    one = RuleRegistry()
    one.register(Doubled, weights=("kernel",))(_doubled_rule)
    with pytest.raises(ValueError, match="already registered"):
        RuleRegistry([one, one])


class Unnamed(Doubled):
    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], 2))  # named "variable"


def test_a_registered_rule_that_does_not_apply_says_why():
    rules = gar_tf.default_rules()
    rules.register(Doubled, weights=("kernel",), activation=None)(_doubled_rule)
    model = keras.Sequential([keras.Input((3,)), Unnamed(name="unnamed")])
    assert rules.rule_for(model.layers[0]) is None
    why = "the rule registered for Doubled covers weights \\['kernel'\\], "
    why += "the layer has \\['variable'\\]"
    with pytest.raises(ValueError, match=f"unnamed \\({why}\\)"):
        gar_tf.AlignmentEngine(model, strict=True, rules=rules)
    with pytest.warns(UserWarning, match=f"unnamed: {why}; using the exact fallback"):
        engine = gar_tf.AlignmentEngine(model, rules=rules)
    assert engine.plan.units[0].rule is None
    assert rules.why_not(keras.layers.Dense(2)) is None  # a rule applies
    assert rules.why_not(keras.layers.PReLU()) is None  # no rule is registered
