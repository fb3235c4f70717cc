"""Test accuracy of a GAR-learned augmentation policy vs fixed policies, on real data.

Trains the same backbone with the same schedule on a stratified subset of real
Fashion-MNIST (or MNIST) under each configuration, for several seeds, and evaluates on
the full 10,000-image test set:

* ``cropflip``: the base augmentation only (zero-pad 4 px, random crop, random mirror;
  no mirror for MNIST, whose digits it would change);
* ``randaugment``: base + RandAugment(N=2, M=9) on the standard space;
* ``trivialaugment``: base + TrivialAugment-Wide;
* ``uniformaugment``: base + UniformAugment (2 slots, each kept with p = 1/2);
* ``uniform``: base + GAR's own search space with uniform ops and levels, fixed (what
  GAR starts from: it isolates what the learning adds);
* ``gar``: base + an ``AugmentationPolicy`` learned by GAR in the same run
  (``--gar-comparison alternate``: policy and clean steps alternate; ``held_out``: a
  stratified share of the training subset is held out for the comparison batches);
* ``gar_evidence``: as ``gar``, with the op distribution learned by the evidence rule
  (``op_rule="evidence"``: ops move only as far as their mean rewards differ beyond the
  noise; levels by REINFORCE as in ``gar``);
* ``transfer``: base + a policy exported by an earlier GAR run (``--policy``), fixed.

The fixed policies run in ``tf.data``; GAR's runs inside the train step. Each finished
run is stored as JSON under ``--runs-dir`` and skipped when the command is repeated, so
an interrupted sweep resumes; one command per dataset, both into the same ``--out``. At
the end the script writes ``<out>.md`` (per dataset: table, GAR's paired differences,
per-run numbers), ``<out>.json`` (the list of run records) and ``<out>.png`` (bar chart).
docs/quality.md has the results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tensorflow as tf

# Runs from a checkout without installing the package; shares the trainers' CLI pieces.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from gar_tf_trainers import _cli, _machine, _stats  # noqa: E402

CONFIGS = (
    "cropflip", "randaugment", "trivialaugment", "uniformaugment", "uniform", "gar", "gar_evidence",
    "transfer",
)  # fmt: skip
# The configurations whose policy GAR learns, with the rule that learns its op distribution.
LEARNED = {"gar": "reinforce", "gar_evidence": "evidence"}
LABELS = {
    "cropflip": "crop/flip only",
    "randaugment": "RandAugment (N=2, M=9)",
    "trivialaugment": "TrivialAugment-Wide",
    "uniformaugment": "UniformAugment (N=2)",
    "uniform": "uniform over GAR's space (fixed)",
    "gar": "GAR-learned (same run)",
    "gar_evidence": "GAR-learned, evidence rule (same run)",
    "transfer": "transferred GAR policy (fixed)",
}
GOAL_TIME_OVER_TA = 1.3
GOAL_MAX_OP = 0.5  # no op but Identity above this at the end (else: collapsed)
UNFLIPPED = ("mnist",)  # digits: the base augmentation crops but does not mirror
# Ops in each --gar-ops space (checked against gar_tf.augment in tests/test_cli.py).
GAR_SPACE_SIZES = {"trivialaugment": 14, "wide": 19, "standard": 14}


def build_parser() -> argparse.ArgumentParser:
    p = _cli.parser(__doc__)
    _cli.add_backbone(p, per_class=300, model="resnet8")
    _cli.add_training(
        p, epochs=25, learning_rate=2e-3, learning_rate_help="Adam, cosine-decayed to 0"
    )
    p.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="one run per seed and config"
    )
    p.add_argument(
        "--configs",
        nargs="+",
        choices=CONFIGS,
        default=list(CONFIGS),
        help="which configurations to train: "
        + ", ".join(f"{name} ({label})" for name, label in LABELS.items()),
    )
    p.add_argument(
        "--gar-ops",
        default="trivialaugment",
        choices=["trivialaugment", "wide", "standard"],
        help="GAR's search space: trivialaugment (TrivialAugment-Wide's 14 ops and ranges), "
        "wide (19 ops) or standard",
    )
    p.add_argument("--gar-max-ops", type=int, default=1, help="GAR op slots per image")
    p.add_argument(
        "--gar-comparison",
        choices=["alternate", "held_out"],
        default="held_out",
        help="GAR's comparison gradient: held_out (a stratified --held-out-share never "
        "trained on; the same number of optimizer steps as the other configurations) or "
        "alternate (policy and clean steps alternate)",
    )
    p.add_argument(
        "--held-out-share",
        type=float,
        default=0.2,
        help="share held out under --gar-comparison held_out",
    )
    _cli.add_policy(p, op_rule=False)  # the configuration names the op rule
    p.add_argument(
        "--policy",
        default="saved_policies/fashion_mnist_seed0",
        help="exported policy for the transfer configuration",
    )
    p.add_argument("--runs-dir", default=None, help="per-run JSON (default: <out>_runs)")
    p.add_argument(
        "--out",
        default=None,
        help="output stem: <out>.md, .json, .png (default: docs/results/quality)",
    )
    return p


def out_stem(args: argparse.Namespace) -> Path:
    return Path(args.out or "docs/results/quality")


def runs_dir(args: argparse.Namespace) -> Path:
    return Path(args.runs_dir or f"{out_stem(args)}_runs")


def run_path(folder: Path, dataset: str, config: str, seed: int) -> Path:
    return folder / f"{dataset}_{config}_seed{seed}.json"


def check_gar(args: argparse.Namespace) -> list[str]:
    """GAR's slots; the transfer configuration's policy export."""
    problems = _cli.at_least(args, 1, "gar_max_ops")
    if set(LEARNED) & set(args.configs) and args.gar_comparison == "held_out":
        problems += _cli.check_held_out_share(args, args.held_out_share)
    ops = GAR_SPACE_SIZES[args.gar_ops]
    if args.min_op_probability >= 1 / ops:
        problems.append(
            f"--min-op-probability must be below 1/{ops} for the {ops} ops of --gar-ops "
            f"{args.gar_ops}, got {args.min_op_probability}"
        )
    if "transfer" in args.configs and not (Path(args.policy) / "policy.json").exists():
        problems.append(
            f"--configs transfer needs an exported policy, and {args.policy} has no "
            "policy.json: pass --policy <an export of gar_tf_trainers/augment_search.py> or leave "
            "transfer out of --configs"
        )
    return problems


def check_runs_dir(args: argparse.Namespace) -> list[str]:
    """Stored runs of this dataset were made with these settings (else they would mix)."""
    folder = runs_dir(args)
    stored = sorted(folder.glob(f"{args.dataset}_*.json")) if folder.is_dir() else []
    others = [p.name for p in stored if not matches(json.loads(p.read_text()), args)]
    if not others:
        return []
    return [
        f"{folder} holds runs made with other settings ({', '.join(others[:3])}"
        f"{', ...' if len(others) > 3 else ''}): pass another --runs-dir (or --out), or "
        "delete them to rerun"
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags, all checked (argparse's usage error, exit status 2, names what to pass)."""
    return _cli.parse(
        build_parser(),
        argv,
        _cli.check_training,
        _cli.check_backbone,
        _cli.check_policy,
        check_gar,
        check_runs_dir,
    )


