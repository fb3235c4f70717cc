"""Step time and peak memory of GARModel vs a plain Keras model vs a vectorized_map reward.

On a 4-conv + 2-dense CNN (no BatchNorm), batch 128 of 32x32x3 random-normal images
with random labels (a speed benchmark: the pixel values do not change the cost), it
trains three variants from the same initial weights with ``model.fit``:

* ``plain``: the backbone itself, a ``keras.Model``;
* ``gar``: ``gar_tf.GARModel(backbone)``, computing and logging the "next" reward;
* ``vmap``: the same reward computed naively, per-example gradients by
  ``tf.vectorized_map`` kept flattened in a variable until the next step.

Step times are measured in one process, the variants interleaved in rounds so that
machine noise hits all of them alike. Peak memory is the peak resident set size
(``VmHWM``) of a child process per variant. Run ``python benchmarks/overhead.py
--help`` for the options; docs/benchmarks.md has the results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

# Runs from a checkout without installing the package; shares the trainers' flag checks.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from gar_tf_trainers import _cli  # noqa: E402

VARIANTS = ("plain", "gar", "vmap")
GOAL_GAR_OVER_PLAIN = 1.25
GOAL_VMAP_OVER_GAR = 5.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; the defaults run the full benchmark."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--batch-size", type=int, default=128, help="examples per step")
    parser.add_argument(
        "--rounds",
        type=int,
        default=20,
        help="timed rounds; each round runs one fit() of every variant, in rotating order",
    )
    parser.add_argument(
        "--steps-per-round",
        type=int,
        default=5,
        help="training steps per fit() call; the first step of each call is not timed "
        "(GARModel has no pending batch to reward there)",
    )
    parser.add_argument(
        "--warmup-rounds",
        type=int,
        default=1,
        help="untimed rounds first (tracing, allocator and thread-pool warm-up)",
    )
    parser.add_argument(
        "--memory-steps",
        type=int,
        default=10,
        help="training steps of the child process that measures each variant's peak "
        "memory (0 skips the memory measurement)",
    )
    parser.add_argument(
        "--vmap-gradient",
        choices=("sum", "backward"),
        default="sum",
        help="how the vmap baseline gets the batch gradient G: 'sum' adds up its "
        "per-example gradients (one pass, the cheapest naive form); 'backward' runs an "
        "ordinary batched backward pass as well, as a plain train step would",
    )
    parser.add_argument(
        "--learning-rate", type=float, default=0.01, help="SGD learning rate of every variant"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the data")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run of about a minute: 2 rounds of 4 steps, 3 memory steps "
        "(overrides --rounds, --steps-per-round and --memory-steps)",
    )
    parser.add_argument(  # internal: the parent runs one such child per variant
        "--child", choices=VARIANTS, help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.steps_per_round, args.memory_steps = 2, 4, 3
    problems = (
        _cli.at_least(args, 2, "steps_per_round")
        + _cli.at_least(args, 1, "rounds", "batch_size")
        + _cli.at_least(args, 0, "warmup_rounds", "memory_steps")
        + _cli.positive(args, "learning_rate")
    )
    if problems:
        parser.error("\n  ".join(problems))
    return args


def proc_status_kib(field: str) -> int:
    """A ``/proc/self/status`` field in KiB (e.g. ``VmHWM``, the peak resident set)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def run_child(args: argparse.Namespace) -> None:
    """Trains one variant for ``--memory-steps`` steps and prints its memory as JSON."""
    from _overhead_models import build_backbone, make_dataset, make_variant

    backbone = build_backbone(args.seed)
    model = make_variant(args.child, backbone, backbone.get_weights(), args)
    dataset = make_dataset(args.memory_steps, args.batch_size, args.seed)
    before = proc_status_kib("VmRSS")
    model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    print(json.dumps({"before_kib": before, "peak_kib": proc_status_kib("VmHWM")}))


