"""Small statistics shared by the checker's summary and the benchmark."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of unsorted values; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Iterable[float | None]) -> float | None:
    present = sorted(v for v in values if v is not None)
    if not present:
        return None
    middle = len(present) // 2
    if len(present) % 2:
        return present[middle]
    return (present[middle - 1] + present[middle]) / 2


@dataclass(frozen=True)
class Spread:
    """How a figure varied over repeated measurements."""

    min: float
    median: float
    max: float


def spread(values: Iterable[float | None]) -> Spread | None:
    present = [v for v in values if v is not None]
    middle = median(present)
    if middle is None:
        return None
    return Spread(min(present), middle, max(present))


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def shares(counts: Mapping[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {name: (n / total if total else 0.0) for name, n in counts.items()}
