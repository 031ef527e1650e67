"""The order check: the acknowledged adds' new_sum values fit one sequential order consistent
with real time.

- Real time: if A was acknowledged before B was invoked, new_sum(A) < new_sum(B).
- Chain: every gap between two neighbouring acknowledged adds is made up by unknown adds that may
  lie in it, each add in one gap only. A negative gap, or one the unknown adds cannot fill, fits
  no order; unknown adds that fill each gap alone but not all at once would count twice.
"""

from __future__ import annotations

from abacus.harness.analysis import Add, Analysis, Gap
from abacus.harness.checks.surplus import name_surplus
from abacus.harness.violations import APPLIED_TWICE, NO_ORDER, CheckResult, Violation

NAME = "order"


def check(analysis: Analysis) -> CheckResult:
    violations = [_inversion(analysis, a, b) for a, b in analysis.real_time_inversions]
    placement = analysis.placement
    for index, gap in enumerate(analysis.gaps):
        target = gap.target
        if gap.is_tail or target is None or target == 0:
            continue  # the tail is the final-sum check's
        if target < 0:
            violations.append(_negative(analysis, gap, target))
        elif target > analysis.room(gap) or index in placement.unfillable:
            violations.append(name_surplus(analysis, gap, target))
    if placement.conflict:
        violations.append(
            Violation(
                APPLIED_TWICE,
                "every gap in the new_sum order can be filled by unknown adds, but not all at "
                "once: some add would have to count twice",
            )
        )
    return CheckResult(NAME, _summary(analysis, violations), violations)


def _inversion(analysis: Analysis, a: Add, b: Add) -> Violation:
    return Violation(
        NO_ORDER,
        f"add #{a.op.op_id} was acknowledged with new_sum {analysis.show(a.new_sum)} before add "
        f"#{b.op.op_id} began, yet #{b.op.op_id} returned the lower or equal new_sum "
        f"{analysis.show(b.new_sum)}",
    )


def _negative(analysis: Analysis, gap: Gap, target: int) -> Violation:
    b = gap.before
    assert b is not None
    if gap.after is not None and gap.after.new_sum == b.new_sum:
        return Violation(
            NO_ORDER,
            f"adds #{gap.after.op.op_id} and #{b.op.op_id} both returned new_sum "
            f"{analysis.show(b.new_sum)}",
        )
    origin = "the starting sum" if gap.after is None else f"add #{gap.after.op.op_id}'s"
    return Violation(
        NO_ORDER,
        f"add #{b.op.op_id} added {analysis.show(b.number)} and returned new_sum "
        f"{analysis.show(b.new_sum)}, so the sum before it was "
        f"{analysis.show(b.new_sum - b.number)}, below {origin} {analysis.show(gap.lower)}",
    )


def _summary(analysis: Analysis, violations: list[Violation]) -> str:
    if violations:
        return f"the acknowledged new_sum values fit no sequential order: {len(violations)} found"
    return (
        f"{len(analysis.acked)} acknowledged new_sum values fit one sequential order consistent "
        "with real time"
    )
