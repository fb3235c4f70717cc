"""Learn an augmentation policy with GAR while training a model, on real offline data.

Trains a model (small CNN, small ResNet or wide ResNet) on a subset of real Fashion-MNIST
(default) or MNIST, or on CIFAR-10/100 prepared by tensorflow-datasets (``--preset``: the
paper's setting, docs/augmentation.md), with ``gar_tf.GARModel`` and a
``gar_tf.AugmentationPolicy`` that picks, per image, how many ops, which ops and which
levels, and learns them from GAR rewards with a clean comparison gradient. Writes
TensorBoard logs (losses, reward statistics, op probabilities, mean levels, ops per image,
a grid of augmented images), a heat map PNG of the learned op x level distribution,
``summary.json``, and exports the learned policy as a SavedModel with its ``policy.json``
into ``--export-dir``.

Example: ``python -m gar_tf_trainers.augment_search --dataset mnist --epochs 3``

Example, the paper's setting (GPU): ``python -m gar_tf_trainers.augment_search --preset
cifar10 --tfds-data-dir ~/tensorflow_datasets``
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

# The paper's CIFAR setting (docs/augmentation.md, "The paper's setting"): WRN-28-10, SGD
# Nesterov 0.1 with cosine decay, weight decay 5e-4, crop/flip and Cutout 16; the reference
# code's policy settings (wide space, 1-4 ops, Adam 0.1 with beta_1 0, 8 samplers, 20% held out).
_CIFAR = {
    "model": "wrn28_10",
    "epochs": 200,
    "batch_size": 128,
    "optimizer": "sgd",
    "learning_rate": 0.1,
    "lr_schedule": "cosine",
    "weight_decay": 5e-4,
    "crop_pad": 4,
    "cutout": 16,
    "ops": "wide",
    "max_ops": 4,
    "policy_lr": 0.1,
    "policy_beta1": 0.0,
    "ensemble": 8,
    "levels": "categorical",
    "min_op_probability": 0.0,
    "comparison": "held_out",
    "held_out_share": 0.2,
}
PRESETS = {
    name: {**_CIFAR, "dataset": name, "per_class": _cli.MAX_PER_CLASS[name],
           "logdir": f"runs/augment_search_{name}"}
    for name in _cli.TFDS_DATASETS
}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = _cli.parser(__doc__, _cli.DATASETS + _cli.TFDS_DATASETS)
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="the paper's setting: sets the defaults --dataset NAME, --per-class 5000 "
        "(cifar10) / 500 (cifar100), i.e. the whole training set, --logdir "
        "runs/augment_search_NAME, "
        + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in _CIFAR.items())
        + "; flags given override them (default: no preset)",
    )
    p.add_argument(
        "--tfds-data-dir",
        default=None,
        help="tfds data_dir holding cifar10 / cifar100, prepared with `tfds build cifar10 "
        "--data_dir DIR` (default: $TFDS_DATA_DIR, else ~/tensorflow_datasets)",
    )
    _cli.add_backbone(p, per_class=1000, model="small_cnn")
    _cli.add_training(
        p, epochs=3, learning_rate_help="model learning rate (Adam, or SGD with --optimizer sgd)"
    )
    p.add_argument(
        "--optimizer",
        choices=["adam", "sgd"],
        default="adam",
        help="model optimizer: adam, or sgd (Nesterov momentum 0.9)",
    )
    p.add_argument(
        "--lr-schedule",
        choices=["constant", "cosine"],
        default="constant",
        help="cosine: decay --learning-rate to 0 over all the run's optimizer steps",
    )
    p.add_argument(
        "--weight-decay",
        type=float,
        default=0.0,
        help="L2 weight decay added to every model gradient, g + wd * w (--optimizer sgd)",
    )
    p.add_argument(
        "--crop-pad",
        type=int,
        default=0,
        help="zero-pad each training image by this many pixels, crop it back at random and "
        "mirror it left-right with p = 1/2, after the policy's ops (0: none)",
    )
    p.add_argument(
        "--cutout",
        type=int,
        default=0,
        help="side of the square Cutout zeroes in each training image, after the policy's "
        "ops (0: none)",
    )
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
        problems += _cli.check_held_out_share(args, args.held_out_share)
    return problems


def check_data_and_model_flags(args: argparse.Namespace) -> list[str]:
    """Each data directory flag with its kind of dataset; the model optimizer's and the
    fixed augmentation's flags in range."""
    problems = _cli.at_least(args, 0, "weight_decay", "crop_pad", "cutout")
    tfds = args.dataset in _cli.TFDS_DATASETS
    if tfds and args.data_dir is not None:
        problems.append(
            f"--dataset {args.dataset} is read from a tfds data_dir: pass --tfds-data-dir, "
            "not --data-dir (the IDX files of fashion_mnist / mnist)"
        )
    if not tfds and args.tfds_data_dir is not None:
        problems.append(
            f"--tfds-data-dir is read only for --dataset {' / '.join(_cli.TFDS_DATASETS)}; "
            f"{args.dataset} is read from --data-dir"
        )
    if args.weight_decay and args.optimizer != "sgd":
        problems.append("--weight-decay needs --optimizer sgd")
    return problems


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
    """The flags, all checked (argparse's usage error, exit status 2, names what to pass);
    ``--preset`` first sets its defaults, which the flags given override."""
    p = build_parser()
    preset = p.parse_known_args(argv)[0].preset
    if preset is not None:
        p.set_defaults(**PRESETS[preset])
    return _cli.parse(
        p,
        argv,
        _cli.check_training,
        _cli.check_backbone,
        _cli.check_policy,
        check_policy_flags,
        check_data_and_model_flags,
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
    backbone = _build.backbone(
        args.model, x.shape[1:], _cli.NUM_CLASSES[args.dataset], args.crop_pad, args.cutout
    )
    model = gar_tf.GARModel(
        backbone,
        policies=[policy],
        clean_comparison=None if args.comparison == "next" else args.comparison,
        clean_size=args.clean_size if args.comparison == "slice" else 0,
    )
    learning_rate = args.learning_rate
    if args.lr_schedule == "cosine":
        steps = args.epochs * (len(y) // args.batch_size)
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, steps)
    optimizer = None
    if args.optimizer == "sgd":
        optimizer = _build.sgd_nesterov(learning_rate, args.weight_decay)
    _build.compile_classifier(model, learning_rate, optimizer)
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
        "preset": args.preset,
        "model": args.model,
        "seed": args.seed,
        "train_images": int(len(y)),
        "held_out_images": int(len(x_held)) if held_out else 0,
        "steps": int(model.optimizer.iterations.numpy()),
        "fit_seconds": round(seconds, 1),  # training and the per-epoch test evaluation
        "test_accuracy": round(float(accuracy), 4),
        "policy": policy.policy_string(),
        "op_probabilities": {n: round(o["probability"], 4) for n, o in summary["ops"].items()},
        "tv_from_uniform": {k: round(v, 4) for k, v in policy.distance_from_uniform().items()},
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
