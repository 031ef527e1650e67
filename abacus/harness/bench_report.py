"""The benchmark's result as a table for people and as one JSON object for machines."""

from __future__ import annotations

from typing import Any

from abacus.harness.bench import BenchResult, ModeStats, PointStats, TargetRun
from abacus.harness.decimals import json_number, render
from abacus.harness.stats import Spread


def bench_json(result: BenchResult) -> dict[str, Any]:
    comparison = result.comparison()
    return {
        "tool": result.tool,
        "duration_s": result.duration,
        "warmup_s": result.warmup,
        "rounds": result.rounds,
        "concurrency": list(result.concurrencies),
        "threads": result.threads,
        "targets": [_target_json(t) for t in result.targets],
        "comparison": None
        if comparison is None
        else [
            {
                "concurrency": c.concurrency,
                "adds_per_s_ratio": _round(c.adds_per_s, 3),
                "reads_per_s_ratio": _round(c.reads_per_s, 3),
                "add_p50_ratio": _round(c.add_p50, 3),
                "add_p99_ratio": _round(c.add_p99, 3),
                "read_p50_ratio": _round(c.read_p50, 3),
                "read_p99_ratio": _round(c.read_p99, 3),
                "non_2xx_a": c.non_2xx_a,
                "non_2xx_b": c.non_2xx_b,
            }
            for c in comparison
        ],
        "warnings": result.warnings,
    }


def _target_json(target: TargetRun) -> dict[str, Any]:
    return {
        "label": target.label,
        "url": target.url,
        "points": [_point_json(p) for p in target.stats()],
        "sum": {
            "before": json_number(target.sum_before),
            "after": json_number(target.sum_after),
            "adds_ok": target.adds_ok,
            "adds_not_ok": target.adds_not_ok,
        },
    }


def _point_json(point: PointStats) -> dict[str, Any]:
    return {
        "concurrency": point.concurrency,
        "add": _mode_json(point.add),
        "read": _mode_json(point.read),
        "add_read_ratio": _round(point.add_read_ratio, 3),
    }


def _mode_json(stats: ModeStats) -> dict[str, Any]:
    return {
        "per_s": round(stats.ok_per_s, 1),
        "p50_ms": _round(stats.p50_ms, 2),
        "p99_ms": _round(stats.p99_ms, 2),
        "non_2xx": stats.non_2xx,
        "errors": stats.errors,
        "responses": stats.responses,
        "per_s_spread": _spread_json(stats.ok_per_s_spread, 1),
        "p99_ms_spread": _spread_json(stats.p99_ms_spread, 2),
    }


def _spread_json(spread: Spread | None, digits: int) -> dict[str, float] | None:
    if spread is None:
        return None
    return {
        "min": round(spread.min, digits),
        "median": round(spread.median, digits),
        "max": round(spread.max, digits),
    }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


_HEAD = (
    f"{'conc':>6} | {'adds/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'errors':>7} | "
    f"{'reads/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'errors':>7} | {'adds/reads':>10}"
)


def render_bench(result: BenchResult) -> str:
    rounds = f"median of {result.rounds} rounds" if result.rounds > 1 else "1 round"
    lines = [
        f"Abacus benchmark: {result.tool}"
        + (f" ({result.threads} threads)" if result.tool != "python" else "")
        + f", {_seconds(result.duration)} per point after {_seconds(result.warmup)} warm-up, "
        f"{rounds}; per second = 2xx responses per second"
    ]
    lines.extend(f"warning: {w}" for w in result.warnings)
    for target in result.targets:
        lines += ["", f"{target.label}  {target.url}", _HEAD]
        lines += [_row(point) for point in target.stats()]
        if result.rounds > 1:
            lines += _spread_table(target, result.rounds)
        lines.append(_sum_line(target))
    comparison = result.comparison()
    if comparison:
        lines += [
            "",
            f"A/B ({rounds}; above 1: A does more per second, or takes longer)",
            f"{'conc':>6} | {'adds/s':>8} {'reads/s':>8} | {'add p50':>8} {'add p99':>8} "
            f"{'read p50':>8} {'read p99':>8} | {'non-2xx A':>9} {'non-2xx B':>9}",
        ]
        lines += [
            f"{c.concurrency:>6} | {_x(c.adds_per_s):>8} {_x(c.reads_per_s):>8} | "
            f"{_x(c.add_p50):>8} {_x(c.add_p99):>8} {_x(c.read_p50):>8} {_x(c.read_p99):>8} | "
            f"{c.non_2xx_a:>9} {c.non_2xx_b:>9}"
            for c in comparison
        ]
    return "\n".join(lines)


def _row(point: PointStats) -> str:
    ratio = "-" if point.add_read_ratio is None else f"{point.add_read_ratio:.2f}"
    return (
        f"{point.concurrency:>6} | {_mode_cells(point.add)} | {_mode_cells(point.read)} | "
        f"{ratio:>10}"
    )


_SPREAD_WIDTH = 22


def _spread_table(target: TargetRun, rounds: int) -> list[str]:
    """Each round's figures vary on a busy machine: how much, next to the medians above."""
    head = " | ".join(
        f"{name:>{_SPREAD_WIDTH}}" for name in ("adds/s", "add p99 ms", "reads/s", "read p99 ms")
    )
    lines = [f"over the {rounds} rounds: min / median / max", f"{'conc':>6} | {head}"]
    for point in target.stats():
        cells = (
            _spread_cell(point.add.ok_per_s_spread, 0),
            _spread_cell(point.add.p99_ms_spread, 1),
            _spread_cell(point.read.ok_per_s_spread, 0),
            _spread_cell(point.read.p99_ms_spread, 1),
        )
        lines.append(f"{point.concurrency:>6} | " + " | ".join(cells))
    return lines


def _spread_cell(spread: Spread | None, digits: int) -> str:
    if spread is None:
        return f"{'-':>{_SPREAD_WIDTH}}"
    text = " / ".join(f"{v:.{digits}f}" for v in (spread.min, spread.median, spread.max))
    return f"{text:>{_SPREAD_WIDTH}}"


def _mode_cells(stats: ModeStats) -> str:
    return (
        f"{stats.ok_per_s:>9.1f} {_ms(stats.p50_ms):>8} {_ms(stats.p99_ms):>8} "
        f"{stats.non_2xx:>8} {stats.errors:>7}"
    )


def _sum_line(target: TargetRun) -> str:
    if target.sum_before is None or target.sum_after is None:
        return "sum: could not be read after the run"
    grew = render(target.sum_after - target.sum_before)
    return (
        f"sum grew by {grew}; acknowledged adds of 1: {target.adds_ok} (warm-ups included); "
        f"any difference is adds without a 2xx ({target.adds_not_ok}) or in flight when a run "
        "stopped"
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _seconds(value: float) -> str:
    return f"{value:g} s"
