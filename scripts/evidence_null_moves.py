"""How often the evidence rule moves a mixture of equal splits: pure-noise rewards through
``SplitSampler.update`` for a run's number of steps (docs/split_mixture.md).

Each step draws B split ids uniformly, rewards ``N(0, 1)`` plus a per-(step, split) effect
``N(0, effect^2)`` (a null with step-level noise, which the clustered se accounts for), and
reports per seed the steps at which the probabilities were not level, their largest spread
and the steps at which it exceeded 0.05.

    python scripts/evidence_null_moves.py --confidence 3 --seeds 10
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--confidence", type=float, default=None, help="default: the sampler's")
    p.add_argument("--min-steps", type=float, default=None, help="default: the sampler's")
    p.add_argument("--splits", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=562, help="default: 3 passes of 24,000 / 128")
    p.add_argument("--effect", type=float, default=0.3, help="sd of the per-(step, split) effect")
    p.add_argument("--seeds", type=int, default=10)
    args = p.parse_args()
    if args.splits < 2 or args.batch_size < 2 or args.steps < 1 or args.seeds < 1:
        p.error("--splits and --batch-size must be >= 2, --steps and --seeds >= 1")
    if not args.effect >= 0:
        p.error(f"--effect must be >= 0, got {args.effect}")
    if args.min_steps is not None and not args.min_steps >= 1:
        p.error(f"--min-steps must be >= 1, got {args.min_steps}")
    import tensorflow as tf

    import gar_tf

    element = (np.zeros((4, 2), np.float32), np.zeros(4, np.int32))
    splits = [tf.data.Dataset.from_tensor_slices(element) for _ in range(args.splits)]
    for seed in range(args.seeds):
        sampler = gar_tf.SplitSampler(
            splits, args.batch_size, confidence=args.confidence, min_steps=args.min_steps
        )
        update = tf.function(sampler.update)
        rng = np.random.default_rng(seed)
        moved, largest, wide = 0, 0.0, []
        for step in range(1, args.steps + 1):
            ids = rng.integers(0, args.splits, args.batch_size)
            effect = args.effect * rng.normal(size=args.splits)
            rewards = rng.normal(size=args.batch_size) + effect[ids]
            update(tf.constant(rewards, tf.float32), tf.constant(ids))
            spread = float(np.ptp(list(sampler.probabilities().values())))
            moved += spread > 1e-4
            largest = max(largest, spread)
            wide += [step] if spread > 0.05 else []
        print(f"seed {seed}: not level at {moved} of {args.steps} steps, largest spread", end=" ")
        where = f"steps {wide[0]}-{wide[-1]}" if wide else "none"
        print(f"{largest:.3f}; above 0.05 at {len(wide)} steps ({where})")


if __name__ == "__main__":
    main()
