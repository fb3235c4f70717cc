"""Images/s of policy-style augmentation: gar_tf.augment vs keras.layers.RandAugment (vs keras-cv).

Each variant augments batches of 32x32x3 uint8 images with 2 ops per image:

* ``gar_tf``: ``gar_tf.augment.apply_ops`` on the "wide" space (19 ops), a uniformly
  random op and level (0..30) drawn *per image and slot*, the images grouped by op;
* ``keras``: ``keras.layers.RandAugment(value_range=(0, 255), num_ops=2)``;
* ``keras_cv``: ``keras_cv.layers.RandAugment(value_range=(0, 255),
  augmentations_per_image=2)``, only when keras-cv is importable.

Two settings: inside ``tf.data`` (``map(..., num_parallel_calls=AUTOTUNE)`` on
batches) and in a ``tf.function`` called batch after batch. The variants are
interleaved in rounds (rotating order) so that machine noise hits all alike; the
median images/s over rounds is reported. Run ``python benchmarks/augment_throughput.py
--help`` for the options; docs/augmentation.md has the results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import tensorflow as tf

    Augmenter = Callable[[tf.Tensor], tf.Tensor]

# Runs from a checkout without installing the package; shares the trainers' flag checks.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from gar_tf_trainers import _cli, _machine  # noqa: E402

IMAGE_SHAPE = (32, 32, 3)
SETTINGS = ("tf.data", "tf.function")
GOAL_OVER_KERAS = 5.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; the defaults run the full benchmark."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--batch-size", type=int, default=128, help="images per batch")
    parser.add_argument("--slots", type=int, default=2, help="ops applied to each image")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per setting")
    parser.add_argument("--batches", type=int, default=20, help="timed batches per round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed batches per round")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2 rounds of 3 batches, 1 warm-up"
    )
    parser.add_argument("--no-keras-cv", action="store_true", help="skip keras-cv")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.batches, args.warmup = 2, 3, 1
    problems = _cli.at_least(args, 1, "batch_size", "slots", "rounds", "batches")
    problems += _cli.at_least(args, 0, "warmup")
    if args.json is not None and not args.json.parent.is_dir():
        problems.append(f"--json {args.json}: folder {args.json.parent} does not exist")
    if problems:
        parser.error("\n  ".join(problems))
    return args


def image_pool(batch_size: int, count: int = 4) -> np.ndarray:
    """``count`` uint8 batches: Fashion-MNIST padded to 32x32 and repeated to 3 channels
    (CIFAR-shaped real pixels) when the data is installed, else uniform noise."""
    import numpy as np

    from gar_tf import datasets

    try:
        images = datasets.load_fashion_mnist(as_numpy=True, limit=batch_size * count)[0]
        images = np.repeat(np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0))), 3, axis=-1)
    except FileNotFoundError:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (batch_size * count, *IMAGE_SHAPE), dtype=np.uint8)
    return images.reshape(count, batch_size, *IMAGE_SHAPE)


def gar_augmenter(slots: int) -> Augmenter:
    """A random wide-space op and level per image and slot, via ``apply_ops``."""
    import tensorflow as tf

    from gar_tf import augment

    num_ops = len(augment.space_ops("wide"))

    def run(images: tf.Tensor) -> tf.Tensor:
        shape = [tf.shape(images)[0], slots]
        op_ids = tf.random.uniform(shape, maxval=num_ops, dtype=tf.int32)
        levels = tf.random.uniform(shape, maxval=31, dtype=tf.int32)
        return augment.apply_ops(images, op_ids, levels, space="wide")

    return run


def augmenters(slots: int, with_keras_cv: bool) -> dict[str, Augmenter]:
    """The variants to compare, by name."""
    import keras

    variants = {
        "gar_tf": gar_augmenter(slots),
        "keras": keras.layers.RandAugment(value_range=(0, 255), num_ops=slots),
    }
    if with_keras_cv:
        try:
            import keras_cv
        except ImportError:
            print("keras-cv is not installed: skipping it", file=sys.stderr)
        else:
            variants["keras_cv"] = keras_cv.layers.RandAugment(
                value_range=(0, 255), augmentations_per_image=slots
            )
    return variants


def timed_batches(setting: str, fn: Augmenter, pool: np.ndarray, args) -> float:
    """Seconds to produce ``args.batches`` augmented batches after ``args.warmup`` more.

    ``fn`` is traced once per call (a fresh dataset or ``tf.function``); the
    warm-up batches absorb the tracing.
    """
    import tensorflow as tf

    if setting == "tf.data":
        ds = tf.data.Dataset.from_tensor_slices(pool).repeat()
        ds = ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
        batches = iter(ds)

        def next_batch(i: int) -> None:
            next(batches).numpy()

    else:
        compiled = tf.function(fn)

        def next_batch(i: int) -> None:
            compiled(pool[i % len(pool)]).numpy()

    for i in range(args.warmup):
        next_batch(i)
    start = time.perf_counter()
    for i in range(args.batches):
        next_batch(i)
    return time.perf_counter() - start


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    import keras
    import tensorflow as tf

    return {
        "cpu": _machine.cpu(),
        "nproc": str(os.cpu_count()),
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    pool = image_pool(args.batch_size)
    variants = augmenters(args.slots, not args.no_keras_cv)
    names = list(variants)
    results: dict[str, dict[str, float]] = {}
    for setting in SETTINGS:
        samples: dict[str, list[float]] = {name: [] for name in names}
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                seconds = timed_batches(setting, variants[name], pool, args)
                samples[name].append(args.batches * args.batch_size / seconds)
        results[setting] = {name: statistics.median(samples[name]) for name in names}

    info = machine()
    print(f"machine: {info}")
    print(f"batch {args.batch_size} x {IMAGE_SHAPE}, {args.slots} ops per image, median of")
    print(f"{args.rounds} rounds x {args.batches} batches; images/s (ratio to keras)")
    for setting, per_variant in results.items():
        row = ", ".join(
            f"{name} {ips:,.0f} ({ips / per_variant['keras']:.1f}x)"
            for name, ips in per_variant.items()
        )
        print(f"  {setting:12s} {row}")
    ratio = min(per_variant["gar_tf"] / per_variant["keras"] for per_variant in results.values())
    print(f"gar_tf / keras RandAugment >= {ratio:.1f}x (goal {GOAL_OVER_KERAS:.0f}x)")
    report = {"machine": info, "args": {k: str(v) for k, v in vars(args).items()}}
    report["images_per_second"] = results
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
