"""Learned data-split mixture on real data: GAR vs a uniform mixture vs the clean-only oracle.

The training set (Fashion-MNIST by default, or MNIST; all of it, or a random ``--train-size``
subset) is cut into K random splits of equal size; some are corrupted: ``labels`` replaces
the labels of split 0 by random labels, ``noise`` replaces the images of split 0 by fresh
white noise on every draw (labels kept), ``both`` does the first to split 0 and the second
to split 1, ``graded`` replaces the label of each example of split i by a uniformly random
one with probability ``--noise-rates[i]``. For every seed, three runs of the same small CNN,
the same number of steps (one pass over the training set by default), the same batches
sizes and optimizer:

* ``gar``: a ``gar_tf.SplitSampler`` trained by GAR rewards inside ``GARModel.fit``;
* ``uniform``: every example from a uniformly drawn split (no learning);
* ``oracle``: uniform over the clean splits only (noise rate 0).

Prints and writes (to ``--logdir``) the final split probabilities, test accuracies
(mean ± std over seeds), ``results.json``, a PNG of the GAR probabilities over
training per seed, and TensorBoard logs.

Example: ``python -m gar_tf_trainers.split_mixture --corruption labels --seeds 0 1 2``

Graded: ``python -m gar_tf_trainers.split_mixture --dataset mnist --train-size 24000 --passes 3
--corruption graded --noise-rates 0 0.1 0.4 0.7``
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from gar_tf_trainers import _cli, _machine

RUNS = ("gar", "uniform", "oracle")
CORRUPTIONS = {
    "labels": {0: "labels"},
    "noise": {0: "noise"},
    "both": {0: "labels", 1: "noise"},
    "none": {},
    "small": {0: "small"},  # clean, a quarter of the size of the others
    "duplicate": {0: "duplicate"},  # clean, a quarter of its images, each 4 times
    "sizes": {0: "small", 1: "duplicate"},
    "graded": None,  # label noise at --noise-rates, one rate per split
}
RULES = ("evidence", "reinforce")  # as gar_tf.SplitSampler (not imported before parsing)


def build_parser() -> argparse.ArgumentParser:
    p = _cli.parser(__doc__)
    p.add_argument("--splits", type=int, default=4, help="number of equal random splits K")
    p.add_argument(
        "--corruption",
        choices=list(CORRUPTIONS),
        default="labels",
        help="labels: split 0 gets random labels; noise: split 0's images are fresh white "
        "noise on every draw; both: labels on split 0 and noise on split 1; none: all clean; "
        "graded: split i's labels replaced at random with probability --noise-rates[i]; "
        "small: split 0 clean but a quarter of the size; duplicate: split 0 clean, a quarter "
        "of its images each 4 times; sizes: small on split 0 and duplicate on split 1",
    )
    p.add_argument(
        "--noise-rates",
        type=float,
        nargs="+",
        default=None,
        help="--corruption graded: one label-noise rate in [0, 1] per split "
        "(default: 0 0.1 0.4 0.7 with 4 splits)",
    )
    p.add_argument(
        "--train-size",
        type=int,
        default=None,
        help="a random subset of this many training images (the same for every seed); default: all",
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
        "--rule",
        choices=RULES,
        default="evidence",
        help="SplitSampler rule: evidence (shrunk per-split advantage / temperature) or "
        "reinforce (REINFORCE + entropy, the reference)",
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="--rule evidence: temperature (default: the sampler's default)",
    )
    p.add_argument(
        "--confidence",
        type=float,
        default=None,
        help="--rule evidence: standard errors counted as noise (default: the sampler's)",
    )
    p.add_argument(
        "--horizon",
        type=float,
        default=None,
        help="--rule evidence: steps the statistics remember (default: the sampler's)",
    )
    p.add_argument(
        "--max-log-ratio",
        type=float,
        default=None,
        help="--rule evidence: most a split's log-probability may fall below the best split's "
        "(default: the sampler's; inf: no cap)",
    )
    p.add_argument(
        "--min-steps",
        type=float,
        default=None,
        help="--rule evidence: effective steps of statistics a split needs before it is "
        "compared (default: the sampler's)",
    )
    p.add_argument(
        "--policy-lr",
        type=float,
        default=None,
        help="--rule reinforce: SplitSampler Adam learning rate (default: the sampler's)",
    )
    p.add_argument(
        "--entropy",
        type=float,
        default=None,
        help="--rule reinforce: SplitSampler entropy bonus (default: the sampler's default)",
    )
    p.add_argument(
        "--min-probability",
        type=float,
        default=None,
        help="SplitSampler probability floor, in [0, 1/K) (default: the sampler's default)",
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
        "give the comparison gradient (GARModel clean_comparison='slice'); 0: none",
    )
    p.add_argument(
        "--held-out-size",
        type=int,
        default=0,
        help="N > 0: N clean training images outside --train-size, never trained on, give "
        "the GAR run's comparison gradient, one batch per step (GARModel "
        "clean_comparison='held_out'; needs --reward next); 0: none",
    )
    p.add_argument(
        "--other-splits",
        action="store_true",
        help="the GAR run compares each example with the next batch's examples from the other "
        "splits only (GARModel clean_comparison='other_splits'; needs --reward next; "
        "default: off)",
    )
    p.add_argument(
        "--runs",
        nargs="+",
        choices=RUNS,
        default=list(RUNS),
        help="which mixtures to train: gar (learned), uniform (all splits), oracle (the clean "
        "splits only)",
    )
    _cli.add_logging(
        p,
        logdir="runs/split_mixture",
        logdir_help="output directory: TensorBoard logs, PNGs and results.json",
        log_every=10,
        log_every_help="steps between probability records",
    )
    return p


def train_size(args: argparse.Namespace) -> int:
    """Training images used: ``--train-size`` or all."""
    return _cli.TRAIN_SIZE if args.train_size is None else args.train_size


def steps(args: argparse.Namespace) -> int:
    """Training steps of every run: ``--passes`` over the training images used."""
    return int(args.passes * train_size(args) // args.batch_size)


def noise_rates(args: argparse.Namespace) -> list[float]:
    """The label-noise rate of every split (``labels``/``both``: 1 on split 0; ``noise``:
    its images are noise, labels kept)."""
    if args.corruption == "graded":
        return list(args.noise_rates or [0.0, 0.1, 0.4, 0.7])
    kinds = CORRUPTIONS[args.corruption]
    return [1.0 if kinds.get(i) == "labels" else 0.0 for i in range(args.splits)]


def corrupted_splits(args: argparse.Namespace) -> int:
    """How many splits are not clean."""
    if args.corruption == "graded":
        return sum(r > 0 for r in noise_rates(args))
    return len(CORRUPTIONS[args.corruption])


def check_graded(args: argparse.Namespace) -> list[str]:
    """``--noise-rates``: only with ``graded``, one rate in [0, 1] per split; ``--train-size``
    in [--splits, all]."""
    problems = []
    if args.noise_rates is not None and args.corruption != "graded":
        problems.append("--noise-rates needs --corruption graded")
    if args.corruption == "graded":
        rates = noise_rates(args)
        if len(rates) != args.splits:
            problems.append(
                f"--noise-rates needs one rate per split (--splits {args.splits}), got "
                f"{len(rates)}: pass --splits {len(rates)} or {args.splits} rates"
            )
        if not all(0.0 <= r <= 1.0 for r in rates):
            problems.append(f"--noise-rates must be in [0, 1], got {rates}")
    kinds = CORRUPTIONS[args.corruption] or {}
    if {"small", "duplicate"} & set(kinds.values()) and train_size(args) // args.splits < 4:
        problems.append(
            f"--corruption {args.corruption} keeps a quarter of a split, but {train_size(args)} "
            f"images in {args.splits} splits give {train_size(args) // args.splits} per split: "
            f"pass --train-size >= {4 * args.splits}"
        )
    if args.train_size is not None and not 1 <= args.train_size <= _cli.TRAIN_SIZE:
        problems.append(f"--train-size must be in 1..{_cli.TRAIN_SIZE}, got {args.train_size}")
    return problems


def check_splits(args: argparse.Namespace) -> list[str]:
    """Enough splits for the corruption and the runs, each split at least one example."""
    corrupted = len(CORRUPTIONS[args.corruption] or {})
    if args.splits < max(2, corrupted):
        return [
            f"--splits must be >= {max(2, corrupted)} (a mixture needs 2 splits"
            + (", --corruption both corrupts 2" if corrupted == 2 else "")
            + f"), got {args.splits}"
        ]
    problems = []
    if args.splits > train_size(args):
        problems.append(f"--splits must be <= {train_size(args)}, got {args.splits}")
    corrupted = corrupted_splits(args)
    if "oracle" in args.runs and args.splits == corrupted:
        problems.append(
            f"--runs oracle needs a clean split, but --corruption {args.corruption} corrupts "
            f"all {args.splits}: pass --splits >= {corrupted + 1} or leave oracle out of --runs"
        )
    return problems


def check_length(args: argparse.Namespace) -> list[str]:
    """``--passes`` gives at least one step."""
    if steps(args) >= 1:
        return []
    fewest = args.batch_size / train_size(args)
    return [
        f"--passes {args.passes} gives 0 steps of --batch-size {args.batch_size} over "
        f"{train_size(args)} images: pass --passes >= {_cli.round_up(fewest)}"
    ]


def check_sampler(args: argparse.Namespace) -> list[str]:
    """The SplitSampler flags the sampler itself would refuse, and ``--clean-size``."""
    problems = []
    own = {
        "evidence": ("temperature", "confidence", "horizon", "max_log_ratio", "min_steps"),
        "reinforce": ("policy_lr", "entropy"),
    }
    for rule, flags in own.items():
        given = [f"--{f.replace('_', '-')}" for f in flags if getattr(args, f) is not None]
        if rule != args.rule and given:
            problems.append(f"{', '.join(given)} need(s) --rule {rule}, not --rule {args.rule}")
    for flag, check in (
        ("policy_lr", _cli.positive),
        ("temperature", _cli.positive),
        ("entropy", lambda a, f: _cli.at_least(a, 0, f)),
        ("confidence", lambda a, f: _cli.at_least(a, 0, f)),
        ("horizon", lambda a, f: _cli.above(a, 1, f)),
        ("max_log_ratio", _cli.positive),
        ("min_steps", lambda a, f: _cli.at_least(a, 1, f)),
    ):
        if getattr(args, flag) is not None:
            problems += check(args, flag)
    if None not in (args.min_steps, args.horizon) and not problems:
        most = 2 * args.horizon - 1  # effective steps the statistics can span (method.md §10)
        if args.min_steps > most:
            problems.append(
                f"--min-steps {args.min_steps:g} can never be reached with --horizon "
                f"{args.horizon:g} (at most 2 H - 1 = {most:g} effective steps)"
            )
    if args.min_probability is not None and not 0 <= args.min_probability < 1 / args.splits:
        problems.append(
            f"--min-probability must be in [0, 1/{args.splits}) for --splits {args.splits}, "
            f"got {args.min_probability}"
        )
    if not 0 <= args.clean_size < args.batch_size:
        problems.append(
            f"--clean-size must be in [0, --batch-size {args.batch_size}), got {args.clean_size}"
        )
    return problems + check_held_out(args) + check_other_splits(args)


def check_other_splits(args: argparse.Namespace) -> list[str]:
    """``--other-splits``: with reward next, and no other comparison."""
    if not args.other_splits:
        return []
    problems = []
    if args.reward != "next":
        problems.append(f"--other-splits needs --reward next, got --reward {args.reward}")
    if args.clean_size or args.held_out_size:
        problems.append(
            "--other-splits is a comparison of its own: pass it without --clean-size and "
            "--held-out-size"
        )
    return problems


def check_held_out(args: argparse.Namespace) -> list[str]:
    """``--held-out-size``: at least one batch, outside ``--train-size``, with reward next
    and no clean slice."""
    n = args.held_out_size
    if n == 0:
        return []
    room = _cli.TRAIN_SIZE - train_size(args)
    problems = []
    if not args.batch_size <= n <= room:
        problems.append(
            f"--held-out-size must be 0 or in [--batch-size {args.batch_size}, {room}] (the "
            f"training images outside --train-size {train_size(args)}), got {n}"
        )
    if args.reward != "next":
        problems.append(f"--held-out-size needs --reward next, got --reward {args.reward}")
    if args.clean_size:
        problems.append("--held-out-size and --clean-size are two comparisons: pass one")
    return problems


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags, all checked (argparse's usage error, exit status 2, names what to pass)."""
    return _cli.parse(
        build_parser(),
        argv,
        _cli.check_training,
        check_graded,
        check_splits,
        check_length,
        check_sampler,
        _cli.check_logging,
    )


