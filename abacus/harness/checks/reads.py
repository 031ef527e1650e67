"""The reads check: each read returns a state of the order, and a recent enough one.

- Recency: never older than an add acknowledged, or a read finished, before it began; never
  including an add invoked after it ended.
- State: its value is a state the order passes through: within its gap, made up of unknown adds
  placed there (when the placement is exact; else only bounds are checked).
- Nesting: reads within one gap see growing sets of its unknown adds, as one order would show.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from decimal import Decimal
from itertools import pairwise

from abacus.harness.analysis import Add, Analysis, Gap
from abacus.harness.decimals import render
from abacus.harness.history import Operation
from abacus.harness.subsets import Budget, BudgetExhausted, subsets_with_sum
from abacus.harness.violations import BAD_READ, STALE_READ, CheckResult, Violation

NAME = "reads"

# Per gap: (value, the unknown adds it saw, the read), for the reads that saw a decided set.
Seen = dict[int, list[tuple[int, tuple[int, ...], Operation]]]


def check(analysis: Analysis) -> CheckResult:
    return _Reads(analysis).result()


class _Reads:
    """One pass over the reads; the violations found so far are this check's own."""

    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis
        self.violations: list[Violation] = []
        self.budget = Budget(analysis.search_budget)

    def result(self) -> CheckResult:
        a = self.analysis
        notes: list[str] = []
        if a.reads:
            bounded = self._check_all()
            if bounded and not any(v.kind == BAD_READ for v in self.violations):
                notes.append(
                    "some reads fall where the applied unknown adds are not decided: those were "
                    "judged by bounds (between the neighbouring acknowledged states)"
                )
        found = len(self.violations)
        summary = f"{len(a.reads)} reads checked against that order: " + (
            f"{found} violations" if found else "none stale, each a state of the order"
        )
        return CheckResult(NAME, summary, self.violations, notes)

    def _flag(self, kind: str, detail: str) -> None:
        self.violations.append(Violation(kind, detail))

    def _check_all(self) -> bool:
        """Every read; True when some could only be judged by bounds."""
        a = self.analysis
        recency = _Recency(a.acked, a.reads)
        seen: Seen = {}
        bounded = False
        lowers = [g.lower for g in a.gaps]
        for r in a.reads:
            value = a.units(r.result)
            self._check_recency(r, value, recency)
            g = bisect_right(lowers, value) - 1
            if g < 0:
                self._flag(
                    BAD_READ,
                    f"read #{r.op_id} returned {a.show(value)}, below the starting sum "
                    f"{a.show(a.start)}",
                )
                continue
            outcome = self._check_state(r, value, g)
            if outcome is None:
                bounded = True
            elif outcome:
                seen.setdefault(g, []).append((value, outcome[0], r))
        self._check_nesting(seen)
        return bounded

    def _check_recency(self, r: Operation, value: int, recency: _Recency) -> None:
        """Not older than what was acknowledged before it began; nothing from after it ended."""
        a = self.analysis
        shown = a.show(value)
        latest = recency.latest_add_before(r.start)
        if latest is not None and latest.new_sum > value:
            self._flag(
                STALE_READ,
                f"read #{r.op_id} returned {shown}, but add #{latest.op.op_id} had returned "
                f"new_sum {a.show(latest.new_sum)} before the read began",
            )
        earlier = recency.latest_read_before(r.start)
        if earlier is not None and a.units(earlier.result) > value:
            self._flag(
                STALE_READ,
                f"read #{r.op_id} returned {shown}, older than {render(_val(earlier))} "
                f"that read #{earlier.op_id} returned before it began",
            )
        b = recency.first_add_after(r.end)
        if b is not None and b.new_sum <= value:
            self._flag(
                BAD_READ,
                f"read #{r.op_id} returned {shown}, which includes add #{b.op.op_id} "
                f"(new_sum {a.show(b.new_sum)}) that began only after the read ended",
            )

    def _check_state(self, r: Operation, value: int, g: int) -> list[tuple[int, ...]] | None:
        """Is the value a state within gap `g`? The unknown adds it saw ([] if not unique).

        None when only bounds could be checked.
        """
        a = self.analysis
        gap = a.gaps[g]
        if gap.upper is not None and gap.upper < gap.lower:
            return []  # the chain itself is broken here (the order check says so)
        if gap.upper is not None and value > gap.upper:
            assert gap.before is not None
            self._flag(
                BAD_READ,
                f"read #{r.op_id} returned {a.show(value)}, between "
                f"{a.show(gap.upper)} (the sum just before add #{gap.before.op.op_id}) and "
                f"its new_sum {a.show(gap.before.new_sum)}: no state of the order has it",
            )
            return []
        members = a.placement.members.get(g)
        if members is None or gap.upper is None:
            return None
        try:
            subset = self._read_subset(gap, members, value - gap.lower, r)
        except BudgetExhausted:
            return None
        if subset is None:
            self._flag(
                BAD_READ,
                f"read #{r.op_id} returned {a.show(value)}: "
                f"{a.show(value - gap.lower)} above {a.show(gap.lower)}, which no set "
                "of the unknown adds placed there (and invoked before the read ended) makes up",
            )
            return []
        return subset

    def _read_subset(
        self, gap: Gap, placed: tuple[int, ...], offset: int, r: Operation
    ) -> list[tuple[int, ...]] | None:
        """The unknown adds a read saw within its gap: [] if ambiguous, None if impossible."""
        a = self.analysis
        members = [i for i in placed if a.unknown[i].op.start <= r.end]
        values = [a.unknown[i].number for i in members]
        found = []
        for picked in subsets_with_sum(values, offset, self.budget):
            found.append(tuple(sorted(members[p] for p in picked)))
            if len(found) == 2:
                return []
        return found or None

    def _check_nesting(self, seen: Seen) -> None:
        """Reads within one gap must see growing sets of its unknown adds (one order)."""
        for entries in seen.values():
            entries.sort(key=lambda e: e[0])
            for (_, lo, r1), (_, hi, r2) in pairwise(entries):
                if not set(lo) <= set(hi):
                    missing = sorted(set(lo) - set(hi))
                    self._flag(
                        BAD_READ,
                        f"read #{r1.op_id} saw unknown add "
                        f"#{self.analysis.unknown[missing[0]].op.op_id} that the later state "
                        f"read by #{r2.op_id} lacks: no single order has both",
                    )


