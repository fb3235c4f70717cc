"""Learned augmentation policies as TF SavedModels that plain TensorFlow can call.

``export_policy(policy, path)`` writes a SavedModel with two endpoints,
``augment(images uint8 [B, H, W, C], seed=None)`` (seed: an int or a pair of ints, int32
or int64; none draws fresh randomness) and ``distributions()``,
plus ``policy.json`` (configuration, per-op summary, one-line policy string). The
distributions are stored as logit tables, so a policy learned with ``levels="normal"``
or an op floor loads as the same distribution in the categorical form.
Loading it needs only ``tf.saved_model.load``; ``load_policy`` rebuilds a frozen
:class:`AugmentationPolicy` for ``tf.data`` pipelines.
"""

from __future__ import annotations

import json
from pathlib import Path

import tensorflow as tf

from gar_tf.augment.sampling import augment_with
from gar_tf.policies.augmentation import AugmentationPolicy

FORMAT_VERSION = 1
# Seeds ``augment`` accepts: none, a scalar or a pair, int64 or int32 (Python ints too).
_SEED_SPECS = (None,) + tuple(
    tf.TensorSpec(shape, dtype, name="seed")
    for shape in ([2], [])
    for dtype in (tf.int64, tf.int32)
)
SUMMARY_FILE = "policy.json"


class _ExportedPolicy(tf.Module):
    def __init__(self, policy: AugmentationPolicy, channels: int) -> None:
        super().__init__(name="gar_augmentation_policy")
        # The distributions as tables, whatever their parametrisation (levels, floor).
        count, op, level = (t.numpy() for t in policy.logits())
        self.count_logits = tf.Variable(count, trainable=False)
        self.op_logits = tf.Variable(op, trainable=False)
        self.level_logits = tf.Variable(level, trainable=False)
        self.op_names = tf.constant(list(policy.space.names))
        self._space, self._num_levels = policy.space, policy.num_levels
        self._channels = channels
        self._apply = tf.function(  # traced once; every augment signature calls it
            self._apply_logits,
            input_signature=[
                tf.TensorSpec([None, None, None, channels], tf.uint8),
                tf.TensorSpec([2], tf.int64),
            ],
        )
        self.augment = tf.function(self._augment)
        # The seed forms a caller passes (none: fresh randomness); other channel counts and
        # float images are traced too, to fail with a clear message.
        for dtype in (tf.uint8, tf.float32, tf.float64):
            for c in (1, 3):
                images = tf.TensorSpec([None, None, None, c], dtype, name="images")
                for seed in _SEED_SPECS:
                    self.augment.get_concrete_function(images, *([] if seed is None else [seed]))

    def _augment(self, images, seed=None):
        if images.dtype != tf.uint8 or images.shape[-1] != self._channels:
            return _refuse(
                images,
                f"this policy takes uint8 images [B, H, W, {self._channels}] in [0, 255]; "
                f"got {images.dtype.name} images with {images.shape[-1]} channel(s). Float "
                "images in [0, 1]: pass tf.cast(tf.round(images * 255), tf.uint8); another "
                "channel count: export again with export_policy(..., channels=...).",
            )
        if seed is None:
            seed = tf.random.uniform([2], maxval=2**62, dtype=tf.int64)
        seed = tf.cast(seed, tf.int64)
        if seed.shape.rank == 0:
            seed = tf.stack([seed, tf.zeros_like(seed)])
        return self._apply(images, seed)

    def _apply_logits(self, images, seed):
        logits = (self.count_logits, self.op_logits, self.level_logits)
        return augment_with(images, *logits, seed, self._space, self._num_levels)

    @tf.function(input_signature=[])
    def distributions(self):
        return {
            "op_names": self.op_names,
            "ops_per_image": tf.reduce_mean(tf.nn.softmax(self.count_logits), 0),
            "ops": tf.reduce_mean(tf.nn.softmax(self.op_logits), 0),
            "levels": tf.reduce_mean(tf.nn.softmax(self.level_logits), 0),
        }


def _refuse(images, message: str) -> tf.Tensor:
    """Fails at run time with ``message`` (a traced signature that cannot be served)."""
    with tf.control_dependencies([tf.debugging.Assert(False, [message])]):
        return tf.identity(tf.cast(images, tf.uint8))


