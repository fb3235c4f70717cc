"""Step time and peak memory of GARModel vs a plain Keras model vs a vectorized_map reward.

For each backbone of the scale table (a 4-conv CNN, the same 3x wider, an MLP, a
2-block Transformer encoder, a ResNet-20 of width 64, two Dense layers on 256 positions;
random inputs and labels: a speed benchmark, the values do not change the cost), it trains
four variants from the same initial weights with ``model.fit``:

* ``plain``: the backbone itself, a ``keras.Model``;
* ``gar``: ``gar_tf.GARModel(backbone, paths="auto")``, computing and logging the "next"
  reward, each layer's path chosen by the engine's cost model (docs/method.md §12);
* ``gar-tangent``: the same with ``paths="tangent"`` (the default: every layer on the
  tangent path);
* ``vmap``: the same reward computed naively, per-example gradients by
  ``tf.vectorized_map`` kept flattened in a variable until the next step.

Step times are measured in one process, the variants interleaved in rounds so that
machine noise hits all of them alike. Peak memory is the peak resident set size
(``VmHWM``) of a child process per variant. Run ``python benchmarks/overhead.py
--help`` for the options; docs/benchmarks.md has the results.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from gar_tf_trainers import _cli, _machine  # noqa: E402

VARIANTS = ("plain", "gar", "gar-tangent", "vmap")
#: the backbones of the scale table (built in _overhead_models.BACKBONES) and the reward
#: engine v2 goals (issue 11) for each: GAR / plain (None: no goal set).
GOAL_GAR_OVER_PLAIN = {
    "cnn": 1.10,
    "cnn-wide": 1.10,
    "mlp": 1.10,
    "transformer": 1.05,
    "resnet20-w64": 1.10,
    "dense-seq": None,
}
BACKBONES = tuple(GOAL_GAR_OVER_PLAIN)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; the defaults run the full benchmark."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--backbones",
        nargs="+",
        choices=BACKBONES,
        default=list(BACKBONES),
        help="rows of the scale table (docs/benchmarks.md describes each)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="examples per step (default: each backbone's own, 64-256, docs/benchmarks.md)",
    )
    parser.add_argument(
        "--vmap-max-gib",
        type=float,
        default=2.0,
        help="skip the vmap variant where its per-example gradients [batch, parameters] "
        "would exceed this many GiB, or where the backbone has BatchNorm (a per-example "
        "gradient of a batch-coupled model is not the reward)",
    )
    parser.add_argument(
        "--out", default=None, help="also write the records as JSON (docs/results/overhead.json)"
    )
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
    parser.add_argument("--child-backbone", choices=BACKBONES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.steps_per_round, args.memory_steps = 2, 4, 3
    problems = (
        _cli.at_least(args, 2, "steps_per_round")
        + _cli.at_least(args, 1, "rounds")
        + (_cli.at_least(args, 1, "batch_size") if args.batch_size is not None else [])
        + _cli.positive(args, "vmap_max_gib")
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
    """Trains one variant of one backbone for ``--memory-steps`` steps; prints its memory
    (and, for GAR, the bytes of its pending state) as JSON."""
    from _overhead_models import build_backbone, make_dataset, make_variant

    backbone = build_backbone(args.seed, args.child_backbone)
    model = make_variant(args.child, backbone, backbone.get_weights(), args)
    dataset = make_dataset(args.memory_steps, args.batch_size, args.seed, backbone)
    before = proc_status_kib("VmRSS")
    model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    pending = getattr(model, "pending_bytes", None)
    if args.child == "vmap":
        pending = int(model.pending.numpy().nbytes)
    print(
        json.dumps(
            {"before_kib": before, "peak_kib": proc_status_kib("VmHWM"), "pending_bytes": pending}
        )
    )


def measure_memory(
    args: argparse.Namespace, backbone: str, variants: list[str]
) -> dict[str, dict[str, float]]:
    """Per variant, peak RSS (MiB) of a child process training only that variant."""
    out = {}
    for name in variants:
        command = [sys.executable, __file__, "--child", name, "--child-backbone", backbone]
        command += ["--memory-steps", str(args.memory_steps), "--seed", str(args.seed)]
        command += ["--batch-size", str(args.batch_size)]
        command += ["--learning-rate", str(args.learning_rate)]
        command += ["--vmap-gradient", args.vmap_gradient]
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        data = json.loads(result.stdout.strip().splitlines()[-1])
        out[name] = {
            "peak": data["peak_kib"] / 1024,
            "training": (data["peak_kib"] - data["before_kib"]) / 1024,
            "pending_bytes": data["pending_bytes"],
        }
        print(f"  memory of {name}: {out[name]['peak']:.0f} MiB peak", flush=True)
    return out


def machine_info() -> dict[str, str]:
    """CPU, core count, memory, load and library versions."""
    import keras
    import tensorflow as tf

    meminfo = Path("/proc/meminfo").read_text().splitlines()[0].split()
    return {
        "cpu": _machine.cpu(),
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


LABELS = {
    "plain": "plain `keras.Model`",
    "gar": "`GARModel`, per-layer choice",
    "gar-tangent": "`GARModel`, tangent only",
    "vmap": "`vectorized_map` reward",
}


def print_check(check: dict[str, float]) -> None:
    """The reward check of one backbone: GAR's logged statistics (and the vmap rewards)
    against ``gar_tf.per_example_alignment``."""
    print(
        f"- reference (gar_tf.per_example_alignment): mean {check['reference_mean']:.4e}, "
        f"std {check['reference_std']:.4e}; GARModel logged: mean {check['gar_mean']:.4e}, "
        f"std {check['gar_std']:.4e} (|diff| / max|r|: {check['gar_mean_rel_error']:.1e}, "
        f"{check['gar_std_rel_error']:.1e})"
    )
    if "vmap_max_rel_error" in check:
        print(f"- vmap baseline: max |r_vmap - r_ref| / max|r| = {check['vmap_max_rel_error']:.1e}")
    errors = [v for k, v in check.items() if k.endswith("rel_error")]
    print(f"- agreement: {'yes' if max(errors) < 1e-3 else 'NO'} (worst {max(errors):.1e})")


def summarise(rounds: dict[str, list[list[float]]], memory: dict) -> dict[str, dict]:
    """Per variant: median / quartile / fastest ms per step, ratio to plain (of the medians
    and the median of per-round ratios), peak RSS and pending bytes."""
    steps = {name: [t for r in times for t in r] for name, times in rounds.items()}
    median = {name: statistics.median(t) for name, t in steps.items()}
    out = {}
    for name, t in steps.items():
        paired = [
            statistics.median(a) / statistics.median(b)
            for a, b in zip(rounds[name], rounds["plain"])
        ]
        mem = memory.get(name, {})
        out[name] = {
            "median_ms": 1e3 * median[name],
            "p25_ms": 1e3 * quantile(t, 0.25),
            "p75_ms": 1e3 * quantile(t, 0.75),
            "fastest_ms": 1e3 * min(t),
            "timed_steps": len(t),
            "over_plain": median[name] / median["plain"],
            "over_plain_per_round": statistics.median(paired),
            "peak_rss_mib": mem.get("peak"),
            "rss_growth_mib": mem.get("training"),
            "pending_bytes": mem.get("pending_bytes"),
        }
    return out


def _mib(value) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def print_scale_table(rows: list[dict]) -> None:
    """The markdown scale table: one row per backbone and variant."""
    print("\n## Scale table\n")
    print(
        "| backbone | params | batch | variant | median ms/step | p25–p75 ms | × plain "
        "| per-round × plain | peak RSS MiB | pending state MiB |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        for name, v in row["variants"].items():
            pending = v["pending_bytes"]
            print(
                f"| {row['backbone']} | {row['params']:,} | {row['batch']} | {LABELS[name]} "
                f"| {v['median_ms']:.1f} | {v['p25_ms']:.1f}–{v['p75_ms']:.1f} "
                f"| {v['over_plain']:.2f} | {v['over_plain_per_round']:.2f} "
                f"| {_mib(v['peak_rss_mib'])} "
                f"| {'n/a' if pending is None else f'{pending / 2**20:.1f}'} |"
            )
        if row["skipped"]:
            print(f"| {row['backbone']} | | | vmap skipped: {row['skipped']} | | | | | | |")


#: backbones whose vmap baseline crashes the process: tf.vectorized_map of the
#: Transformer's train step segfaults in TF 2.21's CPU kernels (measured 2026-12-02).
VMAP_CRASHES = ("transformer",)


def vmap_skip_reason(name: str, backbone, batch: int, max_gib: float) -> str | None:
    """Why the vmap baseline does not run on ``backbone`` (see ``--vmap-max-gib``), or None."""
    import keras

    if name in VMAP_CRASHES:
        return "tf.vectorized_map of this model segfaults (TF 2.21 CPU)"
    if any(isinstance(layer, keras.layers.BatchNormalization) for layer in backbone.layers):
        return "BatchNorm couples the examples"
    gib = batch * backbone.count_params() * 4 / 2**30
    if gib > max_gib:
        return f"per-example gradients would take {gib:.1f} GiB (> --vmap-max-gib {max_gib})"
    return None


def run_backbone(name: str, args: argparse.Namespace) -> dict:
    """Reward check, interleaved timing and memory of one backbone's variants."""
    from _overhead_models import BACKBONES as DESCRIPTIONS
    from _overhead_models import (
        build_backbone,
        check_rewards,
        dataset_batch,
        make_dataset,
        make_variant,
        time_variants,
    )

    args = argparse.Namespace(**vars(args))
    args.batch_size = args.batch_size or DESCRIPTIONS[name][1]
    backbone = build_backbone(args.seed, name)
    weights = backbone.get_weights()
    skipped = vmap_skip_reason(name, backbone, args.batch_size, args.vmap_max_gib)
    variants = [v for v in VARIANTS if not (v == "vmap" and skipped)]
    print(f"\n# {name}: {DESCRIPTIONS[name][0]}", flush=True)
    print(f"{backbone.count_params():,} parameters, batch {args.batch_size}", flush=True)
    check = check_rewards(backbone, weights, args, with_vmap="vmap" in variants)
    print_check(check)
    models = {v: make_variant(v, backbone, weights, args) for v in variants}
    paths = models["gar"].engine.describe(dataset_batch(backbone, args))
    print("- paths (per example):\n  " + "\n  ".join(map(str, paths)))
    dataset = make_dataset(args.steps_per_round, args.batch_size, args.seed, backbone)
    rounds = time_variants(models, dataset, args)
    memory = measure_memory(args, name, variants) if args.memory_steps else {}
    return {
        "backbone": name,
        "description": DESCRIPTIONS[name][0],
        "params": backbone.count_params(),
        "batch": args.batch_size,
        "check": check,
        "paths": [dataclasses.asdict(p) | {"options": dict(p.options)} for p in paths],
        "variants": summarise(rounds, memory),
        "skipped": skipped,
    }


