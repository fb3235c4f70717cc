"""Faults and bad input: each gives a clear error or a logged skip and leaves the model,
the policy and the checkpoint consistent. docs/reliability.md lists them all, with the
tests elsewhere that already cover some of them."""

import json
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import gar_tf

L = keras.layers
LOGITS_LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
B = 8


class Categorical(gar_tf.Policy):
    """A softmax over 3 actions that come with the data as ``{"cat": ids}``."""

    def __init__(self, **kwargs):
        super().__init__(acts_in="pipeline", name="cat", **kwargs)
        self.logits = self.add_policy_weight("logits", (3,))

    def sample(self, batch_size):
        raise AssertionError("an in-pipeline policy is never asked to sample")

    def log_prob(self, actions):
        return tf.gather(tf.nn.log_softmax(self.logits.value), actions)


def _backbone(hidden=True, seed=0):
    keras.utils.set_random_seed(seed)
    layers = [L.Dense(6, activation="tanh")] if hidden else []
    return keras.Sequential([keras.Input((5,)), *layers, L.Dense(3)])


def _arrays(n):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    return x, (np.arange(n) % 3).astype(np.int32), rng.integers(0, 3, n).astype(np.int32)


def _dataset(x, y, actions):
    data = tf.data.Dataset.from_tensor_slices((x, y, actions))
    return data.map(lambda a, b, c: (a, b, None, {"cat": c})).batch(B)


def _gar(optimizer=None, hidden=True, **kwargs):
    policy = Categorical()
    model = gar_tf.GARModel(_backbone(hidden), [policy], **kwargs)
    model.compile(optimizer=optimizer or keras.optimizers.SGD(0.1), loss=LOGITS_LOSS)
    return model, policy


def _state(model):
    """Everything a step changes except the optimizers' iteration counters: the model's
    and the policies' weights (policy weights, ``skipped_updates``) and optimizer slots."""
    variables = list(model.weights)
    for optimizer in [model.optimizer] + [p.policy_optimizer for p in model.policies]:
        variables += [v for v in optimizer.variables if "iteration" not in v.path]
    return [(v.path, v.numpy().copy()) for v in variables]


def _assert_same_state(a, b):
    assert len(a) == len(b)
    for (path, value), (_, expected) in zip(a, b):
        np.testing.assert_array_equal(value, expected, err_msg=path)


class Snapshot(keras.callbacks.Callback):
    """Keeps the state after each completed batch (the last one wins)."""

    def __init__(self):
        super().__init__()
        self.batches, self.state, self.own = 0, None, None

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        self.state = _state(self.model)
        self.own = {}
        self.model.save_own_variables(self.own)


def _finite(policy):
    return all(np.isfinite(w.numpy()).all() for w in policy.policy_weights)


# NaN / Inf ------------------------------------------------------------------------------