def export_policy(policy: AugmentationPolicy, path: str | Path, channels: int = 3) -> Path:
    """Writes ``policy`` to ``path`` (a new or empty directory) for images with
    ``channels`` channels (1 or 3); returns the path."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}.")
    if not all(
        isinstance(op, str) for op in ([policy.ops] if isinstance(policy.ops, str) else policy.ops)
    ):
        raise ValueError("Only policies whose ops are given by name can be exported.")
    path = Path(path)
    if path.exists() and any(path.iterdir()):
        raise FileExistsError(f"{path} exists and is not empty; export into a new directory.")
    module = _ExportedPolicy(policy, channels)
    tf.saved_model.save(
        module,
        str(path),
        signatures={
            "augment": module.augment.get_concrete_function(
                tf.TensorSpec([None, None, None, channels], tf.uint8, name="images"),
                tf.TensorSpec([2], tf.int64, name="seed"),
            ),
            "distributions": module.distributions,
        },
    )
    config = {k: v for k, v in policy.get_config().items() if k in _CONFIG_KEYS}
    summary = {
        "format_version": FORMAT_VERSION,
        "channels": channels,
        "config": config,
        "policy": policy.policy_string(),
        **policy.summary(),
    }
    (path / SUMMARY_FILE).write_text(json.dumps(summary, indent=1) + "\n")
    return path


_CONFIG_KEYS = ("ops", "num_levels", "max_ops", "learn_ops", "ensemble", "name")


def load_policy(path: str | Path, seed: int | None = None) -> AugmentationPolicy:
    """A frozen :class:`AugmentationPolicy` with the learned distributions of ``path``.

    Use it in ``tf.data``: ``ds.map(lambda x, y: (policy.transform(x, policy.sample(n)), y))``
    or ``policy.augment(x, seed)``. Its ``update`` raises: it does not learn.

    Raises:
        FileNotFoundError: no export at ``path``.
        ValueError: the export is corrupt or from an incompatible version.
    """
    path = Path(path)
    summary_file = path / SUMMARY_FILE
    if not summary_file.is_file() or not (path / "saved_model.pb").is_file():
        raise FileNotFoundError(
            f"No exported policy at {path}: expected {SUMMARY_FILE} and saved_model.pb "
            "(written by AugmentationPolicy.export)."
        )
    try:
        summary = json.loads(summary_file.read_text())
        version, config = summary["format_version"], summary["config"]
        if not isinstance(config, dict):
            raise TypeError(f"config is a {type(config).__name__}, not an object")
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"Corrupt policy export at {path}: {SUMMARY_FILE} is unreadable ({err})."
        ) from err
    if version != FORMAT_VERSION:
        raise ValueError(
            f"The policy at {path} has format version {version!r}; this gar_tf reads "
            f"version {FORMAT_VERSION}. Re-export it with a matching gar_tf."
        )
    try:
        exported = tf.saved_model.load(str(path))
        logits = [exported.count_logits, exported.op_logits, exported.level_logits]
    except Exception as err:  # a damaged SavedModel raises many TF error types
        raise ValueError(
            f"Corrupt policy export at {path}: cannot load the SavedModel ({err})."
        ) from err
    try:
        policy = _FrozenAugmentationPolicy(**config, seed=seed)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"Corrupt or incompatible policy export at {path}: its config cannot build a "
            f"policy here ({err})."
        ) from err
    for variable, value in zip(
        (policy.count_logits, policy.op_logits, policy.level_logits), logits
    ):
        if tuple(variable.shape) != tuple(value.shape):
            raise ValueError(
                f"Corrupt policy export at {path}: {variable.name} has shape "
                f"{tuple(value.shape)}, the config implies {tuple(variable.shape)}."
            )
        variable.assign(value.numpy())
    return policy


class _FrozenAugmentationPolicy(AugmentationPolicy):
    """An :class:`AugmentationPolicy` loaded from an export: it samples, never learns."""

    def update(self, rewards, actions, active=True) -> None:
        raise RuntimeError(
            f"Policy {self.name!r} was loaded with gar_tf.load_policy and is frozen; "
            "create a new AugmentationPolicy to learn."
        )
