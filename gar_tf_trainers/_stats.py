"""Paired differences over seeds with a 95% Student t interval (no scipy needed)."""

from __future__ import annotations

import math

# Two-sided 95% Student t quantiles by degrees of freedom.
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def paired(a: list[float], b: list[float]) -> dict:
    """Mean, std (ddof 1) and 95% t-interval ``mean ± t_{0.975, n-1} std / √n`` of the
    per-seed differences ``a - b``."""
    d = [x - y for x, y in zip(a, b)]
    n = len(d)
    mean = sum(d) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1)) if n > 1 else float("nan")
    half = T_975.get(n - 1, 1.96) * std / math.sqrt(n) if n > 1 else float("nan")
    return {"mean": mean, "std": std, "low": mean - half, "high": mean + half, "n": n}
