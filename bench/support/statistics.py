"""Percentiles and the summaries every benchmark reports."""

import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None, "mean": None}
    return {
        "p50": round(percentile(values, 0.5), 3),
        "p99": round(percentile(values, 0.99), 3),
        "max": round(max(values), 3),
        "mean": round(statistics.fmean(values), 3),
    }


def ms(seconds: list[float]) -> float | None:
    return round(statistics.median(seconds) * 1000, 4) if seconds else None


def p95_ms(seconds: list[float]) -> float | None:
    if len(seconds) < 2:
        return None
    return round(statistics.quantiles(seconds, n=20)[-1] * 1000, 4)
