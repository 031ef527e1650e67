"""The checker's verdict over a whole history: is it the history of one correct counter?

The history is analysed once (abacus/harness/analysis.py: the chain of acknowledged adds, the
gaps between them, the placement of the unknown adds), then judged by independent checks, each
returning its own verdict and violations, merged here as Jepsen's `compose` does:

1. sum (abacus/harness/checks/final_sum.py): final = start + acknowledged adds + some subset of
   the unknown ones.
2. order (checks/order.py): the new_sum values fit one sequential order consistent with real time.
3. reads (checks/reads.py): each read returns a state of that order, recent enough.
4. refusals (checks/refusals.py): no add answered "nothing changed" counted.

No check writes what another reads, so any one runs alone and their order does not matter.
Which unknown adds filled which gap is decided by a bounded subset-sum search; when it cannot
finish within its budget the verdict says so and rests on bounds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from abacus.harness.analysis import DEFAULT_SEARCH_BUDGET, Analysis
from abacus.harness.checks import final_sum, order, reads, refusals
from abacus.harness.history import History
from abacus.harness.placement import Method
from abacus.harness.violations import (
    APPLIED_TWICE,
    BAD_READ,
    FAILED_APPLIED,
    FAULTS,
    LOST_UPDATE,
    NO_ORDER,
    STALE_READ,
    SURPLUS,
    CheckResult,
    Violation,
)

__all__ = [
    "APPLIED_TWICE",
    "BAD_READ",
    "CHECKS",
    "DEFAULT_SEARCH_BUDGET",
    "FAILED_APPLIED",
    "FAULTS",
    "LOST_UPDATE",
    "NO_ORDER",
    "STALE_READ",
    "SURPLUS",
    "WEAK_SHARE",
    "Method",
    "Verdict",
    "Violation",
    "judge",
]

Check = Callable[[Analysis], CheckResult]
CHECKS: dict[str, Check] = {
    final_sum.NAME: final_sum.check,
    order.NAME: order.check,
    reads.NAME: reads.check,
    refusals.NAME: refusals.check,
}

# Above this share of adds left unknown, a consistent verdict proves little and says so: almost
# any final sum fits "some subset of the unknown adds".
WEAK_SHARE = 0.5


@dataclass
class Verdict:
    checks: list[CheckResult]
    method: Method
    notes: list[str]
    start_sum: Decimal
    final_sum: Decimal | None
    acknowledged_sum: Decimal  # the numbers of all acknowledged adds
    unknown_sum: Decimal  # the numbers of all unknown adds
    applied_unknown: tuple[int, ...] | None  # op ids of unknown adds found applied, if decided
    applied_unknown_sum: Decimal | None
    adds: int  # every add fired: acknowledged, failed and unknown
    acknowledged: int
    unknown: int
    reads_checked: int

    @property
    def violations(self) -> list[Violation]:
        return [v for check in self.checks for v in check.violations]

    @property
    def consistent(self) -> bool:
        return not self.violations

    @property
    def complete(self) -> bool:
        """False when the final sum could not be read, so the final-sum check did not run."""
        return self.final_sum is not None

    @property
    def unknown_share(self) -> float:
        return self.unknown / self.adds if self.adds else 0.0

    @property
    def weak(self) -> bool:
        """Consistent, but most adds ended unknown: the verdict rests on little."""
        return self.unknown_share > WEAK_SHARE

    @property
    def fault(self) -> str | None:
        found = {v.kind for v in self.violations}
        return next((kind for kind in FAULTS if kind in found), None)

    @property
    def fault_counts(self) -> dict[str, int]:
        counts = Counter(v.kind for v in self.violations)
        return {kind: counts[kind] for kind in FAULTS if counts[kind]}

    @property
    def expected_min(self) -> Decimal:
        return self.start_sum + self.acknowledged_sum

    @property
    def expected_max(self) -> Decimal:
        return self.start_sum + self.acknowledged_sum + self.unknown_sum

    @property
    def expected_sum(self) -> Decimal | None:
        """start + acknowledged + the unknown adds found applied, when that is decided."""
        if not self.unknown:
            return self.expected_min
        if self.applied_unknown_sum is None:
            return None
        return self.start_sum + self.acknowledged_sum + self.applied_unknown_sum

    def unknown_text(self) -> str:
        return f"{self.unknown:,} of {self.adds:,} adds unknown"

    def message(self) -> str:
        """One line for a person."""
        if self.violations:
            first = next(v for v in self.violations if v.kind == self.fault)
            return f"INCONSISTENT: {first.kind}: {first.detail}"
        if not self.complete:
            return "INCOMPLETE: no violation found, but the final sum could not be read"
        if self.weak:
            return f"CONSISTENT ({self.method.value}), weak: {self.unknown_text()}"
        return f"CONSISTENT ({self.method.value})"


def judge(
    history: History,
    *,
    search_budget: int = DEFAULT_SEARCH_BUDGET,
    checks: dict[str, Check] | None = None,
) -> Verdict:
    """Judge `history` by every check (or those given); all add numbers must be positive."""
    analysis = Analysis(history, search_budget)
    results = [run(analysis) for run in (checks or CHECKS).values()]
    placement = analysis.placement
    applied_sum = None
    applied_ids = None
    if placement.applied is not None:
        applied_ids = tuple(sorted(analysis.unknown[i].op.op_id for i in placement.applied))
        applied_sum = analysis.decimal(sum(analysis.unknown[i].number for i in placement.applied))
    return Verdict(
        checks=results,
        method=placement.method,
        notes=[*placement.notes, *(note for result in results for note in result.notes)],
        start_sum=history.start_sum,
        final_sum=history.final_sum,
        acknowledged_sum=analysis.decimal(analysis.acknowledged_total),
        unknown_sum=analysis.decimal(analysis.unknown_total),
        applied_unknown=applied_ids,
        applied_unknown_sum=applied_sum,
        adds=analysis.adds,
        acknowledged=len(analysis.acked),
        unknown=len(analysis.unknown),
        reads_checked=len(analysis.reads),
    )