def _fixed_policy(config: str, args: argparse.Namespace):
    """``fn(images, seed)`` applied after crop/flip, or None."""
    import gar_tf
    from gar_tf.augment import baselines

    if config == "randaugment":
        return baselines.rand_augment
    if config == "trivialaugment":
        return baselines.trivial_augment_wide
    if config == "uniformaugment":
        return baselines.uniform_augment
    if config == "uniform":  # GAR's policy as it starts: zero logits
        return gar_tf.AugmentationPolicy(
            ops=_gar_ops(args.gar_ops), max_ops=args.gar_max_ops
        ).augment
    if config == "transfer":
        policy = gar_tf.load_policy(args.policy)
        return policy.augment
    return None


def _train_data(x, y, args, seed: int, policy_fn, held=None) -> tf.data.Dataset:
    """Shuffled batches with crop/flip and the fixed policy, each batch seeded (seed, i);
    each paired with a held-out batch (plain, as the model sees them in test) if ``held``."""
    import tensorflow as tf

    import gar_tf
    from gar_tf.augment import baselines
    from gar_tf_trainers import _build

    def augment(i, batch):
        images, labels = batch
        seeds = tf.random.experimental.stateless_split(tf.stack([tf.cast(seed, tf.int64), i]), 2)
        images = baselines.crop_flip(images, seeds[0], flip=args.dataset not in UNFLIPPED)
        if policy_fn is not None:
            images = policy_fn(images, seeds[1])
        return images, labels

    train = (
        _build.batches(x, y, args.batch_size, seed)
        .enumerate()
        .map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    )
    if held is not None:  # repeated, so the optimizer steps match the other configurations
        train = gar_tf.with_comparison(
            train.repeat(), _build.batches(*held, args.batch_size, seed + 1)
        )
    return train.prefetch(tf.data.AUTOTUNE)


