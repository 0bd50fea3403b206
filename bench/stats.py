"""Percentile summaries of latency samples."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import TypedDict


class Summary(TypedDict):
    count: int
    mean: float
    stdev: float
    min: float
    p50: float
    p90: float
    p99: float
    max: float


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in [0, 100]."""
    if not sorted_values:
        return math.nan
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(samples_ms: Sequence[float]) -> Summary:
    """Summarize samples in milliseconds, rounded to microseconds."""
    values = sorted(samples_ms)
    if not values:
        nan = math.nan
        return Summary(count=0, mean=nan, stdev=nan, min=nan, p50=nan, p90=nan, p99=nan, max=nan)

    def r(x: float) -> float:
        return round(x, 3)

    return Summary(
        count=len(values),
        mean=r(statistics.fmean(values)),
        stdev=r(statistics.stdev(values)) if len(values) > 1 else 0.0,
        min=r(values[0]),
        p50=r(percentile(values, 50)),
        p90=r(percentile(values, 90)),
        p99=r(percentile(values, 99)),
        max=r(values[-1]),
    )


def brief(s: Summary) -> str:
    """One-line text form: p50/p90/p99 and mean in ms."""
    return (
        f"p50 {s['p50']:.2f} ms, p90 {s['p90']:.2f} ms, p99 {s['p99']:.2f} ms, mean {s['mean']:.2f} ms (n={s['count']})"
    )
