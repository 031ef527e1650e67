"""Throughput and latency of adds and reads at several concurrencies, through one URL.

Each point (a concurrency) runs adds, then reads, for a fixed duration each after a short
warm-up, so the adds/reads ratio of a point comes from one run. With a second URL the targets
alternate, A, B, A, B, for several rounds and each figure is the median over the rounds, which
keeps a comparison fair on a noisy machine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from abacus.harness.client import AbacusClient, CannotRun, Reply
from abacus.harness.history import Outcome
from abacus.harness.python_driver import run_python
from abacus.harness.stats import Spread, median, ratio, spread
from abacus.harness.workload import LoadResult, Mode, Workload
from abacus.harness.wrk_driver import find_wrk, run_wrk, wrk_version

DEFAULT_CONCURRENCIES = (16, 64, 256)
Driver = Callable[[Workload], LoadResult]
Log = Callable[[str], None]


@dataclass(frozen=True)
class Point:
    """One round's measurements at one concurrency."""

    concurrency: int
    add: LoadResult
    read: LoadResult


@dataclass(frozen=True)
class ModeStats:
    """One mode at one concurrency: medians over the rounds (and how the throughput and the p99
    spread over them), totals of the failures."""

    ok_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    non_2xx: int
    errors: int
    responses: int
    ok_per_s_spread: Spread
    p99_ms_spread: Spread | None

    @classmethod
    def of(cls, results: Sequence[LoadResult]) -> ModeStats:
        per_s = spread(r.ok_per_s for r in results) or Spread(0.0, 0.0, 0.0)
        p99 = spread(r.p99_ms for r in results)
        return cls(
            ok_per_s=per_s.median,
            p50_ms=median(r.p50_ms for r in results),
            p99_ms=None if p99 is None else p99.median,
            non_2xx=sum(r.non_2xx for r in results),
            errors=sum(r.errors for r in results),
            responses=sum(r.responses for r in results),
            ok_per_s_spread=per_s,
            p99_ms_spread=p99,
        )


@dataclass(frozen=True)
class PointStats:
    concurrency: int
    add: ModeStats
    read: ModeStats

    @property
    def add_read_ratio(self) -> float | None:
        """Adds per second over reads per second, both from the same run."""
        return ratio(self.add.ok_per_s, self.read.ok_per_s)


@dataclass
class TargetRun:
    label: str
    url: str
    rounds: list[list[Point]] = field(default_factory=list)
    sum_before: Decimal | None = None
    sum_after: Decimal | None = None
    adds_ok: int = 0  # 2xx adds, warm-ups included: each added 1
    adds_not_ok: int = 0  # non-2xx and errors: refused, or of unknown outcome

    def stats(self) -> list[PointStats]:
        by_concurrency: dict[int, list[Point]] = {}
        for points in self.rounds:
            for point in points:
                by_concurrency.setdefault(point.concurrency, []).append(point)
        return [
            PointStats(
                concurrency,
                ModeStats.of([p.add for p in points]),
                ModeStats.of([p.read for p in points]),
            )
            for concurrency, points in by_concurrency.items()
        ]


@dataclass(frozen=True)
class Comparison:
    """A over B at one concurrency; above 1 means A is faster (/s) or slower (latency)."""

    concurrency: int
    adds_per_s: float | None
    reads_per_s: float | None
    add_p50: float | None
    add_p99: float | None
    read_p50: float | None
    read_p99: float | None
    non_2xx_a: int  # adds and reads, over every round
    non_2xx_b: int


@dataclass
class BenchResult:
    tool: str
    duration: float
    warmup: float
    rounds: int
    concurrencies: tuple[int, ...]
    threads: int
    targets: list[TargetRun]
    warnings: list[str] = field(default_factory=list)

    def comparison(self) -> list[Comparison] | None:
        if len(self.targets) < 2:
            return None
        a_stats, b_stats = self.targets[0].stats(), self.targets[1].stats()
        return [
            Comparison(
                a.concurrency,
                ratio(a.add.ok_per_s, b.add.ok_per_s),
                ratio(a.read.ok_per_s, b.read.ok_per_s),
                ratio(a.add.p50_ms, b.add.p50_ms),
                ratio(a.add.p99_ms, b.add.p99_ms),
                ratio(a.read.p50_ms, b.read.p50_ms),
                ratio(a.read.p99_ms, b.read.p99_ms),
                a.add.non_2xx + a.read.non_2xx,
                b.add.non_2xx + b.read.non_2xx,
            )
            for a, b in zip(a_stats, b_stats, strict=True)
        ]