def _gar_ops(name: str):
    import gar_tf

    return list(gar_tf.augment.space_ops("standard")) if name == "trivialaugment" else name


SETTINGS = ("dataset", "per_class", "epochs", "batch_size", "learning_rate", "model")
# The options each configuration's result depends on, beside SETTINGS.
CONFIG_SETTINGS = {
    "uniform": ("gar_ops", "gar_max_ops"),
    "gar": (
        "gar_ops", "gar_max_ops", "gar_comparison", "held_out_share", "policy_lr",
        "policy_beta1", "ensemble", "levels", "min_op_probability",
    ),
    "transfer": ("policy",),
}  # fmt: skip
CONFIG_SETTINGS["gar_evidence"] = CONFIG_SETTINGS["gar"]


def settings(args: argparse.Namespace, config: str | None) -> dict:
    """The options a run of ``config`` depends on; runs with other settings are not mixed in."""
    keys = SETTINGS + CONFIG_SETTINGS.get(config, ())
    if config in LEARNED and args.gar_comparison != "held_out":
        keys = tuple(k for k in keys if k != "held_out_share")
    return {k: getattr(args, k) for k in keys}


def matches(record: dict, args: argparse.Namespace) -> bool:
    """Whether a stored run was made with the settings its configuration depends on."""
    stored = record.get("settings", {})
    return all(stored.get(k) == v for k, v in settings(args, record.get("config")).items())


