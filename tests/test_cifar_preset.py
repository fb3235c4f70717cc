"""augment_search's CIFAR preset (the paper's setting), end to end on a tiny prepared tfds
``cifar10`` (random images, written at the registered builder's version and features) with
a tiny wide ResNet, and its pieces (coupled weight decay, Cutout, crop/flip) against
independent computations. Nothing is downloaded."""

from __future__ import annotations

import json
import math
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from gar_tf_trainers import _build, augment_search

TRAIN, TEST = 160, 32  # 16 training images per class: 128 trained on, 32 held out


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tfds data_dir holding a tiny ``cifar10`` the registered builder reads."""
    import tensorflow_datasets as tfds

    rng = np.random.default_rng(0)
    builder = tfds.builder("cifar10", data_dir=tmp_path_factory.mktemp("absent"), try_gcs=False)
    data_dir = tmp_path_factory.mktemp("tfds")

    def split(n: int, prefix: str) -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices(
            {
                "id": [f"{prefix}_{i:05d}" for i in range(n)],
                "image": rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                "label": np.arange(n) % 10,
            }
        )

    tfds.dataset_builders.store_as_tfds_dataset(
        name="cifar10",
        version=tfds.builder_cls("cifar10").VERSION,
        features=builder.info.features,
        split_datasets={"train": split(TRAIN, "train"), "test": split(TEST, "test")},
        data_dir=data_dir,
    )
    return data_dir


def test_preset_sets_defaults_that_flags_override():
    args = augment_search.parse_args(["--preset", "cifar100", "--epochs", "3"])
    assert (args.dataset, args.per_class, args.epochs) == ("cifar100", 500, 3)
    assert (args.model, args.batch_size, args.optimizer, args.learning_rate) == (
        "wrn28_10", 128, "sgd", 0.1
    )  # fmt: skip
    assert (args.lr_schedule, args.weight_decay, args.crop_pad, args.cutout) == (
        "cosine", 5e-4, 4, 16
    )  # fmt: skip
    assert (args.ops, args.max_ops, args.policy_lr, args.policy_beta1, args.ensemble) == (
        "wide", 4, 0.1, 0.0, 8
    )  # fmt: skip
    assert (args.comparison, args.held_out_share) == ("held_out", 0.2)
    assert args.logdir == "runs/augment_search_cifar100"
    assert augment_search.parse_args([]).model == "small_cnn"  # no preset: unchanged


def test_preset_end_to_end_on_a_tiny_prepared_cifar10(cifar_dir, tmp_path, monkeypatch):
    built = {}
    compile_classifier = _build.compile_classifier

    def capture(model, learning_rate, optimizer=None):
        built["model"] = model
        return compile_classifier(model, learning_rate, optimizer)

    monkeypatch.setattr(_build, "compile_classifier", capture)
    logdir = tmp_path / "run"
    result = augment_search.main(
        ["--preset", "cifar10", "--tfds-data-dir", str(cifar_dir), "--model", "wrn10_1",
         "--epochs", "1", "--per-class", "16", "--batch-size", "16", "--logdir", str(logdir)]
    )  # fmt: skip

    assert result["dataset"] == "cifar10" and result["preset"] == "cifar10"
    assert (result["train_images"], result["held_out_images"], result["steps"]) == (128, 32, 8)
    assert json.loads((logdir / "summary.json").read_text()) == result
    assert (logdir / "policy" / "policy.json").is_file()
    assert (logdir / "policy_heatmap.png").is_file()

    model = built["model"]
    backbone = model.backbone
    # After the policy (which acts before the model): crop/flip, then Cutout. Each drew in
    # each of the 8 training steps (Cutout twice: rows, columns), never at evaluation.
    crop_flip, cutout = backbone.layers[1:3]
    assert isinstance(crop_flip, _build.CropFlip) and crop_flip.pad == 4
    assert isinstance(cutout, _build.Cutout) and cutout.side == 16
    assert crop_flip.generator.state.numpy()[1] == 8
    assert cutout.generator.state.numpy()[1] == 2 * 8
    core = backbone.layers[-1]
    convs = [layer for layer in core.layers if isinstance(layer, keras.layers.Conv2D)]
    # WRN-10-1: a 16-filter stem, one block (two 3x3 convs) per stage of 16, 32, 64
    # filters, a 1x1 projection where the stride changes.
    assert sorted(c.filters for c in convs if c.kernel_size == (3, 3)) == [
        16,
        16,
        16,
        32,
        32,
        64,
        64,
    ]
    assert sorted(c.filters for c in convs if c.kernel_size == (1, 1)) == [32, 64]
    assert core.name == "wrn10_1" and backbone.output_shape == (None, 10)

    optimizer = model.optimizer
    assert isinstance(optimizer, _build.CoupledDecaySGD)
    assert optimizer.nesterov and optimizer.momentum == 0.9 and optimizer.l2 == 5e-4
    schedule = optimizer._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    for step in (0, 2, 4, 8):  # cosine from 0.1 to 0 over the run's 8 steps
        want = 0.1 * 0.5 * (1 + math.cos(math.pi * step / 8))
        assert float(schedule(step)) == pytest.approx(want, abs=1e-7)

    (policy,) = model.policies
    assert (policy.ensemble, policy.max_ops, policy.num_levels) == (8, 4, 31)
    assert len(policy.space.ops) == 19  # the wide space
    assert policy.policy_optimizer.beta_1 == 0.0
    assert float(policy.policy_optimizer.learning_rate) == pytest.approx(0.1)


def test_missing_cifar_names_the_tfds_build_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="tfds build cifar100 --data_dir DIR"):
        augment_search.main(
            ["--preset", "cifar100", "--tfds-data-dir", str(tmp_path), "--logdir",
             str(tmp_path / "run")]
        )  # fmt: skip


def test_coupled_weight_decay_is_pytorch_sgd_nesterov():
    """Three steps against PyTorch's rule, written out: g' = g + wd w, b = m b + g',
    w -= lr (g' + m b) (b = g' on the first step)."""
    lr, m, wd = 0.1, 0.9, 0.05
    w0 = np.array([1.0, -2.0, 0.5], np.float32)
    grads = [np.array(g, np.float32) for g in ([0.3, 0.1, -0.2], [-0.1, 0.4, 0.0], [0.2, 0.2, 0.2])]
    w, b = w0.astype(np.float64), None
    for g in grads:
        g = g + wd * w
        b = g if b is None else m * b + g
        w = w - lr * (g + m * b)

    variable = keras.Variable(w0)
    optimizer = _build.sgd_nesterov(lr, wd)
    for g in grads:
        optimizer.apply([tf.constant(g)], [variable])
    np.testing.assert_allclose(variable.numpy(), w, rtol=1e-5)


def _square(image: np.ndarray) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of the zero pixels, checked to be one filled box."""
    rows, cols = np.nonzero((image == 0).all(-1))
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    box = np.zeros(image.shape[:2], bool)
    box[top:bottom, left:right] = True
    np.testing.assert_array_equal((image == 0).all(-1), box)
    return top, bottom, left, right