def test_nan_input_skips_policy_updates_counts_them_and_fit_keeps_going(capfd):
    """One NaN input in batch 2 of 6: its NaN gradient reaches the model (as in plain
    Keras), so every reward from step 2 on is NaN: 4 skipped updates, 1 applied."""
    x, y, actions = _arrays(6 * B)
    x[2 * B + 3, 2] = np.nan
    model, policy = _gar()
    history = model.fit(_dataset(x, y, actions), verbose=0)
    assert history.history["policy_updates_skipped"] == [4.0]
    assert int(policy.skipped_updates.numpy()) == 4
    assert int(policy.policy_optimizer.iterations.numpy()) == 1
    assert _finite(policy) and np.any(policy.logits.numpy() != 0)
    assert "got non-finite rewards; update skipped" in capfd.readouterr().err
    # Not the library's to fix: the optimizer applied the NaN gradient, as plain Keras does.
    assert not all(np.isfinite(w).all() for w in model.backbone.get_weights())


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_loss_scale_optimizer_also_skips_the_model_step_and_the_checkpoint_round_trips(
    value, tmp_path
):
    """``LossScaleOptimizer`` skips non-finite model steps: only the two updates that see
    the bad batch (its comparison gradient, then its own rewards) are skipped."""
    x, y, actions = _arrays(6 * B)
    x[2 * B + 3, 2] = value
    model, policy = _gar(keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1)))
    history = model.fit(_dataset(x, y, actions), verbose=0)
    assert history.history["policy_updates_skipped"] == [2.0]
    assert int(policy.policy_optimizer.iterations.numpy()) == 3
    assert _finite(policy)
    assert all(np.isfinite(w).all() for w in model.backbone.get_weights())

    path = tmp_path / "after_skip.weights.h5"
    model.save_weights(path)
    fresh, fresh_policy = _gar(keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1)))
    fresh.build((None, 5))
    fresh.optimizer.build(fresh.trainable_variables)  # else its loss scale is not loaded
    fresh.load_weights(path)
    _assert_same_state(_state(fresh), _state(model))
    assert int(fresh_policy.skipped_updates.numpy()) == 2
    assert int(fresh_policy.policy_optimizer.iterations.numpy()) == 3
    assert int(fresh.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy())
    fresh.fit(_dataset(*_arrays(2 * B)), verbose=0)  # and it trains on
    assert int(fresh_policy.policy_optimizer.iterations.numpy()) == 3 + 1


@pytest.mark.parametrize("raise_error", [False, True])
def test_terminate_on_nan_stops_at_the_nan_batch(raise_error):
    x, y, actions = _arrays(6 * B)
    x[2 * B + 3, 2] = np.nan
    model, policy = _gar()
    stop = keras.callbacks.TerminateOnNaN(raise_error=raise_error)
    if raise_error:
        with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 2"):
            model.fit(_dataset(x, y, actions), epochs=3, callbacks=[stop], verbose=0)
    else:
        history = model.fit(_dataset(x, y, actions), epochs=3, callbacks=[stop], verbose=0)
        assert len(history.history["loss"]) == 1 and model.stop_training
        assert history.history["policy_updates_skipped"] == [1.0]
    assert int(model.optimizer.iterations.numpy()) == 3  # batches 0, 1 and the NaN batch 2
    assert int(policy.policy_optimizer.iterations.numpy()) == 1
    assert int(policy.skipped_updates.numpy()) == 1 and _finite(policy)


def test_reward_overflow_with_finite_loss_skips_only_that_update():
    """An input of 1e20 gives a finite loss and gradient but an alignment that overflows
    float32 (reward "same": the batch with itself): one skip, the model stays finite."""
    x, y, actions = _arrays(4 * B)
    x[B + 3] = 1e20
    model, policy = _gar(hidden=False, reward="same")
    history = model.fit(_dataset(x, y, actions), verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert history.history["policy_updates_skipped"] == [1.0]
    assert int(policy.policy_optimizer.iterations.numpy()) == 3 and _finite(policy)
    assert all(np.isfinite(w).all() for w in model.backbone.get_weights())


def test_reward_statistics_leave_out_skipped_updates():
    x, y, actions = _arrays(6 * B)
    x[2 * B + 3, 2] = np.nan
    model, _ = _gar(keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1)))
    history = model.fit(_dataset(x, y, actions), verbose=0)
    assert history.history["policy_updates_skipped"] == [2.0]
    assert np.isfinite(history.history["reward_mean"][0])
    assert np.isfinite(history.history["reward_std"][0])