def run_one(config: str, seed: int, args: argparse.Namespace, data) -> dict:
    """Trains and evaluates one (config, seed); returns its result record."""
    import keras
    import numpy as np

    import gar_tf
    from gar_tf_trainers import _build

    (x, y), (x_test, y_test) = data
    keras.utils.set_random_seed(seed)
    backbone = _build.backbone(args.model, x.shape[1:])
    steps_per_epoch = len(y) // args.batch_size
    steps = args.epochs * steps_per_epoch
    policy, held = None, None
    if config in LEARNED:
        policy = _build.policy(
            args,
            ops=_gar_ops(args.gar_ops),
            max_ops=args.gar_max_ops,
            seed=seed,
            op_rule=LEARNED[config],
        )
        model = gar_tf.GARModel(backbone, policies=[policy], clean_comparison=args.gar_comparison)
        if args.gar_comparison == "held_out":
            (x, y), held = gar_tf.datasets.held_out_split(x, y, args.held_out_share, seed=seed)
    else:
        model = backbone
    schedule = keras.optimizers.schedules.CosineDecay(args.learning_rate, steps)
    _build.compile_classifier(model, schedule)
    train = _train_data(x, y, args, seed, _fixed_policy(config, args), held)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    per_epoch = steps_per_epoch if held is not None else None  # the paired data is infinite
    history = model.fit(train, epochs=args.epochs, steps_per_epoch=per_epoch, verbose=0)
    seconds = time.perf_counter() - start
    _, accuracy = model.evaluate(x_test.astype(np.float32), y_test, batch_size=1000, verbose=0)
    record = {
        "dataset": args.dataset,
        "config": config,
        "seed": seed,
        "test_accuracy": round(float(accuracy), 4),
        "train_accuracy": round(float(history.history["accuracy"][-1]), 4),
        "train_seconds": round(seconds, 1),
        "steps": steps,
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "settings": settings(args, config),
    }
    if policy is not None:
        record["policy"] = policy.policy_string()
        distance = policy.distance_from_uniform()
        record.update(tv_ops=round(distance["ops"], 4), tv_levels=round(distance["levels"], 4))
        record["op_probabilities"] = {
            name: round(op["probability"], 4) for name, op in policy.summary()["ops"].items()
        }
        if policy.op_rule == "evidence":  # what the rule saw: per op, a ± se (one member)
            record["op_advantages"] = {
                name: {key: round(values[0], 4) for key, values in stats.items()}
                for name, stats in policy.op_advantages().items()
            }
    return record


def leading_op(policy: str) -> tuple[str, float]:
    """The most likely op other than Identity, from a record's ``policy_string``."""
    ops = (entry.rsplit(" ", 1) for entry in policy.split(" | ", 1)[1].split(", "))
    return max(
        ((name, float(value.split("@")[0])) for name, value in ops if name != "Identity"),
        key=lambda op: op[1],
    )


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(records: list[dict]) -> dict:
    """Per dataset: each config's mean ± std accuracy and time; each GAR-learned config minus
    each fixed one, paired by seed (mean and 95% t interval); its time over TrivialAugment's,
    per seed."""
    summary = {}
    for dataset in sorted({r["dataset"] for r in records}):
        runs = [r for r in records if r["dataset"] == dataset]
        by_run = {(r["config"], r["seed"]): r for r in runs}
        rows = {}
        for config in CONFIGS:
            mine = sorted((r for r in runs if r["config"] == config), key=lambda r: r["seed"])
            if mine:
                acc, acc_std = _mean_std([r["test_accuracy"] for r in mine])
                sec, sec_std = _mean_std([r["train_seconds"] for r in mine])
                rows[config] = {
                    "seeds": [r["seed"] for r in mine],
                    "per_seed": [r["test_accuracy"] for r in mine],
                    "accuracy": acc,
                    "accuracy_std": acc_std,
                    "seconds": sec,
                    "seconds_std": sec_std,
                }
        differences, ratios = {}, {}
        for learned in (c for c in LEARNED if c in rows):
            differences[learned] = {}
            for other in rows:
                seeds = [s for s in rows[learned]["seeds"] if (other, s) in by_run]
                if other not in LEARNED and len(seeds) > 1:
                    differences[learned][other] = {
                        "seeds": seeds,
                        **_stats.paired(
                            [by_run[learned, s]["test_accuracy"] for s in seeds],
                            [by_run[other, s]["test_accuracy"] for s in seeds],
                        ),
                    }
            ratios[learned] = [
                by_run[learned, s]["train_seconds"] / by_run["trivialaugment", s]["train_seconds"]
                for s in rows[learned]["seeds"]
                if ("trivialaugment", s) in by_run
            ]
        summary[dataset] = {
            "rows": rows,
            "learned_minus": differences,
            "time_over_trivialaugment": ratios,
        }
    return summary


def machine() -> str:
    import keras
    import tensorflow as tf

    return (
        f"{os.cpu_count()} CPU cores ({_machine.cpu()}), no GPU; "
        f"Python {platform.python_version()}, "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}"
    )