def measure_memory(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Per variant, peak RSS (MiB) of a child process training only that variant."""
    out = {}
    for name in VARIANTS:
        command = [sys.executable, __file__, "--child", name]
        command += ["--memory-steps", str(args.memory_steps), "--seed", str(args.seed)]
        command += ["--batch-size", str(args.batch_size)]
        command += ["--learning-rate", str(args.learning_rate)]
        command += ["--vmap-gradient", args.vmap_gradient]
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        data = json.loads(result.stdout.strip().splitlines()[-1])
        out[name] = {
            "peak": data["peak_kib"] / 1024,
            "training": (data["peak_kib"] - data["before_kib"]) / 1024,
        }
        print(f"  memory of {name}: {out[name]['peak']:.0f} MiB peak", flush=True)
    return out


def machine_info() -> dict[str, str]:
    """CPU, core count, memory, load and library versions."""
    import keras
    import tensorflow as tf

    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line),
        platform.processor() or "unknown",
    )
    flags = next((line for line in cpuinfo.splitlines() if line.startswith("flags")), "")
    meminfo = Path("/proc/meminfo").read_text().splitlines()[0].split()
    return {
        "cpu": model + (" (AVX-512)" if "avx512f" in flags else ""),
        "nproc": str(len(os.sched_getaffinity(0))),
        "memory": f"{int(meminfo[1]) / 2**20:.1f} GiB",
        "load average (1/5/15 min)": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (linear interpolation)."""
    import numpy as np

    return float(np.quantile(values, q))


def report(
    rounds: dict[str, list[list[float]]],
    memory: dict[str, dict[str, float]],
    check: dict[str, float],
    info: dict[str, str],
    args: argparse.Namespace,
) -> None:
    """Prints the machine, the reward check, the markdown table and the goal verdicts."""
    print("\n## Machine\n")
    for key, value in info.items():
        print(f"- {key}: {value}")
    print(
        "\nData: random-normal 32x32x3 images, random labels (speed benchmark). "
        f"Batch {args.batch_size}, SGD lr {args.learning_rate}, sparse CE from logits, "
        "steps_per_execution=1, jit_compile off (auto = off on CPU). vmap baseline: "
        f"batch gradient by {args.vmap_gradient!r} (--vmap-gradient)."
    )
    print("\n## Reward check (batch 0 rewarded with G_1)\n")
    print(
        f"- reference (gar_tf.per_example_alignment): mean {check['reference_mean']:.4e}, "
        f"std {check['reference_std']:.4e}"
    )
    print(
        f"- GARModel logged: mean {check['gar_mean']:.4e}, std {check['gar_std']:.4e} "
        f"(|diff| / max|r|: {check['gar_mean_rel_error']:.1e}, {check['gar_std_rel_error']:.1e})"
    )
    print(
        f"- vmap baseline: mean {check['vmap_mean']:.4e}, std {check['vmap_std']:.4e}, "
        f"max |r_vmap - r_ref| / max|r| = {check['vmap_max_rel_error']:.1e}"
    )
    worst = max(
        check["vmap_max_rel_error"], check["gar_mean_rel_error"], check["gar_std_rel_error"]
    )
    print(f"- agreement: {'yes' if worst < 1e-3 else 'NO'} (worst relative error {worst:.1e})")

    steps = {name: [t for r in times for t in r] for name, times in rounds.items()}
    median = {name: statistics.median(t) for name, t in steps.items()}
    print("\n## Step time and peak memory\n")
    print(
        "| variant | median ms/step | p25–p75 ms | fastest ms | timed steps | × plain "
        "| peak RSS MiB | RSS growth in fit MiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    labels = {
        "plain": "plain `keras.Model`",
        "gar": "`GARModel` (next reward)",
        "vmap": "`vectorized_map` reward",
    }
    for name in VARIANTS:
        t = steps[name]
        mem = memory.get(name)
        peak = f"{mem['peak']:.0f}" if mem else "n/a"
        growth = f"{mem['training']:.0f}" if mem else "n/a"
        print(
            f"| {labels[name]} | {1e3 * median[name]:.1f} | {1e3 * quantile(t, 0.25):.1f}–"
            f"{1e3 * quantile(t, 0.75):.1f} | {1e3 * min(t):.1f} | {len(t)} "
            f"| {median[name] / median['plain']:.2f} "
            f"| {peak} | {growth} |"
        )

    def per_round(a: str, b: str) -> list[float]:
        return [
            statistics.median(ra) / statistics.median(rb) for ra, rb in zip(rounds[a], rounds[b])
        ]

    print("\n## Goals (verdict on the ratio of the medians)\n")
    for (a, b), goal, better in (
        (("gar", "plain"), GOAL_GAR_OVER_PLAIN, "≤"),
        (("vmap", "gar"), GOAL_VMAP_OVER_GAR, "≥"),
    ):
        ratio = median[a] / median[b]
        paired = per_round(a, b)
        met = ratio <= goal if better == "≤" else ratio >= goal
        print(
            f"- {a} / {b} {better} {goal}: {ratio:.2f} → {'met' if met else 'NOT met'} "
            f"(median of per-round ratios {statistics.median(paired):.2f}, range "
            f"{min(paired):.2f}–{max(paired):.2f}; fastest-step ratio "
            f"{min(steps[a]) / min(steps[b]):.2f})"
        )
    print(
        "\nStep time: wall time between on_train_batch_begin and on_train_batch_end, "
        f"{args.warmup_rounds} warm-up round(s) and the first step of every fit() call "
        "dropped. Peak memory: VmHWM (peak resident set) from /proc/self/status of a "
        f"child process that builds one variant and fits it for {args.memory_steps} steps "
        "(tf.config.experimental.get_memory_info is not available for CPU:0); growth is "
        "VmHWM minus VmRSS just before fit() (tracing, activations, gradients, pending state)."
    )


def main(argv: list[str] | None = None) -> None:
    """Runs the benchmark (or, with ``--child``, one memory measurement)."""
    args = parse_args(argv)
    if args.child:
        run_child(args)
        return
    from _overhead_models import (
        build_backbone,
        check_rewards,
        make_dataset,
        make_variant,
        time_variants,
    )

    started = time.perf_counter()
    info = machine_info()
    backbone = build_backbone(args.seed)
    weights = backbone.get_weights()
    print(f"backbone: {backbone.count_params():,} parameters", flush=True)
    print("checking that the rewards agree...", flush=True)
    check = check_rewards(backbone, weights, args)
    print("timing (variants interleaved in rounds)...", flush=True)
    models = {name: make_variant(name, backbone, weights, args) for name in VARIANTS}
    dataset = make_dataset(args.steps_per_round, args.batch_size, args.seed)
    rounds = time_variants(models, dataset, args)
    memory = {}
    if args.memory_steps:
        print("measuring peak memory (one child process per variant)...", flush=True)
        memory = measure_memory(args)
    report(rounds, memory, check, info, args)
    print(f"\nTotal time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
