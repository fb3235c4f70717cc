"""Learn an augmentation policy with GAR while training a model, on real offline data.

Trains a model (small CNN or small ResNet) on a subset of real Fashion-MNIST (default)
or MNIST with ``gar_tf.GARModel`` and a ``gar_tf.AugmentationPolicy`` that picks, per
image, how many ops, which ops and which levels, and learns them from GAR rewards with a
clean comparison gradient. Writes TensorBoard logs (losses, reward statistics, op
probabilities, mean levels, ops per image, a grid of augmented images), a heat map PNG
of the learned op x level distribution, ``summary.json``, and exports the learned
policy as a SavedModel with its ``policy.json`` into ``--export-dir``.

Example: ``python -m gar_tf_trainers.augment_search --dataset mnist --epochs 3``
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

from gar_tf_trainers import _cli


def build_parser() -> argparse.ArgumentParser:
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
        choices=["alternate", "slice", "next", "held_out"],
        default="alternate",
        help="where the comparison gradient comes from: alternate (policy and clean steps "
        "alternate), slice (the last --clean-size examples of each batch stay clean), "
        "next (the next batch as it comes, also augmented), held_out (batches of a "
        "stratified --held-out-share of the training subset, never trained on)",
    )
    p.add_argument(
        "--clean-size", type=int, default=16, help="clean slice size (only with --comparison slice)"
    )
    p.add_argument(
        "--held-out-share",
        type=float,
        default=0.2,
        help="share of the training subset held out for the comparison batches (only with "
        "--comparison held_out; the model trains on the rest)",
    )
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
    return p


def export_dir(args: argparse.Namespace) -> Path | None:
    """Where the policy is exported, or None (``--export-dir none``)."""
    if args.export_dir == "none":
        return None
    return Path(args.export_dir or Path(args.logdir) / "policy")


def check_policy_flags(args: argparse.Namespace) -> list[str]:
    """Slots, levels and the clean slice the policy and GARModel would refuse."""
    problems = _cli.at_least(args, 1, "max_ops", "num_levels")
    if args.comparison == "slice" and not 1 <= args.clean_size < args.batch_size:
        problems.append(
            f"--comparison slice needs --clean-size in 1..{args.batch_size - 1} (below "
            f"--batch-size {args.batch_size}), got {args.clean_size}"
        )
    if args.comparison == "held_out":
        problems += check_held_out_share(args)
    return problems


def check_held_out_share(args: argparse.Namespace) -> list[str]:
    """``--held-out-share`` in (0, 1), leaving a full batch on each side of the split."""
    share = args.held_out_share
    if not 0 < share < 1:
        return [f"--held-out-share must be in (0, 1), got {share}"]
    images = 10 * args.per_class
    held = round(share * images)
    if min(held, images - held) < args.batch_size:
        return [
            f"--held-out-share {share} of {images} training images holds out {held} and "
            f"trains on {images - held}; each needs at least one batch of --batch-size "
            f"{args.batch_size}"
        ]
    return []


def check_export(args: argparse.Namespace) -> list[str]:
    """The export folder is free, or an earlier policy export and ``--overwrite``."""
    path = export_dir(args)
    if path is None or not path.exists():
        return []
    if not args.overwrite:
        return [f"{path} exists; pass another --export-dir, or --overwrite to replace it"]
    if not (path / "policy.json").exists():
        return [
            f"--overwrite replaces only a policy export, and {path} has no policy.json; "
            "pass another --export-dir"
        ]
    return []


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags, all checked (argparse's usage error, exit status 2, names what to pass)."""
    return _cli.parse(
        build_parser(),
        argv,
        _cli.check_training,
        _cli.check_backbone,
        _cli.check_policy,
        check_policy_flags,
        _cli.check_logging,
        check_export,
    )


def make_policy(args: argparse.Namespace):
    """The ``AugmentationPolicy`` of the flags; an unknown ``--ops`` ends in a usage error."""
    from gar_tf_trainers import _build

    ops = args.ops if args.ops in ("wide", "standard") else args.ops.split(",")
    try:
        return _build.policy(
            args, ops=ops, max_ops=args.max_ops, seed=args.seed, num_levels=args.num_levels
        )
    except (ValueError, KeyError) as error:
        build_parser().error(f"--ops {args.ops!r}: {error}")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    return run(args, argv)


def run(args: argparse.Namespace, argv: list[str] | None) -> dict:
    """Trains the model and the policy, then writes the summary, heat map and export."""
    import keras
    import numpy as np

    import gar_tf
    from gar_tf_trainers import _build

    keras.utils.set_random_seed(args.seed)
    policy = make_policy(args)
    x, y = _build.load(args, "train", subset_per_class=args.per_class, seed=args.seed)
    x_test, y_test = _build.load(args, "test")
    held_out = args.comparison == "held_out"
    if held_out:
        data, (x, y), (x_held, _) = _build.held_out_batches(
            x, y, args.held_out_share, args.batch_size, args.seed
        )
    else:
        data = _build.batches(x, y, args.batch_size, args.seed)
    model = gar_tf.GARModel(
        _build.backbone(args.model, x.shape[1:]),
        policies=[policy],
        clean_comparison=None if args.comparison == "next" else args.comparison,
        clean_size=args.clean_size if args.comparison == "slice" else 0,
    )
    _build.compile_classifier(model, args.learning_rate)
    logdir = Path(args.logdir)
    logger = gar_tf.callbacks.AugmentationPolicyLogger(
        policy, every=args.log_every, log_dir=str(logdir), images=x[:16]
    )
    data = data.prefetch(2)
    start = time.perf_counter()
    # The test split is evaluated after every epoch for TensorBoard's "validation" curves
    # (monitoring only: nothing is selected on it).
    history = model.fit(
        data,
        epochs=args.epochs,
        validation_data=(x_test.astype(np.float32), y_test),
        validation_batch_size=1000,
        callbacks=[gar_tf.callbacks.TensorBoard(str(logdir), update_freq=args.log_every), logger],
        verbose=_build.verbosity(),
    )
    seconds = time.perf_counter() - start
    logger.record()
    accuracy = history.history["val_accuracy"][-1]
    summary = policy.summary()
    gar_tf.plots.plot_augmentation_heatmap(
        summary, logdir / "policy_heatmap.png", title=f"{args.dataset}, seed {args.seed}"
    )
    result = {
        "command": "python -m gar_tf_trainers.augment_search " + shlex.join(argv or sys.argv[1:]),
        "dataset": args.dataset,
        "seed": args.seed,
        "train_images": int(len(y)),
        "held_out_images": int(len(x_held)) if held_out else 0,
        "steps": int(model.optimizer.iterations.numpy()),
        "fit_seconds": round(seconds, 1),  # training and the per-epoch test evaluation
        "test_accuracy": round(float(accuracy), 4),
        "policy": policy.policy_string(),
        "op_probabilities": {n: round(o["probability"], 4) for n, o in summary["ops"].items()},
    }
    path = export_dir(args)
    if path is not None:
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
