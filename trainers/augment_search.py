"""Learn an augmentation policy with GAR while training a model, on real offline data.

Trains a model (small CNN or small ResNet) on a subset of real Fashion-MNIST (default)
or MNIST with ``gar_tf.GARModel`` and a ``gar_tf.AugmentationPolicy`` that picks, per
image, how many ops, which ops and which levels, and learns them from GAR rewards with a
clean comparison gradient. Writes TensorBoard logs (losses, reward statistics, op
probabilities, mean levels, ops per image, a grid of augmented images), a heat map PNG
of the learned op x level distribution, ``summary.json``, and exports the learned
policy as a SavedModel with its ``policy.json`` into ``--export-dir``.

Example: ``python trainers/augment_search.py --dataset mnist --epochs 3``
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

import _cli
import keras
import numpy as np
import tensorflow as tf

import gar_tf


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _cli.parser(__doc__)
    p.add_argument(
        "--per-class", type=int, default=1000, help="training images per class (stratified)"
    )
    p.add_argument(
        "--model",
        default="small_cnn",
        help="small_cnn, or resnetD / resnetD_wW for a small pre-activation ResNet "
        "(e.g. resnet8, resnet14_w32)",
    )
    p.add_argument("--epochs", type=int, default=3, help="passes over the training subset")
    p.add_argument("--batch-size", type=int, default=128, help="examples per batch")
    p.add_argument("--learning-rate", type=float, default=1e-3, help="model Adam learning rate")
    p.add_argument(
        "--ops",
        default="wide",
        help="search space: wide (19 ops), standard (14), or a "
        "comma-separated list of op names starting with Identity",
    )
    p.add_argument("--max-ops", type=int, default=2, help="op slots per image (n in 1..max)")
    p.add_argument("--num-levels", type=int, default=31, help="strength levels per op")
    p.add_argument("--policy-lr", type=float, default=0.01, help="policy Adam learning rate")
    p.add_argument("--ensemble", type=int, default=1, help="independent samplers per batch")
    p.add_argument(
        "--comparison",
        choices=["alternate", "slice", "next"],
        default="alternate",
        help="where the comparison gradient comes from: alternate (policy and clean steps "
        "alternate), slice (the last --clean-size examples of each batch stay clean), "
        "next (the next batch as it comes, also augmented)",
    )
    p.add_argument("--clean-size", type=int, default=16, help="clean slice size for 'slice'")
    p.add_argument("--seed", type=int, default=0, help="seed for data subset, init and policy")
    p.add_argument("--log-every", type=int, default=20, help="steps between policy records")
    p.add_argument(
        "--logdir", default="runs/augment_search", help="TensorBoard logs, PNG, summary.json"
    )
    p.add_argument(
        "--export-dir",
        default=None,
        help="where to export the learned policy (default: saved_policies/<dataset>_seed<seed>; "
        "'none' to skip)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing policy export at --export-dir",
    )
    return p.parse_args(argv)


def build_model(name: str, input_shape, num_classes: int) -> keras.Model:
    """The backbone, with a Rescaling(1/255) first: the policy works on [0, 255] pixels."""
    if name == "small_cnn":
        core = gar_tf.models.small_cnn(input_shape, num_classes)
    elif name.startswith("resnet"):
        depth, _, width = name[len("resnet") :].partition("_w")
        core = gar_tf.models.small_resnet(input_shape, num_classes, int(depth), int(width or 16))
    else:
        raise ValueError(f"unknown --model {name!r}; use small_cnn or resnetD[_wW]")
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, core(keras.layers.Rescaling(1 / 255)(inputs)), name=core.name)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    x, y = _cli.load(args, "train", subset_per_class=args.per_class, seed=args.seed)
    x_test, y_test = _cli.load(args, "test")
    ops = args.ops if args.ops in ("wide", "standard") else args.ops.split(",")
    policy = gar_tf.AugmentationPolicy(
        ops=ops,
        num_levels=args.num_levels,
        max_ops=args.max_ops,
        ensemble=args.ensemble,
        seed=args.seed,
        policy_optimizer=keras.optimizers.Adam(args.policy_lr),
    )
    model = gar_tf.GARModel(
        build_model(args.model, x.shape[1:], 10),
        policies=[policy],
        clean_comparison=None if args.comparison == "next" else args.comparison,
        clean_size=args.clean_size if args.comparison == "slice" else 0,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    logdir = Path(args.logdir)
    logger = gar_tf.callbacks.AugmentationPolicyLogger(
        policy, every=args.log_every, log_dir=str(logdir), images=x[:16]
    )
    data = (
        tf.data.Dataset.from_tensor_slices((x.astype(np.float32), y.astype(np.int32)))
        .shuffle(len(y), seed=args.seed)
        .batch(args.batch_size, drop_remainder=True)
        .prefetch(2)
    )
    start = time.perf_counter()
    model.fit(
        data,
        epochs=args.epochs,
        callbacks=[keras.callbacks.TensorBoard(str(logdir), update_freq=args.log_every), logger],
        verbose=1 if sys.stdout.isatty() else 2,
    )
    seconds = time.perf_counter() - start
    logger.record()
    accuracy = model.evaluate(x_test.astype(np.float32), y_test, batch_size=1000, verbose=0)[1]
    summary = policy.summary()
    gar_tf.plots.plot_augmentation_heatmap(
        summary, logdir / "policy_heatmap.png", title=f"{args.dataset}, seed {args.seed}"
    )
    result = {
        "command": "python trainers/augment_search.py " + shlex.join(argv or sys.argv[1:]),
        "dataset": args.dataset,
        "seed": args.seed,
        "train_images": int(len(y)),
        "steps": int(model.optimizer.iterations.numpy()),
        "train_seconds": round(seconds, 1),
        "test_accuracy": round(float(accuracy), 4),
        "policy": policy.policy_string(),
        "op_probabilities": {n: round(o["probability"], 4) for n, o in summary["ops"].items()},
    }
    export_dir = args.export_dir or f"saved_policies/{args.dataset}_seed{args.seed}"
    if export_dir != "none":
        path = Path(export_dir)
        if path.exists() and args.overwrite and (path / "policy.json").exists():
            shutil.rmtree(path)
        elif path.exists():
            raise FileExistsError(
                f"{path} exists; pass another --export-dir, or --overwrite to replace a policy."
            )
        policy.export(path, channels=x.shape[-1])
        (path / "command.txt").write_text(result["command"] + "\n")
        result["exported_to"] = str(path)
    logdir.mkdir(parents=True, exist_ok=True)
    (logdir / "summary.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
