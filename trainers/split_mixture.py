"""Learned data-split mixture on real data: GAR vs a uniform mixture vs the clean-only oracle.

The training set (Fashion-MNIST by default, or MNIST) is cut into K random splits of
equal size; some are corrupted: ``labels`` replaces the labels of split 0 by random
labels, ``noise`` replaces the images of split 0 by fresh white noise on every draw
(labels kept), ``both`` does the first to split 0 and the second to split 1. For every
seed, three runs of the same small CNN, the same number of steps (one pass over the
training set by default), the same batches sizes and optimizer:

* ``gar``: a ``gar_tf.SplitSampler`` trained by GAR rewards inside ``GARModel.fit``;
* ``uniform``: every example from a uniformly drawn split (no learning);
* ``oracle``: uniform over the clean splits only.

Prints and writes (to ``--logdir``) the final split probabilities, test accuracies
(mean ± std over seeds), ``results.json``, a PNG of the GAR probabilities over
training per seed, and TensorBoard logs.

Example: ``python trainers/split_mixture.py --corruption labels --seeds 0 1 2``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import _cli
import keras
import numpy as np
import tensorflow as tf

import gar_tf


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _cli.parser(__doc__)
    p.add_argument("--splits", type=int, default=4, help="number of equal random splits K")
    p.add_argument(
        "--corruption",
        choices=["labels", "noise", "both", "none"],
        default="labels",
        help="which splits are corrupted (see above); 'none' keeps all clean",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one run set per seed")
    p.add_argument(
        "--passes",
        type=float,
        default=1.0,
        help="training length in passes over the training set (all runs equal)",
    )
    _cli.add_training(p, epochs=None)
    p.add_argument(
        "--policy-lr",
        type=float,
        default=None,
        help="SplitSampler Adam learning rate (default: the sampler's default)",
    )
    p.add_argument(
        "--entropy",
        type=float,
        default=None,
        help="SplitSampler entropy bonus (default: the sampler's default)",
    )
    p.add_argument(
        "--min-probability",
        type=float,
        default=None,
        help="SplitSampler probability floor (default: the sampler's default)",
    )
    p.add_argument(
        "--reward",
        choices=["next", "same", "next-minus-current"],
        default="next-minus-current",
        help="GARModel reward variant: which gradient the examples align with "
        "(next-minus-current removes the corrupted split's alignment with itself; "
        "see docs/split_mixture.md)",
    )
    p.add_argument(
        "--similarity",
        choices=["dot", "cosine"],
        default="dot",
        help="GARModel similarity (cosine: per weight tensor)",
    )
    p.add_argument(
        "--clean-size",
        type=int,
        default=0,
        help="V > 0: the last V examples of each batch come from the uniform mixture and "
        "give the comparison gradient (GARModel clean_comparison='slice')",
    )
    p.add_argument(
        "--runs",
        nargs="+",
        choices=["gar", "uniform", "oracle"],
        default=["gar", "uniform", "oracle"],
        help="which mixtures to train",
    )
    _cli.add_logging(
        p,
        logdir="runs/split_mixture",
        logdir_help="output directory: TensorBoard logs, PNGs and results.json",
        log_every=10,
        log_every_help="steps between probability records",
    )
    return p.parse_args(argv)


def corrupted_splits(corruption: str) -> dict[int, str]:
    """Which split gets which corruption."""
    return {
        "labels": {0: "labels"},
        "noise": {0: "noise"},
        "both": {0: "labels", 1: "noise"},
        "none": {},
    }[corruption]


def make_splits(images, labels, k, corruption, seed):
    """K equal random splits of (images, labels) as tf.data, with the chosen corruption."""
    rng = np.random.default_rng(seed)
    parts = np.array_split(rng.permutation(len(labels)), k)
    kinds = corrupted_splits(corruption)
    splits = {}
    for i, idx in enumerate(parts):
        x = images[idx].astype(np.float32) / 255.0
        y = labels[idx].astype(np.int32)
        kind = kinds.get(i)
        if kind == "labels":
            y = rng.integers(0, 10, len(y)).astype(np.int32)
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if kind == "noise":
            ds = ds.map(lambda a, b: (tf.random.uniform(tf.shape(a)), b))
        splits[f"{i}:{kind or 'clean'}"] = ds
    return splits


def train(run, splits, args, seed, steps, test, logdir):
    """Trains one mixture; returns (test accuracy, final probabilities, logger or None)."""
    keras.utils.set_random_seed(seed)
    if run == "oracle":
        splits = {n: s for n, s in splits.items() if n.endswith("clean")}
    options = {
        key: value
        for key, value in (
            ("policy_optimizer", args.policy_lr and keras.optimizers.Adam(args.policy_lr)),
            ("entropy", args.entropy),
            ("min_probability", args.min_probability),
        )
        if value is not None
    }
    sampler = gar_tf.SplitSampler(splits, args.batch_size, seed=seed, **options)
    logger = None
    if run == "gar":
        logger = gar_tf.callbacks.SplitSamplerLogger(
            sampler, every=args.log_every, log_dir=str(logdir)
        )
        model = gar_tf.GARModel(
            gar_tf.backbones.small_cnn(),
            policies=[sampler],
            reward=args.reward,
            similarity=args.similarity,
            clean_comparison="slice" if args.clean_size else None,
            clean_size=args.clean_size,
        )
    else:
        model = gar_tf.GARModel(gar_tf.backbones.small_cnn(), compute_rewards=False)
    _cli.compile_classifier(model, args.learning_rate)
    callbacks = [keras.callbacks.TensorBoard(str(logdir), update_freq=args.log_every)]
    model.fit(
        sampler.dataset(clean_size=args.clean_size if run == "gar" else 0),
        steps_per_epoch=steps,
        epochs=1,
        callbacks=callbacks + ([logger] if logger else []),
        verbose=_cli.verbosity(),
    )
    if logger is not None:
        logger.record()  # the final state
    accuracy = model.evaluate(*test, batch_size=1000, verbose=0)[1]
    return float(accuracy), sampler.probabilities(), logger


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    images, labels = _cli.load(args, "train")
    test_images, test_labels = _cli.load(args, "test")
    test = (test_images.astype(np.float32) / 255.0, test_labels.astype(np.int32))
    steps = int(args.passes * len(labels) // args.batch_size)
    root = Path(args.logdir)
    results = {"args": vars(args), "steps": steps, "runs": []}
    for seed in args.seeds:
        splits = make_splits(images, labels, args.splits, args.corruption, seed)
        for run in args.runs:
            start = time.perf_counter()
            acc, probs, logger = train(
                run, splits, args, seed, steps, test, root / f"seed{seed}" / run
            )
            entry = {
                "seed": seed,
                "run": run,
                "test_accuracy": round(acc, 4),
                "seconds": round(time.perf_counter() - start, 1),
            }
            if logger is not None:
                entry["final_probabilities"] = {n: round(p, 4) for n, p in probs.items()}
                entry["probability_trace"] = [
                    {"step": h["step"], **{n: round(p, 4) for n, p in h["probabilities"].items()}}
                    for h in logger.history
                ]
                gar_tf.plots.plot_split_probabilities(
                    logger.history,
                    root / f"split_probabilities_seed{seed}.png",
                    title=f"{args.dataset}, corruption={args.corruption}, seed {seed}",
                )
            print(json.dumps({k: v for k, v in entry.items() if k != "probability_trace"}))
            results["runs"].append(entry)
    summary = {}
    for run in args.runs:
        accs = [e["test_accuracy"] for e in results["runs"] if e["run"] == run]
        summary[run] = {
            "mean": round(float(np.mean(accs)), 4),
            "std": round(float(np.std(accs)), 4),
        }
    results["test_accuracy"] = summary
    root.mkdir(parents=True, exist_ok=True)
    (root / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps({"test_accuracy": summary}, indent=1))
    return results


if __name__ == "__main__":
    main()