def split_kinds(corruption: str, rates: list[float]) -> list[str]:
    """Each split's corruption: ``clean``, ``labels``, ``noise`` or ``labels<rate>``."""
    if corruption == "graded":
        return [f"labels{r:g}" if r > 0 else "clean" for r in rates]
    kinds = CORRUPTIONS[corruption]
    return [kinds.get(i, "clean") for i in range(len(rates))]


def make_splits(images, labels, k, corruption, seed, rates=None):
    """K equal random splits of (images, labels) as tf.data, with the chosen corruption;
    ``rates``: each split's label-noise rate (``graded``)."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    parts = np.array_split(rng.permutation(len(labels)), k)
    rates = rates if corruption == "graded" else [0.0] * k
    splits = {}
    for i, (idx, kind) in enumerate(zip(parts, split_kinds(corruption, rates))):
        if kind == "small":
            idx = idx[: len(idx) // 4]
        elif kind == "duplicate":
            idx = np.tile(idx[: len(idx) // 4], 4)
        x = images[idx].astype(np.float32) / 255.0
        y = labels[idx].astype(np.int32)
        if kind == "labels":
            y = rng.integers(0, 10, len(y)).astype(np.int32)
        elif rates[i] > 0:
            replace = rng.random(len(y)) < rates[i]
            y = np.where(replace, rng.integers(0, 10, len(y)), y).astype(np.int32)
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if kind == "noise":
            ds = ds.map(lambda a, b: (tf.random.uniform(tf.shape(a)), b))
        splits[f"{i}:{kind}"] = ds
    return splits


def sampler_options(args: argparse.Namespace) -> dict:
    """The SplitSampler options given on the command line (the others keep its defaults)."""
    import keras

    return {
        key: value
        for key, value in (
            ("rule", args.rule),
            ("temperature", args.temperature),
            ("confidence", args.confidence),
            ("horizon", args.horizon),
            ("max_log_ratio", args.max_log_ratio),
            ("min_steps", args.min_steps),
            ("policy_optimizer", args.policy_lr and keras.optimizers.Adam(args.policy_lr)),
            ("entropy", args.entropy),
            ("min_probability", args.min_probability),
        )
        if value is not None
    }


def one_split(split, batch_size: int, seed: int):
    """The batches a SplitSampler would draw from a single split (the oracle when only one
    split is clean; a sampler needs two): shuffled, repeated, full batches."""
    import inspect

    import gar_tf

    buffer = inspect.signature(gar_tf.SplitSampler).parameters["shuffle_buffer"].default
    return split.shuffle(buffer, seed=seed + 1000).repeat().batch(batch_size, drop_remainder=True)


def train(run, splits, args, seed, steps, test, logdir, held_out=None):
    """Trains one mixture (``held_out``: the GAR run's comparison images and labels, or
    None); returns (test accuracy, final probabilities, logger or None, the evidence
    rule's per-split advantages or None)."""
    import keras
    import tensorflow as tf

    import gar_tf
    from gar_tf_trainers import _build

    keras.utils.set_random_seed(seed)
    if run == "oracle":
        splits = {n: s for n, s in splits.items() if n.endswith("clean")}
    logger = sampler = None
    if len(splits) == 1:
        data = one_split(next(iter(splits.values())), args.batch_size, seed).prefetch(2)
    else:
        sampler = gar_tf.SplitSampler(splits, args.batch_size, seed=seed, **sampler_options(args))
        data = sampler.dataset(clean_size=args.clean_size if run == "gar" else 0)
    comparison = None
    if run == "gar" and held_out is not None:
        comparison = "held_out"
        batches = tf.data.Dataset.from_tensor_slices(held_out).shuffle(len(held_out[1]), seed)
        data = gar_tf.with_comparison(data, batches.batch(args.batch_size, drop_remainder=True))
    elif run == "gar" and args.clean_size:
        comparison = "slice"
    elif run == "gar" and args.other_splits:
        comparison = "other_splits"
    if run == "gar":
        logger = gar_tf.callbacks.SplitSamplerLogger(
            sampler, every=args.log_every, log_dir=str(logdir)
        )
        model = gar_tf.GARModel(
            gar_tf.backbones.small_cnn(),
            policies=[sampler],
            reward=args.reward,
            similarity=args.similarity,
            clean_comparison=comparison,
            clean_size=args.clean_size,
        )
    else:
        model = gar_tf.GARModel(gar_tf.backbones.small_cnn(), compute_rewards=False)
    _build.compile_classifier(model, args.learning_rate)
    callbacks = [gar_tf.callbacks.TensorBoard(str(logdir), update_freq=args.log_every)]
    model.fit(
        data,
        steps_per_epoch=steps,
        epochs=1,
        callbacks=callbacks + ([logger] if logger else []),
        verbose=_build.verbosity(),
    )
    if logger is not None:
        logger.record()  # the final state
    accuracy = model.evaluate(*test, batch_size=1000, verbose=0)[1]
    probabilities = sampler.probabilities() if sampler else dict.fromkeys(splits, 1.0)
    advantages = sampler.advantages() if logger and sampler.rule == "evidence" else None
    return float(accuracy), probabilities, logger, advantages


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    return run_all(args)


def subset_order(n: int):
    """The fixed order of the n training images (seed 12345) whose first ``--train-size``
    are trained on and the next ``--held-out-size`` held out, the same for every seed."""
    import numpy as np

    return np.random.default_rng(12345).permutation(n)


def run_all(args: argparse.Namespace) -> dict:
    """Every run of every seed; writes and returns the results."""
    import numpy as np

    import gar_tf
    from gar_tf_trainers import _build

    images, labels = _build.load(args, "train")
    held_out = None
    if args.train_size is not None:
        order = subset_order(len(labels))
        if args.held_out_size:  # the next images of the same order: clean, never trained on
            held = order[args.train_size : args.train_size + args.held_out_size]
            held_out = (images[held].astype(np.float32) / 255.0, labels[held].astype(np.int32))
        keep = order[: args.train_size]
        images, labels = images[keep], labels[keep]
    test_images, test_labels = _build.load(args, "test")
    test = (test_images.astype(np.float32) / 255.0, test_labels.astype(np.int32))
    root = Path(args.logdir)
    results = {
        "command": "python " + " ".join(sys.argv),
        "args": vars(args),
        "machine": machine(),
        "steps": steps(args),
        "steps_per_pass": train_size(args) // args.batch_size,
        "noise_rates": noise_rates(args),
        "runs": [],
    }
    for seed in args.seeds:
        splits = make_splits(images, labels, args.splits, args.corruption, seed, noise_rates(args))
        for run in args.runs:
            start = time.perf_counter()
            logdir = root / f"seed{seed}" / run
            acc, probs, logger, advantages = train(
                run, splits, args, seed, results["steps"], test, logdir, held_out
            )
            entry = {
                "seed": seed,
                "run": run,
                "test_accuracy": round(acc, 4),
                "seconds": round(time.perf_counter() - start, 1),
            }
            if logger is not None:
                entry["final_probabilities"] = {n: round(p, 4) for n, p in probs.items()}
                if advantages:
                    entry["final_advantages"] = {
                        n: {k: round(v, 4) for k, v in a.items()} for n, a in advantages.items()
                    }
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


def machine() -> dict:
    """Where the run happened: CPU (with its vector ISA), cores, GPUs, versions."""
    import os

    import keras
    import tensorflow as tf

    return {
        "cpu": _machine.cpu(),
        "cores": os.cpu_count(),
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


if __name__ == "__main__":
    main()
