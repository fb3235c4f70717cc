"""Gradient alignment on real Fashion-MNIST (or MNIST): GAR rewards single out mislabelled examples.

Trains a small CNN with ``gar_tf.GARModel`` (no policy: every step computes the GAR
rewards ``r_i = <g_i, G_{t+1}>`` and logs their statistics) on a subset of the real
Fashion-MNIST training set in which a fraction of labels is replaced by random wrong
labels. Then it scores every training example by ``gar_tf.per_example_alignment``
with the gradient of held-out clean images and reports how well a low score flags the
mislabelled ones (ROC AUC), the test accuracy, and the reward statistics. TensorBoard
logs and a JSON summary go to ``--logdir``.

Example: ``python -m gar_tf_trainers.alignment_demo --epochs 3``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from gar_tf_trainers import _cli

if TYPE_CHECKING:
    import numpy as np


def build_parser() -> argparse.ArgumentParser:
    parser = _cli.parser(__doc__)
    parser.add_argument(
        "--train-size", type=int, default=10000, help="training images drawn from the 60k"
    )
    parser.add_argument(
        "--reference-size",
        type=int,
        default=1000,
        help="held-out clean training images whose gradient scores the examples",
    )
    parser.add_argument(
        "--noise",
        type=float,
        default=0.2,
        help="fraction of training examples given a random wrong label, in (0, 1)",
    )
    _cli.add_training(parser, epochs=4, epochs_help="passes over the training set")
    parser.add_argument("--seed", type=int, default=0, help="seed for data split, noise and init")
    _cli.add_logging(
        parser,
        logdir="runs/alignment_demo",
        logdir_help="where TensorBoard logs and summary.json are written",
    )
    return parser


def check_sizes(args: argparse.Namespace) -> list[str]:
    """Training and reference images fit in the training set, both at least one."""
    problems = _cli.at_least(args, 1, "train_size", "reference_size")
    total = args.train_size + args.reference_size
    if not problems and total > _cli.TRAIN_SIZE:
        problems.append(
            f"--train-size {args.train_size} + --reference-size {args.reference_size} = "
            f"{total} exceeds the {_cli.TRAIN_SIZE} training images: pass --train-size <= "
            f"{_cli.TRAIN_SIZE - args.reference_size} or a smaller --reference-size"
        )
    return problems


def check_noise(args: argparse.Namespace) -> list[str]:
    """Some mislabelled and some clean examples: the AUC compares the two."""
    if 0 < args.noise < 1:
        return []
    return [
        f"--noise must be in (0, 1), got {args.noise}: the AUC compares mislabelled with "
        "clean examples, so both must occur (e.g. --noise 0.2)"
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags, all checked (argparse's usage error, exit status 2, names what to pass)."""
    return _cli.parse(
        build_parser(), argv, _cli.check_training, check_sizes, check_noise, _cli.check_logging
    )


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties: 1/2).

    Raises:
        ValueError: no positive or no negative (the AUC is undefined).
    """
    import numpy as np

    ranks = np.empty(len(scores))
    order = np.argsort(scores, kind="mergesort")
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores):  # average the ranks of ties
        tied = scores == value
        ranks[tied] = ranks[tied].mean()
    n_pos, n_neg = positive.sum(), (~positive).sum()
    if not n_pos or not n_neg:
        raise ValueError(f"an AUC needs positives and negatives, got {n_pos} and {n_neg}")
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def alignment_scores(model, x, y, reference, batch_size=500) -> np.ndarray:
    """Each example's alignment with the mean-loss gradient of ``reference`` (x, y)."""
    import keras
    import numpy as np
    import tensorflow as tf

    import gar_tf

    loss_fn = keras.losses.sparse_categorical_crossentropy
    with tf.GradientTape() as tape:
        ref_loss = tf.reduce_mean(loss_fn(reference[1], model(reference[0], training=False)))
    direction = tape.gradient(ref_loss, model.trainable_variables)
    scores = [
        gar_tf.per_example_alignment(
            model, loss_fn, x[i : i + batch_size], y[i : i + batch_size], direction
        ).numpy()
        * min(batch_size, len(x) - i)  # undo the 1/B of the mean loss
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(scores)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    return run(args)


def run(args: argparse.Namespace) -> dict:
    """Trains, scores and writes the summary."""
    import keras
    import numpy as np

    import gar_tf
    from gar_tf_trainers import _build

    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    images, labels = _build.load(args, "train")
    test_images, test_labels = _build.load(args, "test")
    order = rng.permutation(len(labels))
    train_idx = order[: args.train_size]
    ref_idx = order[args.train_size : args.train_size + args.reference_size]
    x = images[train_idx].astype(np.float32) / 255.0
    y = labels[train_idx].astype(np.int32)
    noisy = rng.random(len(y)) < args.noise
    y_noisy = y.copy()
    y_noisy[noisy] = (y[noisy] + rng.integers(1, 10, noisy.sum())) % 10
    if noisy.all() or not noisy.any():
        raise SystemExit(
            f"--noise {args.noise} mislabelled {noisy.sum()} of the {len(y)} training images "
            "(this --seed's draw): the AUC needs both kinds; pass a larger --train-size"
        )
    reference = (images[ref_idx].astype(np.float32) / 255.0, labels[ref_idx].astype(np.int32))

    model = gar_tf.GARModel(gar_tf.backbones.small_cnn())
    _build.compile_classifier(model, args.learning_rate)
    logdir = Path(args.logdir)
    start = time.perf_counter()
    history = model.fit(
        x,
        y_noisy,
        batch_size=args.batch_size,
        epochs=args.epochs,
        validation_data=(test_images.astype(np.float32) / 255.0, test_labels),
        callbacks=[gar_tf.callbacks.TensorBoard(str(logdir), update_freq=10)],
        verbose=_build.verbosity(),
    )
    train_seconds = time.perf_counter() - start

    scores = alignment_scores(model.backbone, x, y_noisy, reference)
    summary = {
        "train_images": int(len(y)),
        "mislabelled": int(noisy.sum()),
        "epochs": args.epochs,
        "seed": args.seed,
        "train_seconds": round(train_seconds, 1),
        "test_accuracy": round(float(history.history["val_accuracy"][-1]), 4),
        "last_epoch_reward_mean": float(history.history["reward_mean"][-1]),
        "last_epoch_reward_positive": round(float(history.history["reward_positive"][-1]), 4),
        "mean_score_clean": float(scores[~noisy].mean()),
        "mean_score_mislabelled": float(scores[noisy].mean()),
        "auc_low_score_flags_mislabelled": round(roc_auc(-scores, noisy), 4),
    }
    logdir.mkdir(parents=True, exist_ok=True)
    (logdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"TensorBoard: tensorboard --logdir {logdir} --host 127.0.0.1")
    return summary


if __name__ == "__main__":
    main()
