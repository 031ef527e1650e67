"""The refusals check: an add answered "nothing changed" never counted.

A failed add (a 4xx, 503 `unavailable`, a connection never opened) was told it did not count
and never will. Where the sum rose by more than the unknown adds can make up, in a gap of the
order or at the tail, and failed adds invoked in time make up the rest, the service counted an
add it said it had not: the lie a stalled Redis plus a balancer retry used to tell.
"""

from __future__ import annotations

from abacus.harness.analysis import Add, Analysis, Gap
from abacus.harness.checks.surplus import where
from abacus.harness.subsets import Budget, BudgetExhausted, subsets_with_sum
from abacus.harness.violations import FAILED_APPLIED, CheckResult, Violation

NAME = "refusals"


def check(analysis: Analysis) -> CheckResult:
    budget = Budget(analysis.search_budget)
    violations: list[Violation] = []
    undecided = 0
    for gap in analysis.gaps:
        target = gap.target
        if target is None or target <= 0:
            continue
        failed = [f for f in analysis.failed if f.op.start <= gap.deadline]
        if not failed:
            continue
        try:
            if _unknown_adds_fill(analysis, gap, target, budget):
                continue
            culprits = _failed_that_fill(analysis, gap, target, failed, budget)
        except BudgetExhausted:
            undecided += 1
            continue
        if culprits:
            violations.append(_violation(analysis, gap, target, culprits))
    notes = []
    if undecided:
        notes.append(
            f"the search ran out of budget for {undecided} gaps: whether a failed add fills "
            "them was not decided there"
        )
    return CheckResult(NAME, _summary(analysis, violations), violations, notes)


def _unknown_adds_fill(analysis: Analysis, gap: Gap, target: int, budget: Budget) -> bool:
    if target > analysis.room(gap):
        return False
    values = [analysis.unknown[i].number for i in analysis.candidates(gap)]
    return next(subsets_with_sum(values, target, budget), None) is not None


def _failed_that_fill(
    analysis: Analysis, gap: Gap, target: int, failed: list[Add], budget: Budget
) -> list[Add]:
    """Failed adds that, with some unknown adds, make up `target` (none if nothing does).

    Called only where the unknown adds alone cannot, so any subset found holds a failed add.
    """
    unknown = [analysis.unknown[i] for i in analysis.candidates(gap)]
    pool = unknown + failed
    picked = next(subsets_with_sum([a.number for a in pool], target, budget), None)
    if picked is None:
        return []
    return [pool[p] for p in sorted(picked) if p >= len(unknown)]


def _violation(analysis: Analysis, gap: Gap, target: int, culprits: list[Add]) -> Violation:
    named = ", ".join(f"#{f.op.op_id} ({analysis.show(f.number)}, {_answer(f)})" for f in culprits)
    noun, verb = ("add", "makes") if len(culprits) == 1 else ("adds", "make")
    return Violation(
        FAILED_APPLIED,
        f"{where(analysis, gap, target)}: the failed {noun} {named} {verb} it up, though "
        "certainly not applied",
    )


def _answer(failed: Add) -> str:
    op = failed.op
    if op.status is None:
        return f"never sent: {op.error}" if op.error else "never sent"
    return f"answered {op.status} {op.error or ''}".rstrip()


def _summary(analysis: Analysis, violations: list[Violation]) -> str:
    answered = len(analysis.failed)
    if violations:
        return f"{answered} adds were told they did not count: {len(violations)} gaps hold some"
    return f"{answered} adds were told they did not count: none of them counted"