# Last partial batch ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "reward, updates", [("next", 2 * 5 - 1), ("next-minus-current", 2 * 5 - 1), ("same", 2 * 5)]
)
def test_last_partial_batch(reward, updates):
    """37 examples in batches of 8 (the last has 5), 2 epochs: a policy update for every
    step with a reward, including 5 -> 8 examples across the epoch boundary."""
    model, policy = _gar(reward=reward)
    history = model.fit(_dataset(*_arrays(37)), epochs=2, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 2 * 5
    assert int(policy.policy_optimizer.iterations.numpy()) == updates
    assert history.history["policy_updates_skipped"] == [0.0, 0.0]
    assert all(np.isfinite(v).all() for v in history.history.values()) and _finite(policy)


def test_last_partial_batch_with_augmentation_and_a_clean_slice():
    """21 images in batches of 8 (8, 8, 5), the last 2 of each batch clean: the partial
    batch has 3 transformed, rewarded examples."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (21, 8, 8, 1)).astype(np.float32)
    policy = gar_tf.AugmentationPolicy(ops=["Identity", "Invert"], num_levels=2, max_ops=1, seed=0)
    keras.utils.set_random_seed(0)
    backbone = keras.Sequential(
        [keras.Input((8, 8, 1)), L.Rescaling(1 / 255), L.Flatten(), L.Dense(2)]
    )
    model = gar_tf.GARModel(backbone, [policy], clean_comparison="slice", clean_size=2)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=LOGITS_LOSS)
    history = model.fit(x, np.arange(21) % 2, batch_size=B, epochs=2, verbose=0)
    assert int(policy.policy_optimizer.iterations.numpy()) == 2 * 3 - 1
    assert history.history["policy_updates_skipped"] == [0.0, 0.0] and _finite(policy)


# Labels out of range --------------------------------------------------------------------


def test_labels_out_of_range_raise_and_leave_model_and_policy_as_after_the_last_good_step():
    x, y, actions = _arrays(4 * B)
    y[2 * B + 1] = 7  # 3 classes
    model, policy = _gar(keras.optimizers.Adam(0.05))
    snapshot = Snapshot()
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"label value of 7 .* valid range of \[0, 3\)"
    ):
        model.fit(_dataset(x, y, actions), callbacks=[snapshot], verbose=0)
    assert snapshot.batches == 2
    _assert_same_state(_state(model), snapshot.state)
    assert int(policy.policy_optimizer.iterations.numpy()) == 1
    # Keras may count the failed step in model.optimizer.iterations (plain Keras too).
    model.fit(_dataset(*_arrays(3 * B)), verbose=0)  # good data trains on
    assert int(policy.policy_optimizer.iterations.numpy()) == 1 + 2 and _finite(policy)


def test_failed_step_keeps_the_pending_state_of_the_last_good_step():
    x, y, actions = _arrays(4 * B)
    y[2 * B + 1] = 7
    model, _ = _gar()
    snapshot = Snapshot()
    with pytest.raises(tf.errors.InvalidArgumentError):
        model.fit(_dataset(x, y, actions), callbacks=[snapshot], verbose=0)
    own = {}
    model.save_own_variables(own)  # what model.save_weights writes for the GARModel itself
    assert own.keys() == snapshot.own.keys()
    for key in own:
        np.testing.assert_array_equal(np.asarray(own[key]), np.asarray(snapshot.own[key]), key)


def test_backup_from_another_reward_mode_loads_but_its_pending_state_is_dropped(tmp_path):
    """A BackupAndRestore checkpoint written with reward="next" resumed with
    "next-minus-current" (which keeps one more tensor between steps): weights load, the
    pending state does not fit, so the first step gets no reward instead of a wrong one."""
    writer, written = _gar()
    writer.fit(_dataset(*_arrays(3 * B)), verbose=0)
    writer.save_weights(tmp_path / "latest.weights.h5")  # what BackupAndRestore reads
    model, policy = _gar(reward="next-minus-current")
    model.build((None, 5))
    with pytest.warns(UserWarning, match="restored pending state does not fit this model"):
        model.fit(
            _dataset(*_arrays(3 * B)),
            callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path))],
            verbose=0,
        )
    assert int(written.policy_optimizer.iterations.numpy()) == 2
    assert int(policy.policy_optimizer.iterations.numpy()) == 2 + (3 - 1)
    assert _finite(policy)


def test_input_shape_change_between_fits_is_a_clear_error():
    """The state kept between steps has the static input shape of the first fit: data of
    another sequence length later is refused before any step (a dataset that declares
    the length as None trains on any length)."""
    keras.utils.set_random_seed(0)
    backbone = keras.Sequential(
        [keras.Input((None, 3)), L.Dense(4), L.GlobalAveragePooling1D(), L.Dense(3)]
    )
    policy = Categorical()
    model = gar_tf.GARModel(backbone, [policy])
    model.compile(optimizer="sgd", loss=LOGITS_LOSS)

    def data(length):
        x = np.random.default_rng(length).normal(size=(2 * B, length, 3)).astype(np.float32)
        return _dataset(x, *_arrays(2 * B)[1:])

    model.fit(data(4), verbose=0)
    before = _state(model)
    with pytest.raises(ValueError, match="the tensors to keep between steps changed"):
        model.fit(data(6), verbose=0)
    _assert_same_state(_state(model), before)
    assert int(policy.policy_optimizer.iterations.numpy()) == 1


# Images of wrong rank, channels or dtype; batches of the wrong structure ----------------


@pytest.mark.parametrize(
    "shape, dtype, error, message",
    [
        ((6, 6), np.float32, ValueError, r"images must be \[B, H, W, C\]"),
        ((6, 6, 2), np.float32, ValueError, "1 or 3 channels"),
        ((6, 6, 1), np.int32, TypeError, "uint8 or float"),
    ],
)
def test_bad_images_for_an_augmentation_policy_fail_before_any_step(shape, dtype, error, message):
    policy = gar_tf.AugmentationPolicy(ops=["Identity", "Invert"], num_levels=2, max_ops=1, seed=0)
    backbone = keras.Sequential([keras.Input(shape), L.Flatten(), L.Dense(2)])
    model = gar_tf.GARModel(backbone, [policy])
    model.compile(optimizer="sgd", loss=LOGITS_LOSS)
    before = _state(model)
    with pytest.raises(error, match=message):
        model.fit(np.zeros((16, *shape), dtype), np.zeros(16), batch_size=B, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 0
    _assert_same_state(_state(model), before)  # incl. the policy's RNG stream


def test_four_element_batch_without_an_actions_dict_is_a_clear_error():
    x, y, actions = _arrays(2 * B)
    data = tf.data.Dataset.from_tensor_slices((x, y, np.ones(2 * B, np.float32), actions))
    model, _ = _gar()
    with pytest.raises(ValueError, match="4-element batch must be .* actions a dict"):
        model.fit(data.batch(B), verbose=0)


# Unknown op names, corrupt or incompatible exports --------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    policy = gar_tf.AugmentationPolicy(ops=["Identity", "Invert", "FlipUD"], num_levels=3, seed=0)
    path = gar_tf.export_policy(policy, tmp_path_factory.mktemp("export") / "policy", channels=1)
    return path, json.loads((path / "policy.json").read_text())


DROP = object()


def _copy(exported, tmp_path, **summary_changes):
    """A copy of the export with ``policy.json`` changed (``DROP``: key removed)."""
    source, summary = exported
    path = shutil.copytree(source, tmp_path / "policy")
    summary = {**summary, **summary_changes}
    (path / "policy.json").write_text(
        json.dumps({k: v for k, v in summary.items() if v is not DROP})
    )
    return path


def _config(exported, **changes):
    return {**exported[1]["config"], **changes}


@pytest.mark.parametrize(
    "case, message",
    [
        ("unknown op", "unknown augmentation op 'Teleport'"),
        ("config key of a newer gar_tf", "shiny_option"),
        ("config does not match the weights", r"level_logits has shape \(1, 3, 3\)"),
        ("no config", r"Corrupt policy export .* unreadable \('config'\)"),
        ("no format version", r"Corrupt policy export .* unreadable \('format_version'\)"),
        ("truncated saved_model.pb", "Corrupt policy export .* cannot load the SavedModel"),
        ("no variables", "Corrupt policy export .* cannot load the SavedModel"),
    ],
)
def test_exports_with_unknown_ops_or_incompatible_config_raise_value_error(
    exported, tmp_path, case, message
):
    changes = {
        "unknown op": dict(config=_config(exported, ops=["Identity", "Invert", "Teleport"])),
        "config key of a newer gar_tf": dict(config=_config(exported, shiny_option=3)),
        "config does not match the weights": dict(config=_config(exported, num_levels=5)),
        "no config": dict(config=DROP),
        "no format version": dict(format_version=DROP),
    }.get(case, {})
    path = _copy(exported, tmp_path, **changes)
    if case == "truncated saved_model.pb":
        (path / "saved_model.pb").write_bytes((path / "saved_model.pb").read_bytes()[:100])
    if case == "no variables":
        shutil.rmtree(path / "variables")
    with pytest.raises(ValueError, match=message):
        gar_tf.load_policy(path)


def test_export_whose_config_is_not_a_mapping_is_reported_corrupt(exported, tmp_path):
    with pytest.raises(ValueError, match="Corrupt policy export"):
        gar_tf.load_policy(_copy(exported, tmp_path, config=[1, 2]))


def test_export_with_a_string_format_version_names_it_unambiguously(exported, tmp_path):
    with pytest.raises(ValueError, match="format version '1'"):
        gar_tf.load_policy(_copy(exported, tmp_path, format_version="1"))


def test_a_loaded_policy_cannot_be_trained(exported):
    policy = gar_tf.load_policy(exported[0])
    backbone = keras.Sequential([keras.Input((6, 6, 1)), L.Flatten(), L.Dense(2)])
    model = gar_tf.GARModel(backbone, [policy])
    model.compile(optimizer="sgd", loss=LOGITS_LOSS)
    with pytest.raises(RuntimeError, match="loaded with gar_tf.load_policy and is frozen"):
        model.fit(np.zeros((16, 6, 6, 1), np.uint8), np.zeros(16), batch_size=B, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 0


# A split dataset that raises mid-run ----------------------------------------------------


def test_split_that_raises_mid_run_stops_fit_at_a_consistent_step():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    served = {"count": 0, "limit": 20}

    def flaky():  # an infinite source that fails after `limit` examples (e.g. a lost mount)
        while True:
            if served["limit"] is not None and served["count"] >= served["limit"]:
                raise OSError("disk went away")
            served["count"] += 1
            yield x[served["count"] % 40], y[served["count"] % 40]

    spec = (tf.TensorSpec((4,), tf.float32), tf.TensorSpec((), tf.int32))
    splits = {
        "good": tf.data.Dataset.from_tensor_slices((x, y)),
        "flaky": tf.data.Dataset.from_generator(flaky, output_signature=spec),
    }
    sampler = gar_tf.SplitSampler(splits, batch_size=B, seed=0, shuffle_buffer=4, rule="reinforce")
    keras.utils.set_random_seed(0)
    backbone = keras.Sequential([keras.Input((4,)), L.Dense(2)])
    model = gar_tf.GARModel(backbone, [sampler])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=LOGITS_LOSS)
    snapshot = Snapshot()
    with pytest.raises(tf.errors.UnknownError, match="OSError: disk went away"):
        model.fit(sampler.dataset(), steps_per_epoch=20, epochs=2, callbacks=[snapshot], verbose=0)
    done = snapshot.batches
    assert 1 < done < 40  # mid-run
    _assert_same_state(_state(model), snapshot.state)
    assert int(sampler.policy_optimizer.iterations.numpy()) == done - 1
    assert _finite(sampler) and np.isfinite(list(sampler.probabilities().values())).all()

    served["limit"] = None  # the source is back: a new dataset() resumes training
    model.fit(sampler.dataset(), steps_per_epoch=4, verbose=0)
    assert int(sampler.policy_optimizer.iterations.numpy()) == done - 1 + 3
