"""Soak: a long GARModel.fit with both policies; resident memory and step time must not grow.

One ``fit`` of ``--steps`` steps (epochs of ``--window`` steps) of a small CNN on real
Fashion-MNIST with a ``SplitSampler`` over three splits (one with random labels) and an
``AugmentationPolicy``. After every window it records the resident set size (Linux
``/proc/self/statm``), the window's median step time and whether every policy logit is
finite. Reported: least-squares slopes, after the first ``--warmup`` windows and with their
standard errors, of memory (MiB per 1,000 steps) and of step time, wall and process CPU (ms
per 1,000 steps; CPU time is less disturbed by other load on the machine), and the first
step at which a logit was not finite (none expected). Results: docs/reliability.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

# Runs from a checkout without installing the package; shares the trainers' flag checks.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from gar_tf_trainers import _cli  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--steps", type=int, default=5000, help="training steps in all")
    parser.add_argument("--window", type=int, default=250, help="steps per record (an epoch)")
    parser.add_argument("--warmup", type=int, default=8, help="windows left out of the slopes")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, weights and draws")
    parser.add_argument("--json", type=Path, help="also write the records and slopes here")
    args = parser.parse_args(argv)
    problems = _cli.at_least(args, 1, "steps", "window", "batch_size")
    problems += _cli.at_least(args, 0, "warmup")
    if args.steps % args.window:
        problems.append(f"--steps {args.steps} must be a multiple of --window {args.window}")
    elif args.steps // args.window < args.warmup + 3:
        problems.append("need at least --warmup + 3 windows to fit a slope: raise --steps")
    if args.json is not None and not args.json.parent.is_dir():
        problems.append(f"--json {args.json}: folder {args.json.parent} does not exist")
    if problems:
        parser.error("\n  ".join(problems))
    return args


def resident_mib() -> float:
    """Current resident set size in MiB (Linux), else the peak so far."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def slope(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares slope of ``ys`` on ``xs`` and its standard error."""
    import numpy as np

    x, y = np.asarray(xs, float), np.asarray(ys, float)
    dx = x - x.mean()
    b = float(dx @ (y - y.mean()) / (dx @ dx))
    residual = y - y.mean() - b * dx
    return b, float(np.sqrt(residual @ residual / (len(x) - 2) / (dx @ dx)))


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import keras
    import numpy as np
    import tensorflow as tf

    import gar_tf

    keras.utils.set_random_seed(args.seed)
    images, labels = gar_tf.datasets.load_fashion_mnist(as_numpy=True)
    rng = np.random.default_rng(args.seed)
    thirds = np.array_split(np.arange(len(labels)), 3)
    noisy = labels.copy()
    noisy[thirds[2]] = rng.integers(0, 10, len(thirds[2]))
    splits = {
        name: tf.data.Dataset.from_tensor_slices((images[i], noisy[i]))
        for name, i in zip(["clean_a", "clean_b", "random_labels"], thirds)
    }
    sampler = gar_tf.SplitSampler(splits, args.batch_size, seed=args.seed)
    augmentation = gar_tf.AugmentationPolicy(ops="wide", max_ops=2, seed=args.seed)
    backbone = gar_tf.backbones.from_name("small_cnn", images.shape[1:])
    model = gar_tf.GARModel(backbone, policies=[sampler, augmentation], reward="next-minus-current")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")

    records: list[dict] = []

    class Recorder(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.times: list[tuple[float, float]] = []

        def on_train_batch_begin(self, batch, logs=None):
            self.start = (time.perf_counter(), time.process_time())

        def on_train_batch_end(self, batch, logs=None):
            now = (time.perf_counter(), time.process_time())
            self.times.append((now[0] - self.start[0], now[1] - self.start[1]))

        def on_epoch_end(self, epoch, logs=None):
            logits = [v.numpy() for p in (sampler, augmentation) for v in p.trainable_weights]
            wall, cpu = zip(*self.times)
            records.append(
                {
                    "step": (epoch + 1) * args.window,
                    "resident_mib": round(resident_mib(), 2),
                    "median_step_ms": round(1000 * float(np.median(wall)), 3),
                    "median_step_cpu_ms": round(1000 * float(np.median(cpu)), 3),
                    "logits_finite": bool(all(np.isfinite(v).all() for v in logits)),
                }
            )
            print(json.dumps(records[-1]), flush=True)

    model.fit(
        sampler.dataset(),
        steps_per_epoch=args.window,
        epochs=args.steps // args.window,
        callbacks=[Recorder()],
        verbose=0,
    )
    kept = records[args.warmup :]
    steps = [r["step"] / 1000 for r in kept]
    memory = slope(steps, [r["resident_mib"] for r in kept])
    step_time = slope(steps, [r["median_step_ms"] for r in kept])
    step_cpu = slope(steps, [r["median_step_cpu_ms"] for r in kept])
    not_finite = [r["step"] for r in records if not r["logits_finite"]]
    result = {
        "command": "python benchmarks/soak.py " + " ".join(argv or sys.argv[1:]),
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, TF {tf.__version__}",
        "memory_mib_per_1000_steps": [round(memory[0], 3), round(memory[1], 3)],
        "step_ms_per_1000_steps": [round(step_time[0], 4), round(step_time[1], 4)],
        "step_cpu_ms_per_1000_steps": [round(step_cpu[0], 4), round(step_cpu[1], 4)],
        "first_step_with_non_finite_logits": not_finite[0] if not_finite else None,
        "split_probabilities": sampler.probabilities(),
        "records": records,
    }
    print(
        f"memory {memory[0]:+.3f} ± {memory[1]:.3f} MiB / 1000 steps, "
        f"step time {step_time[0]:+.4f} ± {step_time[1]:.4f} ms / 1000 steps "
        f"(CPU time {step_cpu[0]:+.4f} ± {step_cpu[1]:.4f}), "
        f"non-finite logits: {not_finite[0] if not_finite else 'never'}"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
