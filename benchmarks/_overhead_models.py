"""The TensorFlow side of benchmarks/overhead.py: the backbone, data, the three variants,
the step timer and the reward check. Imported once the flags are parsed (``--help`` stays
fast)."""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

import gar_tf

NUM_CLASSES = 10
IMAGE_SHAPE = (32, 32, 3)
SEQUENCE, VOCABULARY = 64, 1000
DENSE_SEQUENCE = 256


def _cnn(widths: tuple[int, int, int]) -> list[keras.layers.Layer]:
    a, b, dense = widths
    return [
        keras.Input(IMAGE_SHAPE),
        keras.layers.Conv2D(a, 3, activation="relu", padding="same"),
        keras.layers.Conv2D(a, 3, activation="relu", padding="same"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(b, 3, activation="relu", padding="same"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(b, 3, activation="relu", padding="same"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(dense, activation="relu"),
        keras.layers.Dense(NUM_CLASSES),
    ]


def _mlp() -> list[keras.layers.Layer]:
    return [
        keras.Input((784,)),
        keras.layers.Dense(1024, activation="relu"),
        keras.layers.Dense(1024, activation="relu"),
        keras.layers.Dense(NUM_CLASSES),
    ]


@keras.saving.register_keras_serializable("gar_tf_benchmarks")
class AddPositions(keras.layers.Layer):
    """``h + E[arange(L)]``: a learned position embedding, called on ``arange`` inside
    the layer. (Called on ``keras.ops.arange`` while building a functional model, an
    Embedding runs once, eagerly, and the model holds its output as a constant.)"""

    def __init__(self, length: int, dim: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.length, self.dim = length, dim
        self.table = keras.layers.Embedding(length, dim)

    def call(self, h):
        return h + self.table(keras.ops.arange(self.length))

    def get_config(self) -> dict:
        return {**super().get_config(), "length": self.length, "dim": self.dim}


def _dense_sequence() -> list[keras.layers.Layer]:
    return [
        keras.Input((DENSE_SEQUENCE, 256)),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(NUM_CLASSES),
    ]


def _transformer(blocks: int = 2, dim: int = 128, heads: int = 4) -> keras.Model:
    """The standard encoder input block (token + learned position embedding, the
    position embedding called on ``arange``) and ``blocks`` post-norm encoder blocks."""
    tokens = keras.Input((SEQUENCE,), dtype="int32")
    h = AddPositions(SEQUENCE, dim)(keras.layers.Embedding(VOCABULARY, dim)(tokens))
    for _ in range(blocks):
        attended = keras.layers.MultiHeadAttention(heads, dim // heads)(h, h)
        h = keras.layers.LayerNormalization()(h + attended)
        hidden = keras.layers.Dense(4 * dim, activation="relu")(h)
        h = keras.layers.LayerNormalization()(h + keras.layers.Dense(dim)(hidden))
    pooled = keras.layers.GlobalAveragePooling1D()(h)
    return keras.Model(tokens, keras.layers.Dense(NUM_CLASSES)(pooled), name="backbone")


#: name -> (description, default batch size)
BACKBONES = {
    "cnn": ("4-conv CNN (32/64 channels, Dense 128), 32x32x3", 128),
    "cnn-wide": ("the same CNN 3x wider (96/192 channels, Dense 384), 32x32x3", 128),
    "mlp": ("MLP 784-1024-1024-10", 256),
    "transformer": (
        f"2-block Transformer encoder (seq {SEQUENCE}, d 128, 4 heads, learned positions)",
        64,
    ),
    "resnet20-w64": (
        "pre-activation ResNet-20, widths 64/128/256 (BatchNorm, excluded from the reward)",
        128,
    ),
    "dense-seq": (f"2 Dense 256-256 on {DENSE_SEQUENCE} positions per example, pooled", 64),
}


def build_backbone(seed: int, name: str = "cnn") -> keras.Model:
    """One of :data:`BACKBONES`, seeded."""
    keras.utils.set_random_seed(seed)
    if name == "transformer":
        return _transformer()
    if name == "resnet20-w64":
        return gar_tf.backbones.small_resnet(IMAGE_SHAPE, NUM_CLASSES, depth=20, width=64)
    layers = {"cnn": lambda: _cnn((32, 64, 128)), "cnn-wide": lambda: _cnn((96, 192, 384))}
    layers["mlp"], layers["dense-seq"] = _mlp, _dense_sequence
    return keras.Sequential(layers[name](), name="backbone")


def make_dataset(num_batches: int, batch_size: int, seed: int, model: keras.Model):
    """``num_batches`` fixed batches of random inputs shaped for ``model`` (normal floats or
    uniform tokens) and random labels."""
    rng = np.random.default_rng(seed)
    n = num_batches * batch_size
    spec = model.inputs[0]
    shape = (n, *spec.shape[1:])
    if "int" in str(spec.dtype):
        x = rng.integers(0, VOCABULARY, shape).astype(np.int32)
    else:
        x = rng.standard_normal(shape, dtype=np.float32)
    y = rng.integers(0, NUM_CLASSES, n)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size, drop_remainder=True)


def dataset_batch(model: keras.Model, args: argparse.Namespace):
    """One input batch of :func:`make_dataset`."""
    return next(iter(make_dataset(1, args.batch_size, args.seed, model)))[0]


class VmapRewardModel(keras.Model):
    """The "next" reward the naive way, as a baseline for GARModel.

    Each step, ``tf.vectorized_map`` gives the per-example gradients ``g_i`` of
    this batch's share of the mean loss. The batch gradient is ``G = sum_i g_i``
    (``batch_gradient="sum"``) or comes from an ordinary batched backward pass
    (``"backward"``). The rewards of the previous batch are ``r_i = <g_i^prev, G>``;
    then this batch's ``g_i`` are stored, flattened, in a non-trainable variable,
    and the optimizer steps on ``G``. Logs ``reward_mean``, ``reward_std`` and
    ``reward_positive`` like GARModel.
    """

    def __init__(
        self, backbone: keras.Model, batch_size: int, batch_gradient: str = "sum", **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.backbone = backbone
        self.batch_gradient = batch_gradient
        self.sizes = [int(np.prod(v.shape)) for v in backbone.trainable_variables]
        self.pending = self.add_weight(
            shape=(batch_size, sum(self.sizes)), initializer="zeros", trainable=False
        )
        self.pending_valid = self.add_weight(shape=(), initializer="zeros", trainable=False)
        self.last_rewards = self.add_weight(
            shape=(batch_size,), initializer="zeros", trainable=False
        )
        self.reward_mean = keras.metrics.Mean(name="reward_mean")
        self.reward_std = keras.metrics.Mean(name="reward_std")
        self.reward_positive = keras.metrics.Mean(name="reward_positive")

    def call(self, inputs, training=None):
        return self.backbone(inputs, training=training)

    def fit(self, *args, **kwargs):
        self.pending_valid.assign(0.0)
        return super().fit(*args, **kwargs)

    def train_step(self, data):
        x, y = data
        variables = self.backbone.trainable_variables
        batch = tf.shape(x)[0]

        def one(example):
            xi, yi = example
            with tf.GradientTape() as tape:
                logits = self.backbone(xi[None], training=True)
                loss = tf.reduce_sum(self.loss.call(yi[None], logits))
            grads = tape.gradient(loss, variables)
            return logits[0], loss, tf.concat([tf.reshape(g, [-1]) for g in grads], 0)

        if self.batch_gradient == "sum":
            logits, losses, per_example = tf.vectorized_map(one, (x, y))
            per_example = per_example / tf.cast(batch, per_example.dtype)
            flat_gradient = tf.reduce_sum(per_example, axis=0)
        else:
            with tf.GradientTape() as tape:
                logits = self.backbone(x, training=True)
                losses = self.loss.call(y, logits)
                mean_loss = tf.reduce_mean(losses)
            grads = tape.gradient(mean_loss, variables)
            flat_gradient = tf.concat([tf.reshape(g, [-1]) for g in grads], 0)
            per_example = tf.vectorized_map(one, (x, y))[2]
            per_example = per_example / tf.cast(batch, per_example.dtype)

        def rewarded():
            rewards = tf.linalg.matvec(self.pending, flat_gradient)
            self.last_rewards.assign(rewards)
            self.reward_mean.update_state(tf.reduce_mean(rewards))
            self.reward_std.update_state(tf.math.reduce_std(rewards))
            self.reward_positive.update_state(tf.reduce_mean(tf.cast(rewards > 0, tf.float32)))
            return rewards

        tf.cond(self.pending_valid > 0, rewarded, lambda: tf.zeros([0]))
        self.pending.assign(per_example)
        self.pending_valid.assign(1.0)
        gradient = [
            tf.reshape(g, v.shape) for g, v in zip(tf.split(flat_gradient, self.sizes), variables)
        ]
        self.optimizer.apply(gradient, variables)
        self._loss_tracker.update_state(tf.reduce_mean(losses), sample_weight=batch)
        return self.compute_metrics(x, y, logits)


def make_variant(
    name: str, backbone: keras.Model, weights: list[np.ndarray], args: argparse.Namespace
) -> keras.Model:
    """A compiled ``name`` variant around a fresh clone of ``backbone`` at ``weights``."""
    clone = keras.models.clone_model(backbone)
    clone.set_weights(weights)
    if name == "plain":
        model = clone
    elif name in ("gar", "gar-tangent"):
        model = gar_tf.GARModel(clone, paths="auto" if name == "gar" else "tangent")
    else:
        model = VmapRewardModel(clone, args.batch_size, args.vmap_gradient)
    model.compile(
        optimizer=keras.optimizers.SGD(args.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=1,
    )
    return model


class StepTimer(keras.callbacks.Callback):
    """Wall time of every training batch but the first of each ``fit`` call."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []
        self._start = 0.0

    def on_train_batch_begin(self, batch: int, logs=None) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        if batch > 0:
            self.times.append(time.perf_counter() - self._start)


def time_variants(
    models: dict[str, keras.Model], dataset: tf.data.Dataset, args: argparse.Namespace
) -> dict[str, list[list[float]]]:
    """Per variant, the timed step durations (seconds) of each timed round."""
    rounds: dict[str, list[list[float]]] = {name: [] for name in models}
    names = list(models)
    for r in range(args.warmup_rounds + args.rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            timer = StepTimer()
            models[name].fit(dataset, epochs=1, verbose=0, shuffle=False, callbacks=[timer])
            if r >= args.warmup_rounds:
                rounds[name].append(timer.times)
        print(f"  round {r + 1}/{args.warmup_rounds + args.rounds} done", flush=True)
    return rounds


def check_rewards(
    backbone: keras.Model, weights: list[np.ndarray], args: argparse.Namespace, with_vmap=True
) -> dict[str, float]:
    """Rewards of batch 0 against G_1 from GARModel, the vmap baseline and a reference.

    The reference is ``gar_tf.per_example_alignment`` at the initial weights,
    with ``G_1`` the gradient on batch 1 after one plain SGD step on batch 0.
    GARModel exposes only its logged statistics, the baseline its reward vector.
    """
    two = make_dataset(2, args.batch_size, args.seed + 1, backbone)
    (x0, y0), (x1, y1) = list(two)
    logs = {}
    for name in ("gar", "vmap") if with_vmap else ("gar",):
        model = make_variant(name, backbone, weights, args)
        history = model.fit(two, epochs=1, verbose=0, shuffle=False)
        logs[name] = {k: v[-1] for k, v in history.history.items()}
        if name == "vmap":
            vmap_rewards = model.last_rewards.numpy()
    plain = make_variant("plain", backbone, weights, args)
    plain.fit(two.take(1), epochs=1, verbose=0, shuffle=False)
    with tf.GradientTape() as tape:
        loss = plain.loss(y1, plain(x1, training=True))
    direction = tape.gradient(loss, plain.trainable_variables)
    at_start = keras.models.clone_model(backbone)
    at_start.set_weights(weights)
    reference = gar_tf.per_example_alignment(
        at_start, plain.loss, x0, y0, direction, training=True
    ).numpy()
    scale = float(np.max(np.abs(reference)))
    check = {
        "reference_mean": float(reference.mean()),
        "reference_std": float(reference.std()),
        "gar_mean": logs["gar"]["reward_mean"],
        "gar_std": logs["gar"]["reward_std"],
        "gar_mean_rel_error": abs(logs["gar"]["reward_mean"] - reference.mean()) / scale,
        "gar_std_rel_error": abs(logs["gar"]["reward_std"] - reference.std()) / scale,
    }
    if with_vmap:
        check["vmap_max_rel_error"] = float(np.max(np.abs(vmap_rewards - reference))) / scale
    return check