def write_report(summary: dict, records: list[dict], command: str, out: Path) -> None:
    """``<out>.md`` (per dataset: table, paired differences, per run), ``<out>.json`` (the
    list of run records) and ``<out>.png`` (bar chart, one panel per dataset)."""
    lines = [
        "# Augmentation quality: GAR-learned policies against fixed ones",
        "",
        f"Last command: `{command}`",
        "",
        f"Machine: {machine()}.",
    ]
    for dataset, part in summary.items():
        settings = next(r["settings"] for r in records if r["dataset"] == dataset)
        lines += [
            "",
            f"## {dataset}: {10 * settings['per_class']} training images, {settings['model']}, "
            f"{settings['epochs']} epochs of batch {settings['batch_size']}",
            "",
            "| configuration | test accuracy (mean ± std) | seeds | train time per run (s) |",
            "|---|---|---|---|",
        ]
        for config, row in part["rows"].items():
            lines.append(
                f"| {LABELS[config]} | {row['accuracy']:.4f} ± {row['accuracy_std']:.4f} "
                f"| {len(row['seeds'])} | {row['seconds']:.0f} ± {row['seconds_std']:.0f} |"
            )
        for learned, minus in part["learned_minus"].items():
            if minus:
                lines += [
                    "",
                    f"{LABELS[learned]} minus each configuration, paired by seed (95% t interval):",
                    "",
                    "| against | mean difference | 95% interval | seeds |",
                    "|---|---|---|---|",
                ]
                lines += [
                    f"| {LABELS[other]} | {d['mean']:+.4f} | [{d['low']:+.4f}, {d['high']:+.4f}] "
                    f"| {len(d['seeds'])} |"
                    for other, d in minus.items()
                ]
            ratios = part["time_over_trivialaugment"][learned]
            if ratios:
                lines += [
                    "",
                    f"{LABELS[learned]}: wall time over TrivialAugment-Wide's (same seed): "
                    + ", ".join(f"{r:.2f}" for r in ratios)
                    + f"; mean {statistics.fmean(ratios):.2f} (goal ≤ {GOAL_TIME_OVER_TA}).",
                ]
        gar = next((r for r in records if r["dataset"] == dataset and "policy" in r), None)
        if gar is not None:
            lines += ["", "GAR's settings: `" + json.dumps(gar["settings"]) + "`"]
        lines += ["", "| configuration | seed | accuracy | seconds | load avg | TV ops / levels |"]
        lines.append("|---|---|---|---|---|---|")
        mine = [r for r in records if r["dataset"] == dataset]
        for r in sorted(mine, key=lambda r: (CONFIGS.index(r["config"]), r["seed"])):
            tv = f"{r['tv_ops']:.3f} / {r['tv_levels']:.3f}" if "tv_ops" in r else ""
            lines.append(
                f"| {r['config']} | {r['seed']} | {r['test_accuracy']:.4f} | {r['train_seconds']} "
                f"| {r['load_average'][0]} → {r['load_average'][1]} | {tv} |"
            )
        for config in LEARNED:
            learned = sorted((r for r in mine if r["config"] == config), key=lambda r: r["seed"])
            if not learned:
                continue
            leading = [leading_op(r["policy"]) for r in learned]
            held = sum(p <= GOAL_MAX_OP for _, p in leading)
            lines += [
                "",
                f"{LABELS[config]}: no collapse (no op but Identity above {GOAL_MAX_OP}) in "
                f"{held} of {len(learned)} seeds; leading op per seed: "
                + ", ".join(f"{r['seed']}: {n} {p:.3f}" for r, (n, p) in zip(learned, leading)),
                "",
                "Learned policies (ops per image | op probability @ mean level):",
                "",
            ]
            lines += [f"- seed {r['seed']}: `{r['policy']}`" for r in learned]
            lines += advantage_table([r for r in learned if "op_advantages" in r])
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    ordered = sorted(records, key=lambda r: (r["dataset"], CONFIGS.index(r["config"]), r["seed"]))
    out.with_suffix(".json").write_text(json.dumps(ordered, indent=1) + "\n")
    plot_bars(summary, out.with_suffix(".png"))