def test_cutout_zeroes_one_clipped_16_square_in_training_only():
    """Each image loses exactly the pixels of [c - 8, c + 8) x [d - 8, d + 8) for some
    integer centre (c, d) in the image, clipped at the border (the reference's
    CutoutDefault); the rest is untouched, and inference leaves images alone."""
    images = np.random.default_rng(1).integers(1, 256, (256, 32, 32, 3)).astype(np.float32)
    layer = _build.Cutout(16, seed=3)
    out = layer(images, training=True).numpy()
    spans = {(max(c - 8, 0), min(c + 8, 32)) for c in range(32)}
    full = clipped = 0
    for before, after in zip(images, out, strict=True):
        top, bottom, left, right = _square(after)
        assert (top, bottom) in spans and (left, right) in spans
        np.testing.assert_array_equal(after[after != 0], before[after != 0])
        full += bottom - top == 16 and right - left == 16
        clipped += bottom - top < 16 or right - left < 16
    assert full > 50 and clipped > 50  # P(full) = (17/32)^2 = 0.28
    np.testing.assert_array_equal(layer(images, training=False), images)
    again = layer(images, training=True).numpy()
    assert (again != out).any()  # a new square every call


def test_crop_flip_gives_shifted_mirrored_crops_in_training_only():
    """Each image is one of the 2 x 9 x 9 mirrored or not 32x32 windows of itself
    zero-padded by 4; a new draw every call; inference leaves images alone."""
    images = np.random.default_rng(2).integers(1, 256, (8, 32, 32, 3)).astype(np.float32)
    layer = _build.CropFlip(4, seed=5)
    calls = [layer(images, training=True).numpy() for _ in range(2)]
    padded = np.pad(images, [(0, 0), (4, 4), (4, 4), (0, 0)])
    for out in calls:
        for image, source in zip(out, padded, strict=True):
            windows = [source[r : r + 32, c : c + 32] for r in range(9) for c in range(9)]
            assert any(np.array_equal(image, v) for w in windows for v in (w, w[:, ::-1]))
    assert not np.array_equal(*calls)
    np.testing.assert_array_equal(layer(images, training=False), images)
