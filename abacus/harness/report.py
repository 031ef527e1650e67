"""The checker's result for people (a summary read at a glance) and for machines (JSON).

Each of the judge's checks has its own line (or object); the faults the nemesis injected are
listed on the run's timeline (seconds since it began) with what the clients saw meanwhile.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from abacus.harness.check import CheckReport
from abacus.harness.decimals import json_number
from abacus.harness.faults import FaultEvent
from abacus.harness.history import History, Kind, Outcome
from abacus.harness.stats import percentile, shares
from abacus.harness.timeline import during

EXAMPLES = 3  # violations shown per kind; the count says how many there were


def check_json(report: CheckReport) -> dict[str, Any]:
    """One JSON-able object; sums are JSON integers (exact) or decimal strings."""
    verdict = report.verdict
    history = report.history
    return {
        "url": report.url,
        "verdict": report.word,
        "fault": verdict.fault,
        "message": report.headline(),
        "method": verdict.method.value,
        "exit_code": report.exit_code,
        "weak": verdict.weak,
        "unknown_share": round(verdict.unknown_share, 4),
        "max_unknown": report.max_unknown,
        "judged_from": report.judged_from,
        "checks": {
            check.name: {
                "consistent": check.consistent,
                "violations": len(check.violations),
                "summary": check.summary,
            }
            for check in verdict.checks
        },
        "faults": [_fault_json(report, event) for event in history.faults],
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

    field("verdict", report.headline())
    if report.judged_from:
        field("history", f"re-judged from {report.judged_from}")
    if verdict.violations:
        counts = ", ".join(f"{kind} x{n}" for kind, n in verdict.fault_counts.items())
        field("violations", counts)
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
    for check in verdict.checks:
        field(check.name, check.summary)
    if history.faults:
        _faults(report, row)
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


def _faults(report: CheckReport, row: Callable[[str], object]) -> None:
    """Each fault on the run's timeline: held (start-recover), healthy again (end)."""
    history = report.history
    failed = len(report.faults_failed)
    state = f"{failed} did not go as planned" if failed else "each recovered"
    row(f"  {'faults':<11} {len(history.faults)} injected, {state}; seconds since the run began:")
    row(f"{'':14}{'start':>6} {'heal':>6} {'healthy':>7}")
    for event in history.faults:
        seen = during(history, event)
        start, recover, end = (t - history.origin for t in (event.start, event.recover, event.end))
        row(
            f"{'':14}{start:6.1f} {recover:6.1f} {end:7.1f}  {event.kind.value:<15} "
            f"{event.target:<7} adds meanwhile: {seen[Outcome.OK]} ok, "
            f"{seen[Outcome.FAILED]} failed, {seen[Outcome.UNKNOWN]} unknown"
        )
        row(f"{'':38}{event.detail}")
        if event.error:
            row(f"{'':38}ERROR: {event.error}")


def _fault_json(report: CheckReport, event: FaultEvent) -> dict[str, Any]:
    origin = report.history.origin
    seen = during(report.history, event)
    return {
        "fault": event.kind.value,
        "target": event.target,
        "start_s": round(event.start - origin, 3),
        "recover_s": round(event.recover - origin, 3),
        "end_s": round(event.end - origin, 3),
        "detail": event.detail,
        "error": event.error,
        "adds_meanwhile": {outcome.value: seen[outcome] for outcome in Outcome if seen[outcome]},
    }


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
