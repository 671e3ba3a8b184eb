"""Percentiles and the summaries every benchmark reports."""

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any


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


def nearest_rank(ordered: Sequence[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def taking_turns(
    calls: dict[str, Callable[[], Any]], repeats: int, step: Callable[[], Any]
) -> dict[str, dict[str, float]]:
    """Each call ``repeats`` times, taking turns so that drift hits them alike (each
    answer must be a 200); each one's median and p99 (nearest rank) in ms."""
    names = list(calls)
    timings: dict[str, list[float]] = {name: [] for name in names}
    for turn in range(len(names) * repeats):
        name = names[turn % len(names)]
        began = time.perf_counter()
        answer = calls[name]()
        timings[name].append((time.perf_counter() - began) * 1000)
        assert answer.status_code == 200, answer.text[:2000]
        step()
    return {
        name: {
            "p50_ms": round(statistics.median(found), 2),
            "p99_ms": round(nearest_rank(sorted(found), 0.99), 2),
        }
        for name, found in timings.items()
    }
