"""Per-split mean standardised rewards of six reward variants, from brute-force per-example
gradients, on the splits of ``gar_tf_trainers/split_mixture.py`` drawn uniformly.

    python scripts/reward_self_term.py --corruption sizes --out record.json

``--corruption graded`` has the trainer's default label-noise rates, 0, 0.1, 0.4 and 0.7.
Trains ``small_cnn`` (Adam 1e-3, batch 128) for ``--warm`` steps, then for ``--measure``
steps computes every example's gradient g_i (a Jacobian of the per-example losses) and, with
G_t the batch's mean gradient before the step and G_{t+1} the next batch's after it:

- ``next``:  r_i = <g_i, G_{t+1}>
- ``next-minus-current``:  r_i = <g_i, G_{t+1}> - <g_i, G_t>, whose second term holds
  example i's alignment with itself, |g_i|^2 / B (docs/split_mixture.md)
- ``next-minus-others``:  r_i = <g_i, G_{t+1}> - <g_i, G_t^(-i)>, G_t^(-i) the mean over
  the other B - 1 examples: ``next-minus-current`` without that self term
- ``other-splits``:  r_i = <g_i, G_{t+1}^(-s_i)>, the mean over the next batch's examples
  from splits other than i's (GARModel ``clean_comparison="other_splits"``, docs/method.md §13)
- ``other-splits-minus-current``:  the same minus <g_i, G_t^(-s_i)>, batch t's other splits
- ``other-splits-cosine``:  <g_i, G_{t+1}^(-s_i)> / (|g_i| |G_{t+1}^(-s_i)|), one global cosine

Each step's rewards are standardised within the batch; per split, the mean over all steps of
its examples' standardised rewards and its standard error clustered by step.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from gar_tf_trainers import _machine, split_mixture  # noqa: E402

BATCH = 128
SPLITS = 4


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=("mnist", "fashion_mnist"), default="mnist")
    p.add_argument(
        "--corruption", choices=("sizes", "labels", "noise", "none", "graded"), default="sizes"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--warm", type=int, default=250, help="plain steps before measuring")
    p.add_argument("--measure", type=int, default=120, help="steps measured")
    p.add_argument("--out", type=Path, help="write the record here (JSON)")
    args = p.parse_args(argv)
    if args.warm < 0 or args.measure < 2:
        p.error("--warm must be >= 0 and --measure >= 2")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import keras
    import tensorflow as tf

    import gar_tf
    from gar_tf_trainers import _build

    images, labels = _build.load(argparse.Namespace(dataset=args.dataset, data_dir=None), "train")
    keep = split_mixture.subset_order(len(labels))[:24000]
    keras.utils.set_random_seed(args.seed)
    splits = split_mixture.make_splits(
        images[keep],
        labels[keep],
        SPLITS,
        args.corruption,
        args.seed,
        split_mixture.noise_rates(
            argparse.Namespace(corruption=args.corruption, noise_rates=None, splits=SPLITS)
        ),
    )
    names = list(splits)
    arrays = [[np.stack(t) for t in zip(*s.as_numpy_iterator())] for s in splits.values()]
    fresh_noise = [name.endswith("noise") for name in names]
    rng = np.random.default_rng(args.seed)

    def batch():
        ids = rng.integers(0, SPLITS, BATCH)
        rows = [rng.integers(0, len(arrays[k][1])) for k in ids]
        x = np.stack(
            [
                rng.random(arrays[k][0][j].shape, np.float32) if fresh_noise[k] else arrays[k][0][j]
                for k, j in zip(ids, rows)
            ]
        )
        y = np.array([arrays[k][1][j] for k, j in zip(ids, rows)], np.int32)
        return tf.constant(x), tf.constant(y), ids

    model = gar_tf.backbones.small_cnn()
    optimizer = keras.optimizers.Adam(1e-3)
    variables = model.trainable_variables
    sizes = [int(np.prod(v.shape)) for v in variables]

    @tf.function
    def per_example(x, y):
        with tf.GradientTape() as tape:
            losses = keras.losses.sparse_categorical_crossentropy(y, model(x, training=True))
        jacobian = tape.jacobian(losses, variables, experimental_use_pfor=True)
        return tf.concat([tf.reshape(j, [BATCH, -1]) for j in jacobian], 1)

    @tf.function
    def step(flat):
        parts = tf.split(flat, sizes)
        optimizer.apply_gradients([(tf.reshape(g, v.shape), v) for g, v in zip(parts, variables)])

    @tf.function
    def plain_step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, model(x)))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

    for _ in range(args.warm):
        plain_step(*batch()[:2])
    variants = (
        "next",
        "next-minus-current",
        "next-minus-others",
        "other-splits",
        "other-splits-minus-current",
        "other-splits-cosine",
    )
    sums = {v: np.zeros((args.measure, SPLITS)) for v in variants}
    counts = np.zeros((args.measure, SPLITS))
    x, y, ids = batch()
    g = per_example(x, y).numpy()
    for t in range(args.measure):
        current = g.mean(0)
        step(tf.constant(current))
        x, y, next_ids = batch()
        g_next = per_example(x, y).numpy()
        to_next, to_current = g @ g_next.mean(0), g @ current
        others = np.stack([g_next[next_ids != k].mean(0) for k in range(SPLITS)])
        to_others = (g * others[ids]).sum(1)
        others_now = np.stack([g[ids != k].mean(0) for k in range(SPLITS)])
        norms = np.linalg.norm(g, axis=1) * np.linalg.norm(others[ids], axis=1)
        rewards = {
            "next": to_next,
            "next-minus-current": to_next - to_current,
            "next-minus-others": to_next - (BATCH * to_current - (g * g).sum(1)) / (BATCH - 1),
            "other-splits": to_others,
            "other-splits-minus-current": to_others - (g * others_now[ids]).sum(1),
            "other-splits-cosine": to_others / (norms + 1e-12),
        }
        for variant, r in rewards.items():
            w = (r - r.mean()) / (r.std() + 1e-12)
            sums[variant][t] = [w[ids == k].sum() for k in range(SPLITS)]
        counts[t] = [(ids == k).sum() for k in range(SPLITS)]
        g, ids = g_next, next_ids
    n = counts.sum(0)
    result = {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {"cpu": _machine.cpu(), "tensorflow": tf.__version__},
        "mean_standardised_reward": {},
    }
    for variant in variants:
        a = sums[variant].sum(0) / n
        se = np.sqrt(((sums[variant] - a * counts) ** 2).sum(0)) / n
        result["mean_standardised_reward"][variant] = {
            name: {"a": round(float(a[k]), 4), "se": round(float(se[k]), 4)}
            for k, name in enumerate(names)
        }
    print(json.dumps(result["mean_standardised_reward"], indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
