"""The final-sum check: final = start + the acknowledged adds + some subset of the unknown ones.

Below that, acknowledged adds were lost, unless the new_sum values fit one order that reached a
higher state, in which case the final read itself is stale. Above it, past the last acknowledged
new_sum by more than the unknown adds can make up, something counted that should not have.
"""

from __future__ import annotations

from abacus.harness.analysis import Add, Analysis, Gap
from abacus.harness.checks.surplus import name_surplus
from abacus.harness.placement import Method
from abacus.harness.subsets import Budget, BudgetExhausted, subsets_with_sum
from abacus.harness.violations import (
    APPLIED_TWICE,
    LOST_UPDATE,
    STALE_READ,
    SURPLUS,
    CheckResult,
    Violation,
)

NAME = "sum"


def check(analysis: Analysis) -> CheckResult:
    final = analysis.final
    if final is None:
        return CheckResult(
            NAME,
            "final sum unknown: not checked",
            notes=["the final sum could not be read: the final-sum check did not run"],
        )
    violations: list[Violation] = []
    tail_index = len(analysis.gaps) - 1
    tail = analysis.gaps[tail_index]
    target = final - tail.lower
    if target < 0:
        violations.append(_stale_final(analysis, tail, final))
    elif target > 0 and (
        target > analysis.room(tail) or tail_index in analysis.placement.unfillable
    ):
        violations.append(name_surplus(analysis, tail, target))
    else:
        surplus = _total_surplus(analysis, final)
        if surplus is not None:
            violations.append(surplus)
    if not (final < analysis.top and analysis.chain_fits):
        # Where the new_sum values fit one order, the sum did reach the last of them: a final
        # read below it is stale (above), and says nothing more about losses.
        lost = _lost(analysis, final)
        if lost is not None:
            violations.append(lost)
    return CheckResult(NAME, summary(analysis), violations)


def _stale_final(analysis: Analysis, tail: Gap, final: int) -> Violation:
    shown = analysis.show(final)
    if tail.after is None:
        return Violation(
            STALE_READ,
            f"the final read returned {shown}, below the starting sum "
            f"{analysis.show(analysis.start)} read before the run",
        )
    return Violation(
        STALE_READ,
        f"the final read returned {shown}, below new_sum {analysis.show(tail.after.new_sum)} "
        f"that add #{tail.after.op.op_id} returned before it began (or the sum lost "
        "acknowledged adds)",
    )


def _total_surplus(analysis: Analysis, final: int) -> Violation | None:
    """The total alone, whatever the order: what the final sum holds beyond the start and the
    acknowledged adds must be some of the unknown adds."""
    excess = final - analysis.start - analysis.acknowledged_total
    if excess <= 0 or analysis.placement.method is not Method.BOUNDS:
        return None  # nothing beyond them, or a placement of every gap (the tail too) explains it
    unknown = [u.number for u in analysis.unknown]
    budget = Budget(analysis.search_budget)
    try:
        if next(subsets_with_sum(unknown, excess, budget), None) is not None:
            return None
        twice = _counted_again(analysis, excess, budget)
    except BudgetExhausted:
        return None  # undecided: the bounds (0 to every unknown add) are all that is known
    amount = (
        f"the final sum exceeds start + the acknowledged adds by {analysis.show(excess)}, "
        "more than the unknown adds explain"
    )
    if twice:
        named = ", ".join(f"#{a.op.op_id} ({analysis.show(a.number)})" for a in twice[:3])
        more = f" and {len(twice) - 3} more" if len(twice) > 3 else ""
        which = f"number of add {named}" if len(twice) == 1 else f"numbers of adds {named}{more}"
        return Violation(APPLIED_TWICE, f"{amount}: the {which}, counted again")
    return Violation(SURPLUS, f"{amount}; no subset of the unknown adds makes that up")


def _counted_again(analysis: Analysis, excess: int, budget: Budget) -> list[Add]:
    """Acknowledged adds whose numbers, with some unknown ones, make up `excess` (none if no
    such set exists). Called only where the unknown adds alone cannot."""
    pool = [*analysis.unknown, *analysis.acked]
    picked = next(subsets_with_sum([a.number for a in pool], excess, budget), None)
    if picked is None:
        return []
    return [pool[p] for p in sorted(picked) if p >= len(analysis.unknown)]


def _lost(analysis: Analysis, final: int) -> Violation | None:
    acknowledged = analysis.acknowledged_total
    short = analysis.start + acknowledged - final
    if short <= 0:
        return None
    which = analysis.acked_by_number.get(short)
    named = ""
    if which is not None:
        named = f", exactly add #{which.op.op_id}'s number"
    elif analysis.acked:
        named = f", about {short * len(analysis.acked) / acknowledged:.0f} adds' worth"
    return Violation(
        LOST_UPDATE,
        f"final sum {analysis.show(final)} is {analysis.show(short)} short of start "
        f"{analysis.show(analysis.start)} + the acknowledged adds {analysis.show(acknowledged)}"
        f"{named}",
    )


def summary(analysis: Analysis) -> str:
    """The final sum against what the adds make: exactly, when the placement decided it."""
    final = "unknown" if analysis.final is None else analysis.show(analysis.final)
    start = analysis.show(analysis.start)
    base = f"start {start} + {len(analysis.acked)} acknowledged adds"
    lowest = analysis.start + analysis.acknowledged_total
    applied = analysis.placement.applied
    if not analysis.unknown:
        return f"final {final}, expected {analysis.show(lowest)} = {base}"
    if applied is not None:
        expected = lowest + sum(analysis.unknown[i].number for i in applied)
        return (
            f"final {final}, expected {analysis.show(expected)} = {base} + {len(applied)} of "
            f"{len(analysis.unknown)} unknown adds"
        )
    return (
        f"final {final}, expected between {analysis.show(lowest)} and "
        f"{analysis.show(lowest + analysis.unknown_total)} = {base} + some of "
        f"{len(analysis.unknown)} unknown adds"
    )