def run_bench(
    url: str,
    *,
    compare_url: str | None = None,
    concurrencies: Sequence[int] = DEFAULT_CONCURRENCIES,
    duration: float = 10.0,
    warmup: float = 1.0,
    rounds: int | None = None,
    use_wrk: bool = True,
    threads: int = 2,
    timeout: float = 10.0,
    reset: bool = False,
    admin_token: str | None = None,
    log: Log | None = None,
) -> BenchResult:
    """Measure `url` (and `compare_url`, alternating) at each concurrency.

    Raises CannotRun when a target cannot be reached or its reset is refused.
    """
    if not concurrencies or min(concurrencies) < 1:
        raise ValueError("concurrencies must be positive")
    if duration <= 0 or warmup < 0 or timeout <= 0 or threads < 1:
        raise ValueError("duration, timeout and threads must be positive, warmup not negative")
    say: Log = log or (lambda _: None)
    warnings: list[str] = []
    driver, tool = _pick_driver(use_wrk, threads, warnings)
    if tool != "python" and (duration % 1 or warmup % 1):
        warnings.append("wrk measures whole seconds: durations were rounded up")
    for warning in warnings:
        say(f"warning: {warning}")
    labelled = [("A", url)] + ([("B", compare_url)] if compare_url else [])
    targets = [TargetRun(label, target) for label, target in labelled]
    rounds = rounds if rounds is not None else (3 if compare_url else 1)
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    for target in targets:
        target.sum_before = _prepare(target.url, reset, admin_token, timeout)
    for round_number in range(1, rounds + 1):
        for target in targets:
            points = []
            for concurrency in concurrencies:
                results = {}
                for mode in Mode:
                    load = Workload(target.url, mode, concurrency, duration, timeout)
                    if warmup > 0:
                        _count(target, mode, driver(_shorter(load, warmup)))
                    results[mode] = _count(target, mode, driver(load))
                    say(_progress(target, round_number, rounds, load, results[mode]))
                points.append(Point(concurrency, results[Mode.ADD], results[Mode.READ]))
            target.rounds.append(points)
    for target in targets:
        target.sum_after = _read_sum(target.url, timeout)
    return BenchResult(
        tool, duration, warmup, rounds, tuple(concurrencies), threads, targets, warnings
    )


def _pick_driver(use_wrk: bool, threads: int, warnings: list[str]) -> tuple[Driver, str]:
    wrk = find_wrk() if use_wrk else None
    if wrk is not None:
        return (lambda load: run_wrk(load, wrk=wrk, threads=threads)), wrk_version(wrk)
    reason = "wrk not found (apt-get install wrk)" if use_wrk else "wrk disabled"
    warnings.append(
        f"{reason}: using the Python load generator, whose own overhead caps what it can "
        "measure; compare its numbers only with each other"
    )
    return run_python, "python"


def _shorter(load: Workload, seconds: float) -> Workload:
    return Workload(load.url, load.mode, load.concurrency, seconds, load.timeout)


def _count(target: TargetRun, mode: Mode, result: LoadResult) -> LoadResult:
    if mode is Mode.ADD:
        target.adds_ok += result.ok
        target.adds_not_ok += result.non_2xx + result.errors
    return result


def _prepare(url: str, reset: bool, token: str | None, timeout: float) -> Decimal:
    with AbacusClient(url, timeout=timeout) as client:
        if reset:
            reply = client.reset(token)
            if reply.outcome is not Outcome.OK:
                raise CannotRun(f"reset of {url} failed: {_describe(reply)}")
        reply = client.read()
    if reply.outcome is not Outcome.OK or reply.value is None:
        raise CannotRun(f"cannot read the sum from {url}: {_describe(reply)}")
    return reply.value


def _read_sum(url: str, timeout: float) -> Decimal | None:
    with AbacusClient(url, timeout=timeout) as client:
        reply = client.read()
    return reply.value if reply.outcome is Outcome.OK else None


def _describe(reply: Reply) -> str:
    if reply.status is None:
        return f"{reply.error}: {reply.message}"
    return f"HTTP {reply.status} {reply.error or ''}".strip()


def _progress(target: TargetRun, n: int, rounds: int, load: Workload, result: LoadResult) -> str:
    p99 = "-" if result.p99_ms is None else f"{result.p99_ms:.1f} ms"
    return (
        f"{target.label} round {n}/{rounds} c={load.concurrency} {load.mode.value}s: "
        f"{result.ok_per_s:.0f}/s p99 {p99} non-2xx {result.non_2xx} errors {result.errors}"
    )
