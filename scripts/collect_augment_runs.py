"""Collects gar_tf_trainers/augment_search.py runs (their summary.json) into one JSON record.

    python scripts/collect_augment_runs.py OUT.json LABEL=RUN_DIR [LABEL=RUN_DIR ...]

Each RUN_DIR holds ``seed*/summary.json``. Adds, per run, the total-variation distance of
the learned op distribution from uniform, ``TV = ½ Σ_o |p(o) − 1/N|``, and the ops above
and below uniform; per label, mean ± std (ddof 1) of test accuracy and TV; for every two
labels, the paired (by seed) difference of test accuracy and of TV. Also records
the machine and the git commit of the working tree.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from gar_tf_trainers import _machine  # noqa: E402


def total_variation_from_uniform(probabilities: dict[str, float]) -> float:
    """½ Σ_o |p(o) − 1/N| over the N ops."""
    p = np.array(list(probabilities.values()))
    return float(0.5 * np.abs(p - 1 / len(p)).sum())


def moved(probabilities: dict[str, float], count: int = 4) -> dict[str, list]:
    """The ``count`` ops furthest above and below uniform, as ``[name, p]``."""
    ranked = sorted(probabilities.items(), key=lambda kv: kv[1])
    return {
        "up": [[n, p] for n, p in reversed(ranked[-count:])],
        "down": [[n, p] for n, p in ranked[:count]],
    }


def run_record(label: str, summary: dict) -> dict:
    ops = summary["op_probabilities"]
    return {
        "label": label,
        **summary,
        "tv_from_uniform": round(total_variation_from_uniform(ops), 4),
        **moved(ops),
    }


# Two-sided 95% quantiles of Student's t by degrees of freedom.
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306}


def paired_difference(a: dict[int, float], b: dict[int, float]) -> dict:
    """Mean of ``a[s] − b[s]`` over the common seeds s, with a 95% t interval
    ``mean ± t_{0.975, n−1} · std / √n``."""
    seeds = sorted(set(a) & set(b))
    d = np.array([a[s] - b[s] for s in seeds])
    half = _T975[len(d) - 1] * d.std(ddof=1) / np.sqrt(len(d))
    mean = float(d.mean())
    return {
        "seeds": seeds,
        "mean": round(mean, 4),
        "interval_95": [round(mean - half, 4), round(mean + half, 4)],
        "per_seed": [round(float(x), 4) for x in d],
    }


def mean_std(values: list[float]) -> list[float]:
    return [round(float(np.mean(values)), 4), round(float(np.std(values, ddof=1)), 4)]


def machine() -> dict:
    return {
        "cpu": _machine.cpu(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": version("tensorflow"),
        "keras": version("keras"),
        "note": "shared with other users' jobs; load averages in progress.log",
    }


def main(out: str, pairs: list[str]) -> None:
    runs, summary = [], {}
    for pair in pairs:
        label, folder = pair.split("=", 1)
        found = [
            run_record(label, json.loads(p.read_text()))
            for p in sorted(Path(folder).glob("seed*/summary.json"))
        ]
        runs += found
        summary[label] = {
            "seeds": [r["seed"] for r in found],
            "test_accuracy": mean_std([r["test_accuracy"] for r in found]),
            "tv_from_uniform": mean_std([r["tv_from_uniform"] for r in found]),
        }
    by_seed = {
        label: {key: {r["seed"]: r[key] for r in runs if r["label"] == label}
                for key in ("test_accuracy", "tv_from_uniform")}
        for label in summary
    }  # fmt: skip
    labels = list(summary)
    differences = {
        f"{a} - {b}": {k: paired_difference(by_seed[a][k], by_seed[b][k]) for k in by_seed[a]}
        for i, a in enumerate(labels)
        for b in labels[i + 1 :]
    }
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    record = {
        "machine": machine(),
        "commit": commit,
        "summary": summary,
        "paired_differences": differences,
        "runs": runs,
    }
    Path(out).write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
