"""Markdown tables from split_mixture records: probabilities, time to separate, test accuracy
and paired differences against the uniform mixture and the clean-only oracle.

Example: ``python -m gar_tf_trainers.split_mixture_report
docs/results/split_mixture/graded_evidence.json``
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from gar_tf_trainers._stats import paired


def first_below(trace: list[dict], name: str, level: float) -> int | None:
    """The first recorded step from which ``name``'s probability stays below ``level``."""
    step = None
    for record in trace:
        below = record[name] < level
        step = None if not below else record["step"] if step is None else step
    return step


def spread(probabilities: dict) -> float:
    """max - min of the split probabilities (a trace record's ``step`` left out)."""
    values = [v for k, v in probabilities.items() if k != "step"]
    return max(values) - min(values)


def noise_order(names: list[str], rates: list[float]) -> list[str]:
    """Split names from the least to the most noisy."""
    return [n for _, n in sorted(zip(rates, names))]


def corruption_rates(names: list[str], rates: list[float]) -> list[float]:
    """Each split's share of corrupted examples: its label-noise rate, 1 for a white-noise
    split (``k:noise``)."""
    return [1.0 if name.endswith(":noise") else r for name, r in zip(names, rates)]


def gar_rows(results: dict) -> list[str]:
    """One row per seed: final probabilities, checks and time to separate."""
    per_pass = results["steps_per_pass"]
    rows = []
    for e in (e for e in results["runs"] if e["run"] == "gar"):
        p, trace = e["final_probabilities"], e["probability_trace"]
        rates = corruption_rates(list(p), results["noise_rates"])
        names = noise_order(list(p), rates)
        k = len(names)
        probs = " / ".join(f"{p[n]:.3f}" for n in names)
        worst, rate = names[-1], max(rates)
        if rate == 0:  # all clean
            most = max(spread(record) for record in trace)
            check = f"spread {spread(p):.3f} (largest on the way {most:.3f})"
        else:
            rate_of = dict(zip(p, rates))
            ordered = all(p[a] > p[b] for a in names for b in names if rate_of[a] < rate_of[b])
            level = 0.10 if rates.count(0.0) == k - 1 else 0.5 / k
            step = first_below(trace, worst, level)
            when = "never" if step is None else f"step {step} ({step / per_pass:.2f} passes)"
            check = f"worst < {level:.3f}: {when}; ordered: {'yes' if ordered else 'NO'}"
            second = names[1] if k > 2 and rates.count(0.0) == 1 else None
            if second:
                check += f"; {second} keeps {p[second] * k:.2f} of uniform"
            clean = {n: p[n] for n in names if rate_of[n] == 0}
            if len(clean) > 1:
                check += f"; clean spread {spread(clean):.3f}"
        rows.append(f"| {e['seed']} | {probs} | {check} | {e['test_accuracy']:.4f} |")
    return rows


def accuracy_rows(results: dict) -> list[str]:
    """Mean ± std of each run's test accuracy, and GAR's paired differences."""
    by_run: dict[str, dict[int, float]] = {}
    for e in results["runs"]:
        by_run.setdefault(e["run"], {})[e["seed"]] = e["test_accuracy"]
    rows = []
    for run, accs in by_run.items():
        values = list(accs.values())
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1))
        rows.append(f"| {run} | {mean:.4f} ± {std:.4f} | {len(values)} |")
    for other in ("uniform", "oracle"):
        if "gar" in by_run and other in by_run:
            seeds = sorted(set(by_run["gar"]) & set(by_run[other]))
            d = paired([by_run["gar"][s] for s in seeds], [by_run[other][s] for s in seeds])
            rows.append(
                f"| gar − {other} | {d['mean']:+.4f} ± {d['std']:.4f} "
                f"[95%: {d['low']:+.4f}, {d['high']:+.4f}] | {d['n']} |"
            )
    return rows


def with_baselines(results: dict, baselines: dict | None) -> dict:
    """``results`` plus the uniform/oracle runs of ``baselines`` (another record of the same
    data, seeds and steps) that it lacks."""
    if baselines is None:
        return results
    if (baselines["steps"], baselines["noise_rates"]) != (results["steps"], results["noise_rates"]):
        raise ValueError("the baselines record has other steps or noise rates")
    have = {(e["run"], e["seed"]) for e in results["runs"]}
    extra = [e for e in baselines["runs"] if (e["run"], e["seed"]) not in have]
    return {**results, "runs": results["runs"] + extra, "baselines": baselines["command"]}


def report(path: Path, baselines: Path | None = None) -> str:
    results = json.loads(path.read_text())
    results = with_baselines(results, baselines and json.loads(baselines.read_text()))
    title = path.parent.name if path.stem == "results" else path.stem
    names = noise_order(
        list(next(e for e in results["runs"] if e["run"] == "gar")["final_probabilities"]),
        results["noise_rates"],
    )
    lines = [
        f"### {title}",
        "",
        f"`{results['command']}` ({results['steps']} steps, {results['steps_per_pass']} per pass)",
        "",
        f"| seed | p ({' / '.join(names)}) | separation | GAR acc |",
        "|---|---|---|---|",
        *gar_rows(results),
        "",
        "| run | test accuracy (mean ± std) | seeds |",
        "|---|---|---|",
        *accuracy_rows(results),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="+", type=Path, help="results.json files")
    p.add_argument(
        "--baselines",
        type=Path,
        default=None,
        help="a record whose uniform/oracle runs complete each of the results (same data, "
        "seeds and steps); default: none",
    )
    args = p.parse_args()
    for path in args.results:
        print(report(path, args.baselines))


if __name__ == "__main__":
    main()
