"""Naming an amount that no unknown add explains: what it most likely is.

A gap of the order (or the tail up to the final sum) that rose by more than the unknown adds that
may lie in it can make up is a violation either way; what to call it depends on what the extra
amount matches. Shared by the order check (gaps between acknowledged adds) and the final-sum check
(the tail). Failed adds are the refusals check's: it names a gap that a failed add fills.
"""

from __future__ import annotations

from abacus.harness.analysis import Analysis, Gap
from abacus.harness.violations import APPLIED_TWICE, NO_ORDER, SURPLUS, Violation


def where(analysis: Analysis, gap: Gap, target: int) -> str:
    """The unexplained amount, said in terms of the gap it lies in."""
    place = (
        "the final sum exceeds the last acknowledged new_sum"
        if gap.before is None
        else f"before add #{gap.before.op.op_id} (new_sum {analysis.show(gap.before.new_sum)}) "
        "the sum rose"
    )
    return f"{place} by {analysis.show(target)} more than the adds in between explain"


def name_surplus(analysis: Analysis, gap: Gap, target: int) -> Violation:
    """An acknowledged add's number in the surplus (alone, or beside one unknown add) is that
    add counted again; anything else is a surplus at the tail, and a broken order before it."""
    amount = where(analysis, gap, target)
    candidates = [analysis.unknown[i].number for i in analysis.candidates(gap)]
    leftovers = [target, *(target - c for c in candidates if c < target)]
    if gap.before is not None and not analysis.final_has_surplus():
        # The final sum does not carry the extra amount, so nothing was applied twice: this
        # new_sum is simply wrong.
        leftovers = []
    for leftover in leftovers:
        twice = analysis.acked_by_number.get(leftover)
        if twice is not None:
            return Violation(
                APPLIED_TWICE,
                f"{amount}: the number of add #{twice.op.op_id} ({analysis.show(leftover)}), "
                "which was counted again",
            )
    return Violation(
        SURPLUS if gap.before is None else NO_ORDER,
        f"{amount}; no subset of the unknown adds makes that up",
    )