def advantage_table(runs: list[dict]) -> list[str]:
    """Markdown lines: per op, the evidence rule's mean standardised advantage ``a ± se`` at
    the end of each seed, and the mean of ``a`` over seeds with its 95% t interval (an op
    whose interval excludes 0 is better or worse in every seed's data, not only in one)."""
    if not runs:
        return []
    ops = list(runs[0]["op_advantages"])
    seeds = " | ".join(f"seed {r['seed']}" for r in runs)
    lines = [
        "",
        "Evidence rule, per op: mean standardised advantage a ± se at the end of each seed; "
        "mean of a over seeds (95% t interval):",
        "",
        f"| op | {seeds} | mean over seeds |",
        "|---" * (len(runs) + 2) + "|",
    ]
    rows = []
    for op in ops:
        values = [r["op_advantages"][op]["a"] for r in runs]
        across = _stats.paired(values, [0.0] * len(values))
        cells = " | ".join(
            f"{r['op_advantages'][op]['a']:+.3f} ± {r['op_advantages'][op]['se']:.3f}" for r in runs
        )
        rows.append(
            (
                across["mean"],
                f"| {op} | {cells} | {across['mean']:+.3f} "
                f"[{across['low']:+.3f}, {across['high']:+.3f}] |",
            )
        )
    return lines + [row for _, row in sorted(rows, reverse=True)]


def plot_bars(summary: dict, path: Path) -> None:
    """Mean test accuracy with ± std error bars and each seed's value, a panel per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(summary), 1, figsize=(8, 3.2 * len(summary)), dpi=120, squeeze=False
    )
    for ax, (dataset, part) in zip(axes[:, 0], summary.items()):
        rows = part["rows"]
        names = list(rows)
        ax.bar(
            range(len(names)),
            [rows[c]["accuracy"] for c in names],
            yerr=[rows[c]["accuracy_std"] for c in names],
            capsize=4,
            color=["tab:orange" if c in LEARNED else "tab:blue" for c in names],
        )
        for i, c in enumerate(names):
            ax.plot([i] * len(rows[c]["per_seed"]), rows[c]["per_seed"], "k.", ms=4)
        ax.set_xticks(
            range(len(names)),
            labels=[LABELS[c] for c in names],
            rotation=25,
            fontsize=7,
            ha="right",
        )
        values = [v for c in names for v in rows[c]["per_seed"]]
        ax.set_ylim(max(0.0, min(values) - 0.02), min(1.0, max(values) + 0.01))
        ax.set_ylabel("test accuracy")
        seeds = max(len(rows[c]["seeds"]) for c in names)
        ax.set_title(f"{dataset} (mean ± std over up to {seeds} seeds; dots: seeds)", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    from gar_tf_trainers import _build

    command = shlex.join(
        ["python", "benchmarks/quality.py", *(sys.argv[1:] if argv is None else argv)]
    )
    out = out_stem(args)
    folder = runs_dir(args)
    folder.mkdir(parents=True, exist_ok=True)
    data = (
        _build.load(args, "train", subset_per_class=args.per_class, seed=0),
        _build.load(args, "test"),
    )
    for seed in args.seeds:
        for config in args.configs:
            path = run_path(folder, args.dataset, config, seed)
            if path.exists():  # made with these settings: check_runs_dir
                continue
            record = run_one(config, seed, args, data)
            path.write_text(json.dumps(record, indent=1) + "\n")
            print(json.dumps(record), flush=True)
    # This dataset's runs were checked against these settings; other datasets' runs are
    # reported as they were made (each with its settings).
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    summary = summarise(records)
    write_report(summary, records, command, out)
    print(out.with_suffix(".md").read_text())
    return summary


if __name__ == "__main__":
    main()
