"""The checker's result for people (a summary read at a glance) and for machines (JSON)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from abacus.harness.check import CheckReport
from abacus.harness.decimals import json_number, render
from abacus.harness.history import History, Kind, Outcome
from abacus.harness.judge import BAD_READ, NO_ORDER, STALE_READ, Verdict
from abacus.harness.stats import percentile, shares

EXAMPLES = 3  # violations shown per kind; the count says how many there were


def check_json(report: CheckReport) -> dict[str, Any]:
    """One JSON-able object; sums are JSON integers (exact) or decimal strings."""
    verdict = report.verdict
    history = report.history
    return {
        "url": report.url,
        "verdict": _word(report),
        "fault": verdict.fault,
        "message": verdict.message(),
        "method": verdict.method.value,
        "exit_code": report.exit_code,
        "adds": _counts(history, Kind.ADD),
        "reads": _counts(history, Kind.READ),
        "sum": {
            "start": json_number(verdict.start_sum),
            "final": json_number(verdict.final_sum),
            "acknowledged": json_number(verdict.acknowledged_sum),
            "unknown_total": json_number(verdict.unknown_sum),
            "unknown_applied": None
            if verdict.applied_unknown is None
            else len(verdict.applied_unknown),
            "unknown_applied_sum": json_number(verdict.applied_unknown_sum),
            "expected": json_number(verdict.expected_sum),
            "expected_min": json_number(verdict.expected_min),
            "expected_max": json_number(verdict.expected_max),
        },
        "violations": {
            kind: {
                "count": count,
                "examples": [v.detail for v in verdict.violations if v.kind == kind][:EXAMPLES],
            }
            for kind, count in verdict.fault_counts.items()
        },
        "notes": [*report.notes, *verdict.notes],
        "nodes": {
            node: {"requests": n, "share": round(share, 4)}
            for (node, n), share in zip(
                _nodes(history).items(), shares(_nodes(history)).values(), strict=True
            )
        },
        "latency_ms": {kind.value: _latency(history, kind) for kind in Kind},
        "throughput": {
            "concurrency": report.concurrency,
            "duration_s": round(report.elapsed, 3),
            "ops_per_s": _per_second(_finished(history), report.elapsed),
            "acknowledged_adds_per_s": _per_second(verdict.acknowledged, report.elapsed),
        },
    }


def render_check(report: CheckReport) -> str:
    """The summary a person reads: verdict first, then what it rests on."""
    verdict = report.verdict
    history = report.history
    lines = [f"Abacus consistency check of {report.url}"]
    row = lines.append

    def field(name: str, text: str) -> None:
        row(f"  {name:<11} {text}")

    field("verdict", verdict.message())
    if verdict.violations:
        counts = ", ".join(f"{kind} x{n}" for kind, n in verdict.fault_counts.items())
        field("faults", counts)
        for kind in verdict.fault_counts:
            details = [v.detail for v in verdict.violations if v.kind == kind]
            for detail in details[:EXAMPLES]:
                row(f"{'':14}- {kind}: {detail}")
            if len(details) > EXAMPLES:
                row(f"{'':14}  ... and {len(details) - EXAMPLES} more")
    for kind in Kind:
        c = _counts(history, kind)
        extra = "".join(
            f", {c[k]} {k}" for k in ("replayed", "resolved", "not started") if c.get(k)
        )
        field(
            f"{kind.value}s",
            f"{c['sent']} sent: {c['ok']} ok, {c['failed']} failed, {c['unknown']} unknown{extra}",
        )
    field("sum", _sum_line(verdict))
    found = verdict.fault_counts
    if NO_ORDER in found:
        field("order", "the acknowledged new_sum values fit no sequential order (see faults)")
    else:
        field(
            "order",
            f"{verdict.acknowledged} acknowledged new_sum values fit one sequential order "
            "consistent with real time",
        )
    bad_reads = found.get(STALE_READ, 0) + found.get(BAD_READ, 0)
    field(
        "reads",
        f"{verdict.reads_checked} reads checked against that order: "
        + (f"{bad_reads} violations" if bad_reads else "none stale, each a state of the order"),
    )
    nodes = _nodes(history)
    field(
        "nodes",
        "  ".join(
            f"{node} {n} ({share:.0%})"
            for (node, n), share in zip(nodes.items(), shares(nodes).values(), strict=True)
        )
        or "none answered",
    )
    field("latency", "; ".join(_latency_text(history, kind) for kind in Kind))
    field(
        "throughput",
        f"{_per_second(_finished(history), report.elapsed):.0f} ops/s "
        f"({_finished(history)} ops in {report.elapsed:.2f} s at concurrency {report.concurrency})",
    )
    for note in [*report.notes, *verdict.notes]:
        field("note", note)
    return "\n".join(lines)


def _word(report: CheckReport) -> str:
    if not report.verdict.consistent:
        return "inconsistent"
    return "consistent" if report.verdict.complete else "incomplete"


def _sum_line(verdict: Verdict) -> str:
    final = "unknown" if verdict.final_sum is None else render(verdict.final_sum)
    start = render(verdict.start_sum)
    base = f"start {start} + {verdict.acknowledged} acknowledged adds"
    if verdict.expected_sum is not None and verdict.applied_unknown is not None:
        unknown = (
            f" + {len(verdict.applied_unknown)} of {verdict.unknown} unknown adds"
            if verdict.unknown
            else ""
        )
        return f"final {final}, expected {render(verdict.expected_sum)} = {base}{unknown}"
    return (
        f"final {final}, expected between {render(verdict.expected_min)} and "
        f"{render(verdict.expected_max)} = {base} + some of {verdict.unknown} unknown adds"
    )


def _counts(history: History, kind: Kind) -> dict[str, int]:
    ops = history.of(kind)
    c = Counter(op.outcome for op in ops)
    counts = {
        "sent": len(ops) - c[Outcome.INVOKED],
        "ok": c[Outcome.OK],
        "failed": c[Outcome.FAILED],
        "unknown": c[Outcome.UNKNOWN],
    }
    if c[Outcome.INVOKED]:
        counts["not started"] = c[Outcome.INVOKED]
    if kind is Kind.ADD:
        counts["replayed"] = sum(op.replayed for op in ops)
        counts["resolved"] = sum(op.resolved for op in ops)
    return counts


def _nodes(history: History) -> dict[str, int]:
    """Requests each node served; answers without a node id (the balancer's own) apart."""
    counts = Counter(
        op.node_id or "(no node id)" for op in history.operations if op.status is not None
    )
    return dict(sorted(counts.items()))


def _finished(history: History) -> int:
    return sum(op.outcome is not Outcome.INVOKED for op in history.operations)


def _per_second(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


def _latency(history: History, kind: Kind) -> dict[str, float | None]:
    """Of the ok answers: what a successful request costs."""
    ms = [op.latency * 1000 for op in history.of(kind, Outcome.OK)]
    return {
        f"p{q}": None if (p := percentile(ms, q)) is None else round(p, 2) for q in (50, 95, 99)
    }


def _latency_text(history: History, kind: Kind) -> str:
    parts = [
        f"{name} {'-' if value is None else f'{value:.1f}'} ms"
        for name, value in _latency(history, kind).items()
    ]
    return f"{kind.value} " + ", ".join(parts)