def main(argv: list[str] | None = None) -> None:
    """Runs the benchmark (or, with ``--child``, one memory measurement)."""
    args = parse_args(argv)
    if args.child:
        run_child(args)
        return
    started = time.perf_counter()
    rows = [run_backbone(name, args) for name in args.backbones]
    info = machine_info()
    print("\n## Machine\n")
    for key, value in info.items():
        print(f"- {key}: {value}")
    print_scale_table(rows)
    print("\n## Goals (GAR / plain, ratio of the medians)\n")
    for row in rows:
        goal = GOAL_GAR_OVER_PLAIN[row["backbone"]]
        verdicts = []
        for variant, label in (("gar-tangent", "tangent, the default"), ("gar", "auto")):
            ratio = row["variants"][variant]["over_plain"]
            met = "" if goal is None else f" ({'met' if ratio <= goal else 'NOT met'})"
            verdicts.append(f"{label} {ratio:.2f}{met}")
        print(f"- {row['backbone']}: goal ≤ {goal or '(none)'}: " + ", ".join(verdicts))
    print(
        "\nStep time: wall time between on_train_batch_begin and on_train_batch_end, "
        f"{args.warmup_rounds} warm-up round(s) and the first step of every fit() call "
        "dropped; variants interleaved in rounds, order rotated. Peak memory: VmHWM of a child "
        f"process fitting one variant for {args.memory_steps} steps. Pending state: both "
        "buffers of GARModel.pending_bytes; the vmap baseline's [batch, parameters] variable."
    )
    total = time.perf_counter() - started
    print(f"\nTotal time: {total:.0f} s")
    if args.out:
        record = {
            "command": "python benchmarks/overhead.py " + " ".join(argv or sys.argv[1:]),
            "machine": info,
            "seconds": round(total),
            "rows": rows,
        }
        Path(args.out).write_text(json.dumps(record, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