class _Recency:
    """Answers "the latest state acknowledged before time t" in O(log n)."""

    def __init__(self, acked: Sequence[Add], reads: Sequence[Operation]) -> None:
        by_end = sorted(acked, key=lambda a: a.op.end)
        self.add_ends = [a.op.end for a in by_end]
        self.best_add: list[Add] = []
        for a in by_end:
            best = self.best_add[-1] if self.best_add else None
            self.best_add.append(a if best is None or a.new_sum > best.new_sum else best)
        by_start = sorted(acked, key=lambda a: a.op.start)
        self.add_starts = [a.op.start for a in by_start]
        self.lowest_add = list(by_start)
        for j in range(len(by_start) - 2, -1, -1):
            if self.lowest_add[j + 1].new_sum < self.lowest_add[j].new_sum:
                self.lowest_add[j] = self.lowest_add[j + 1]
        reads_by_end = sorted(reads, key=lambda r: r.end)
        self.read_ends = [r.end for r in reads_by_end]
        self.best_read: list[Operation] = []
        for r in reads_by_end:
            best_read = self.best_read[-1] if self.best_read else None
            self.best_read.append(
                r if best_read is None or _val(r) > _val(best_read) else best_read
            )

    def latest_add_before(self, t: float) -> Add | None:
        """The highest new_sum acknowledged before t."""
        k = bisect_left(self.add_ends, t)
        return self.best_add[k - 1] if k else None

    def latest_read_before(self, t: float) -> Operation | None:
        k = bisect_left(self.read_ends, t)
        return self.best_read[k - 1] if k else None

    def first_add_after(self, t: float) -> Add | None:
        """The lowest new_sum of the adds invoked after t."""
        k = bisect_right(self.add_starts, t)
        return self.lowest_add[k] if k < len(self.lowest_add) else None


def _val(op: Operation) -> Decimal:
    assert op.result is not None
    return op.result
