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

import gar_tf


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _cli.parser(__doc__)
    _cli.add_backbone(p, per_class=1000, model="small_cnn")
    _cli.add_training(p, epochs=3)
    p.add_argument(
        "--ops",
        default="wide",
        help="search space: wide (19 ops), standard (14), or a "
        "comma-separated list of op names starting with Identity",
    )
    p.add_argument("--max-ops", type=int, default=2, help="op slots per image (n in 1..max)")
    p.add_argument("--num-levels", type=int, default=31, help="strength levels per op")
    _cli.add_policy(p)
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
    _cli.add_logging(
        p,
        logdir="runs/augment_search",
        logdir_help="TensorBoard logs, PNG, summary.json",
        log_every=20,
        log_every_help="steps between policy records",
    )
    p.add_argument(
        "--export-dir",
        default=None,
        help="where to export the learned policy (default: <logdir>/policy, untracked; "
        "'none' to skip)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing policy export at --export-dir",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    export_dir = args.export_dir or str(Path(args.logdir) / "policy")
    replaceable = args.overwrite and (Path(export_dir) / "policy.json").exists()
    if export_dir != "none" and Path(export_dir).exists() and not replaceable:
        raise SystemExit(
            f"{export_dir} exists; pass another --export-dir, or --overwrite to replace a "
            "policy export (checked before training)."
        )
    keras.utils.set_random_seed(args.seed)
    x, y = _cli.load(args, "train", subset_per_class=args.per_class, seed=args.seed)
    x_test, y_test = _cli.load(args, "test")
    ops = args.ops if args.ops in ("wide", "standard") else args.ops.split(",")
    policy = _cli.policy(
        args, ops=ops, max_ops=args.max_ops, seed=args.seed, num_levels=args.num_levels
    )
    model = gar_tf.GARModel(
        _cli.backbone(args.model, x.shape[1:]),
        policies=[policy],
        clean_comparison=None if args.comparison == "next" else args.comparison,
        clean_size=args.clean_size if args.comparison == "slice" else 0,
    )
    _cli.compile_classifier(model, args.learning_rate)
    logdir = Path(args.logdir)
    logger = gar_tf.callbacks.AugmentationPolicyLogger(
        policy, every=args.log_every, log_dir=str(logdir), images=x[:16]
    )
    data = _cli.batches(x, y, args.batch_size, args.seed).prefetch(2)
    start = time.perf_counter()
    model.fit(
        data,
        epochs=args.epochs,
        callbacks=[keras.callbacks.TensorBoard(str(logdir), update_freq=args.log_every), logger],
        verbose=_cli.verbosity(),
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
    if export_dir != "none":
        path = Path(export_dir)
        if path.exists():  # --overwrite of an earlier export, checked before training
            shutil.rmtree(path)
        gar_tf.export_policy(policy, path, channels=x.shape[-1])
        (path / "command.txt").write_text(result["command"] + "\n")
        result["exported_to"] = str(path)
    logdir.mkdir(parents=True, exist_ok=True)
    (logdir / "summary.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
