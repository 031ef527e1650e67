"""The checker's verdict over a whole history: is it the history of one correct counter?

The model: one sum, adds that take effect one at a time, each somewhere between its invocation
and its response (linearizability). Adds must be positive, which makes the sum grow with every
add, so the sequential order of the acknowledged adds is simply the order of their `new_sum`
values. The judge then checks:

1. Chain: between two neighbouring acknowledged adds A and B, `new_sum(B) - number(B) -
   new_sum(A)` is what other adds contributed in between. Only unknown adds (invoked before B
   ended) can fill such a gap, each at most once. The same holds before the first acknowledged
   add (from the starting sum) and after the last one (up to the final sum).
2. Real time: if A's response came before B was invoked, A comes first.
3. Final sum: start + acknowledged adds + some subset of the unknown ones.
4. Reads: each read returns a state of that order, no older than any add acknowledged or any
   read finished before it began, and not including an add invoked after it ended.

Which unknown adds filled which gap is decided by a bounded subset-sum search over the whole
history. When the search cannot finish within its budget the verdict says so and rests on
bounds (each gap between zero and what its candidate unknown adds could give).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from itertools import pairwise

from abacus.harness.decimals import fractional_digits, from_units, render, to_units
from abacus.harness.history import History, Kind, Operation, Outcome
from abacus.harness.subsets import Budget, BudgetExhausted, subsets_with_sum

LOST_UPDATE = "lost update"
APPLIED_TWICE = "add applied twice"
FAILED_APPLIED = "failed add applied"
SURPLUS = "unexplained surplus"
NO_ORDER = "new_sum values fit no sequential order"
STALE_READ = "stale read"
BAD_READ = "read fits no sequential order"

# The headline of an inconsistent verdict is the first of these that was found: a wrong
# final sum explains wrong new_sum values, not the other way round.
FAULTS = (LOST_UPDATE, APPLIED_TWICE, FAILED_APPLIED, SURPLUS, NO_ORDER, STALE_READ, BAD_READ)

DEFAULT_SEARCH_BUDGET = 2_000_000


class Method(StrEnum):
    EXACT = "exact"  # which unknown adds were applied, and where, is decided and unique
    EXACT_NOT_UNIQUE = "exact, placement not unique"  # a valid placement exists; not the only one
    BOUNDS = "bounds"  # the search gave up; only necessary conditions were checked


@dataclass(frozen=True)
class Violation:
    kind: str
    detail: str


@dataclass
class Verdict:
    violations: list[Violation]
    method: Method
    notes: list[str]
    start_sum: Decimal
    final_sum: Decimal | None
    acknowledged_sum: Decimal  # the numbers of all acknowledged adds
    unknown_sum: Decimal  # the numbers of all unknown adds
    applied_unknown: tuple[int, ...] | None  # op ids of unknown adds found applied, if decided
    applied_unknown_sum: Decimal | None
    acknowledged: int
    unknown: int
    reads_checked: int

    @property
    def consistent(self) -> bool:
        return not self.violations

    @property
    def complete(self) -> bool:
        """False when the final sum could not be read, so the final-sum check did not run."""
        return self.final_sum is not None

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

    def message(self) -> str:
        """One line for a person."""
        if self.violations:
            first = next(v for v in self.violations if v.kind == self.fault)
            return f"INCONSISTENT: {first.kind}: {first.detail}"
        if not self.complete:
            return "INCOMPLETE: no violation found, but the final sum could not be read"
        return f"CONSISTENT ({self.method.value})"


@dataclass
class _Add:
    op: Operation
    number: int
    new_sum: int = 0  # only meaningful for acknowledged adds


@dataclass
class _Gap:
    """The stretch of the order between two acknowledged adds, filled only by unknown adds."""

    lower: int  # the state the gap starts from
    upper: int | None  # the state it must reach; None after the last add if the final is unknown
    deadline: float  # unknown adds in it must have been invoked before this
    after: _Add | None  # the acknowledged add that produced `lower`, if any
    before: _Add | None  # the acknowledged add that follows, None for the tail
    members: tuple[int, ...] | None = None  # indices into the unknown adds, once placed

    @property
    def target(self) -> int | None:
        return None if self.upper is None else self.upper - self.lower


@dataclass
class _Placement:
    method: Method
    assignments: list[list[tuple[int, ...]]] = field(default_factory=list)


def judge(history: History, *, search_budget: int = DEFAULT_SEARCH_BUDGET) -> Verdict:
    """Judge `history`; all add numbers must be positive."""
    return _Judge(history, search_budget).verdict()


class _Judge:
    def __init__(self, history: History, search_budget: int) -> None:
        self.history = history
        self.search_budget = search_budget
        self.violations: list[Violation] = []
        self.notes: list[str] = []
        adds = history.of(Kind.ADD)
        for op in adds:
            if op.number is None or op.number <= 0:
                raise ValueError(f"add #{op.op_id}: the judge needs positive numbers")
        numbers: list[Decimal] = [op.number for op in adds if op.number is not None]
        values = [op.result for op in history.operations if op.result is not None]
        extremes = [history.start_sum] + ([] if history.final_sum is None else [history.final_sum])
        self.digits = fractional_digits([*numbers, *values, *extremes])
        self.start = self._units(history.start_sum)
        self.final = None if history.final_sum is None else self._units(history.final_sum)
        self.acked = sorted(
            (
                _Add(op, self._units(op.number), self._units(op.result))
                for op in adds
                if op.outcome is Outcome.OK and op.result is not None and op.number is not None
            ),
            key=lambda a: (a.new_sum, a.op.start),
        )
        # An ok add without a readable new_sum happened, but we cannot tell where: treat it
        # like an unknown one rather than guess.
        self.unknown = [
            _Add(op, self._units(op.number))
            for op in adds
            if op.number is not None
            and (op.outcome is Outcome.UNKNOWN or (op.outcome is Outcome.OK and op.result is None))
        ]
        self.failed = [
            _Add(op, self._units(op.number))
            for op in adds
            if op.outcome is Outcome.FAILED and op.number is not None
        ]
        self.reads = [op for op in history.of(Kind.READ, Outcome.OK) if op.result is not None]
        self.acked_by_number = {a.number: a for a in self.acked}
        self.failed_by_number = {f.number: f for f in self.failed}

    def _units(self, value: Decimal | None) -> int:
        assert value is not None
        return to_units(value, self.digits)

    def _show(self, units: int) -> str:
        return render(from_units(units, self.digits))

    def _flag(self, kind: str, detail: str) -> None:
        self.violations.append(Violation(kind, detail))

    def verdict(self) -> Verdict:
        self._check_real_time()
        gaps = self._gaps()
        self._check_gap_bounds(gaps)
        self._check_final_total()
        placement = self._place(gaps)
        self._check_reads(gaps)
        applied: tuple[int, ...] | None = None
        applied_sum: Decimal | None = None
        if placement.method is Method.EXACT and self.final is not None:
            chosen = sorted(i for members in placement.assignments[0] for i in members)
            applied = tuple(self.unknown[i].op.op_id for i in chosen)
            applied_sum = from_units(sum(self.unknown[i].number for i in chosen), self.digits)
        return Verdict(
            violations=self.violations,
            method=placement.method,
            notes=self.notes,
            start_sum=self.history.start_sum,
            final_sum=self.history.final_sum,
            acknowledged_sum=from_units(sum(a.number for a in self.acked), self.digits),
            unknown_sum=from_units(sum(u.number for u in self.unknown), self.digits),
            applied_unknown=applied,
            applied_unknown_sum=applied_sum,
            acknowledged=len(self.acked),
            unknown=len(self.unknown),
            reads_checked=len(self.reads),
        )

    # -- adds ---------------------------------------------------------------------------

    def _check_real_time(self) -> None:
        """If A was acknowledged before B was invoked, new_sum(A) < new_sum(B)."""
        by_end = sorted(self.acked, key=lambda a: a.op.end)
        highest: _Add | None = None
        i = 0
        for b in sorted(self.acked, key=lambda a: a.op.start):
            while i < len(by_end) and by_end[i].op.end < b.op.start:
                if highest is None or by_end[i].new_sum > highest.new_sum:
                    highest = by_end[i]
                i += 1
            if highest is not None and highest.new_sum >= b.new_sum:
                self._flag(
                    NO_ORDER,
                    f"add #{highest.op.op_id} was acknowledged with new_sum "
                    f"{self._show(highest.new_sum)} before add #{b.op.op_id} began, yet "
                    f"#{b.op.op_id} returned the lower or equal new_sum {self._show(b.new_sum)}",
                )

    def _gaps(self) -> list[_Gap]:
        gaps: list[_Gap] = []
        lower, after = self.start, None
        for b in self.acked:
            gaps.append(_Gap(lower, b.new_sum - b.number, b.op.end, after, b))
            lower, after = b.new_sum, b
        gaps.append(_Gap(lower, self.final, math.inf, after, None))
        return gaps

    def _candidates(self, gap: _Gap) -> list[int]:
        # As everywhere here, A precedes B only if A ended strictly before B began: an unknown
        # add that began at the very instant the gap's add ended may still come before it.
        return [i for i, u in enumerate(self.unknown) if u.op.start <= gap.deadline]

    def _check_gap_bounds(self, gaps: Sequence[_Gap]) -> None:
        """Necessary conditions per gap; a gap failing them is a definite violation."""
        for gap in gaps:
            target = gap.target
            if target is None or target == 0:
                continue
            if target < 0:
                self._flag_negative_gap(gap, target)
                continue
            room = sum(self.unknown[i].number for i in self._candidates(gap))
            if target > room:
                self._flag_surplus(gap, target)

    def _flag_negative_gap(self, gap: _Gap, target: int) -> None:
        if gap.before is None:
            assert gap.after is not None
            self._flag(
                STALE_READ,
                f"the final read returned {self._show(gap.lower + target)}, below new_sum "
                f"{self._show(gap.after.new_sum)} that add #{gap.after.op.op_id} returned "
                "before it began (or the sum lost acknowledged adds)",
            )
            return
        b = gap.before
        if gap.after is not None and gap.after.new_sum == b.new_sum:
            detail = (
                f"adds #{gap.after.op.op_id} and #{b.op.op_id} both returned new_sum "
                f"{self._show(b.new_sum)}"
            )
        else:
            origin = "the starting sum" if gap.after is None else f"add #{gap.after.op.op_id}'s"
            detail = (
                f"add #{b.op.op_id} added {self._show(b.number)} and returned new_sum "
                f"{self._show(b.new_sum)}, so the sum before it was "
                f"{self._show(b.new_sum - b.number)}, below {origin} {self._show(gap.lower)}"
            )
        self._flag(NO_ORDER, detail)

    def _flag_surplus(self, gap: _Gap, target: int) -> None:
        """Name what an amount no unknown add explains most likely is."""
        where = (
            "the final sum exceeds the last acknowledged new_sum"
            if gap.before is None
            else f"before add #{gap.before.op.op_id} (new_sum {self._show(gap.before.new_sum)}) "
            "the sum rose"
        )
        amount = f"{where} by {self._show(target)} more than the adds in between explain"
        candidates = [self.unknown[i].number for i in self._candidates(gap)]
        leftovers = [target, *(target - c for c in candidates if c < target)]
        if gap.before is not None and not self._final_has_surplus():
            # The final sum does not carry the extra amount, so nothing was applied twice:
            # this new_sum is simply wrong.
            leftovers = []
        for leftover in leftovers:
            twice = self.acked_by_number.get(leftover)
            if twice is not None:
                self._flag(
                    APPLIED_TWICE,
                    f"{amount}: the number of add #{twice.op.op_id} ({self._show(leftover)}), "
                    "which was counted again",
                )
                return
            failed = self.failed_by_number.get(leftover)
            if failed is not None:
                self._flag(
                    FAILED_APPLIED,
                    f"{amount}: the number of add #{failed.op.op_id} ({self._show(leftover)}), "
                    f"which was answered {failed.op.status} {failed.op.error or ''}".rstrip()
                    + " (certainly not applied)",
                )
                return
        self._flag(
            SURPLUS if gap.before is None else NO_ORDER,
            f"{amount}; no subset of the unknown adds makes that up",
        )

    def _final_has_surplus(self) -> bool:
        """True unless a final sum within start + acknowledged + unknown adds is known."""
        if self.final is None:
            return True
        acknowledged = sum(a.number for a in self.acked)
        unknown = sum(u.number for u in self.unknown)
        return self.final > self.start + acknowledged + unknown

    def _check_final_total(self) -> None:
        if self.final is None:
            self.notes.append("the final sum could not be read: the final-sum check did not run")
            return
        top = self.acked[-1].new_sum if self.acked else self.start
        chain_broken = any(v.kind == NO_ORDER for v in self.violations)
        if self.final < top and not chain_broken:
            # Every new_sum fits one order, so the sum did reach `top`: the final read is
            # stale (flagged as such), and says nothing more about losses.
            return
        acknowledged = sum(a.number for a in self.acked)
        short = self.start + acknowledged - self.final
        if short > 0:
            which = self.acked_by_number.get(short)
            named = ""
            if which is not None:
                named = f", exactly add #{which.op.op_id}'s number"
            elif self.acked:
                named = f", about {short * len(self.acked) / acknowledged:.0f} adds' worth"
            self._flag(
                LOST_UPDATE,
                f"final sum {self._show(self.final)} is {self._show(short)} short of start "
                f"{self._show(self.start)} + the acknowledged adds {self._show(acknowledged)}"
                f"{named}",
            )

    # -- unknown adds ---------------------------------------------------------------------

    def _place(self, gaps: list[_Gap]) -> _Placement:
        """Decide which unknown adds filled which gap, if the search budget allows."""
        for gap in gaps:
            if gap.target == 0:
                gap.members = ()  # with positive numbers nothing else sums to zero
        open_gaps = [g for g in gaps if g.target is not None and g.target > 0]
        budget = Budget(self.search_budget)
        try:
            # Once the chain is broken a placement would only be a guess.
            if self._chain_broken() or not self._each_gap_fillable(open_gaps, budget):
                return _Placement(Method.BOUNDS)
            found, exhausted = self._search_jointly(open_gaps, budget)
        except BudgetExhausted:
            found, exhausted = [], True
        if not found:
            if exhausted:
                self.notes.append(
                    "the search for which unknown adds were applied ran out of budget: the "
                    "verdict on them falls back to bounds (every gap between 0 and what the "
                    "unknown adds invoked in time could add)"
                )
            else:
                self._flag(
                    APPLIED_TWICE,
                    "every gap in the new_sum order can be filled by unknown adds, but not all "
                    "at once: some add would have to count twice",
                )
            return _Placement(Method.BOUNDS)
        if len(found) == 1 and not exhausted:
            for gap, members in zip(open_gaps, found[0], strict=True):
                gap.members = members
            return _Placement(Method.EXACT, found)
        self.notes.append(
            "more than one choice of applied unknown adds fits; the verdict holds for each"
            if len(found) > 1
            else "one choice of applied unknown adds fits; the search budget ran out before "
            "it could rule out others"
        )
        return _Placement(Method.EXACT_NOT_UNIQUE, found)

    def _chain_broken(self) -> bool:
        return any(v.kind != STALE_READ for v in self.violations)

    def _each_gap_fillable(self, gaps: Sequence[_Gap], budget: Budget) -> bool:
        """Each gap on its own; a gap no subset fills is a definite violation."""
        fillable = True
        for gap in gaps:
            assert gap.target is not None
            values = [self.unknown[i].number for i in self._candidates(gap)]
            if next(subsets_with_sum(values, gap.target, budget), None) is None:
                self._flag_surplus(gap, gap.target)
                fillable = False
        return fillable

    def _search_jointly(
        self, gaps: Sequence[_Gap], budget: Budget
    ) -> tuple[list[list[tuple[int, ...]]], bool]:
        """Up to two assignments of unknown adds to gaps, each add used at most once.

        Depth-first over the gaps with an explicit stack (a history can have more gaps than
        Python allows recursion).
        """
        used = [False] * len(self.unknown)

        def options(gap: _Gap) -> Iterator[tuple[int, ...]]:
            free = [i for i in self._candidates(gap) if not used[i]]
            assert gap.target is not None
            for picked in subsets_with_sum(
                [self.unknown[i].number for i in free], gap.target, budget
            ):
                yield tuple(free[p] for p in picked)

        found: list[list[tuple[int, ...]]] = []
        if not gaps:
            return [[]], False
        chosen: list[tuple[int, ...]] = []
        stack = [options(gaps[0])]
        try:
            while stack:
                level = len(stack) - 1
                if len(chosen) > level:
                    for i in chosen.pop():
                        used[i] = False
                pick = next(stack[-1], None)
                if pick is None:
                    stack.pop()
                    continue
                for i in pick:
                    used[i] = True
                chosen.append(pick)
                if len(chosen) == len(gaps):
                    found.append(list(chosen))
                    if len(found) == 2:
                        break
                    continue
                stack.append(options(gaps[len(chosen)]))
        except BudgetExhausted:
            return found, True
        return found, False

    # -- reads ----------------------------------------------------------------------------

    def _check_reads(self, gaps: list[_Gap]) -> None:
        if not self.reads:
            return
        recency = _Recency(self.acked, self.reads)
        seen: dict[int, list[tuple[int, tuple[int, ...], Operation]]] = {}
        budget = Budget(self.search_budget)
        bounded = False
        lowers = [g.lower for g in gaps]
        for r in self.reads:
            value = self._units(r.result)
            self._check_recency(r, value, recency)
            g = bisect_right(lowers, value) - 1
            if g < 0:
                self._flag(
                    BAD_READ,
                    f"read #{r.op_id} returned {self._show(value)}, below the starting sum "
                    f"{self._show(self.start)}",
                )
                continue
            outcome = self._check_state(r, value, gaps[g], budget)
            if outcome is None:
                bounded = True
            elif outcome:
                seen.setdefault(g, []).append((value, outcome[0], r))
        self._check_nesting(seen)
        if bounded and not any(v.kind == BAD_READ for v in self.violations):
            self.notes.append(
                "some reads fall where the applied unknown adds are not decided: those were "
                "judged by bounds (between the neighbouring acknowledged states)"
            )

    def _check_recency(self, r: Operation, value: int, recency: _Recency) -> None:
        """Not older than what was acknowledged before it began; nothing from after it ended."""
        shown = self._show(value)
        a = recency.latest_add_before(r.start)
        if a is not None and a.new_sum > value:
            self._flag(
                STALE_READ,
                f"read #{r.op_id} returned {shown}, but add #{a.op.op_id} had returned "
                f"new_sum {self._show(a.new_sum)} before the read began",
            )
        earlier = recency.latest_read_before(r.start)
        if earlier is not None and self._units(earlier.result) > value:
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
                f"(new_sum {self._show(b.new_sum)}) that began only after the read ended",
            )

    def _check_state(
        self, r: Operation, value: int, gap: _Gap, budget: Budget
    ) -> list[tuple[int, ...]] | None:
        """Is the value a state within its gap? The unknown adds it saw ([] if not unique).

        None when only bounds could be checked.
        """
        if gap.upper is not None and gap.upper < gap.lower:
            return []  # the chain itself is broken here (flagged); no state to compare with
        if gap.upper is not None and value > gap.upper:
            assert gap.before is not None
            self._flag(
                BAD_READ,
                f"read #{r.op_id} returned {self._show(value)}, between "
                f"{self._show(gap.upper)} (the sum just before add #{gap.before.op.op_id}) and "
                f"its new_sum {self._show(gap.before.new_sum)}: no state of the order has it",
            )
            return []
        if gap.members is None or gap.upper is None:
            return None
        try:
            subset = self._read_subset(gap, value - gap.lower, r, budget)
        except BudgetExhausted:
            return None
        if subset is None:
            self._flag(
                BAD_READ,
                f"read #{r.op_id} returned {self._show(value)}: "
                f"{self._show(value - gap.lower)} above {self._show(gap.lower)}, which no set "
                "of the unknown adds placed there (and invoked before the read ended) makes up",
            )
            return []
        return subset

    def _read_subset(
        self, gap: _Gap, offset: int, r: Operation, budget: Budget
    ) -> list[tuple[int, ...]] | None:
        """The unknown adds a read saw within its gap: [] if ambiguous, None if impossible."""
        assert gap.members is not None
        members = [i for i in gap.members if self.unknown[i].op.start <= r.end]
        values = [self.unknown[i].number for i in members]
        found = []
        for picked in subsets_with_sum(values, offset, budget):
            found.append(tuple(sorted(members[p] for p in picked)))
            if len(found) == 2:
                return []
        return found or None

    def _check_nesting(self, seen: dict[int, list[tuple[int, tuple[int, ...], Operation]]]) -> None:
        """Reads within one gap must see growing sets of its unknown adds (one order)."""
        for entries in seen.values():
            entries.sort(key=lambda e: e[0])
            for (_, lo, r1), (_, hi, r2) in pairwise(entries):
                if not set(lo) <= set(hi):
                    missing = sorted(set(lo) - set(hi))
                    self._flag(
                        BAD_READ,
                        f"read #{r1.op_id} saw unknown add #{self.unknown[missing[0]].op.op_id} "
                        f"that the later state read by #{r2.op_id} lacks: no single order has both",
                    )


class _Recency:
    """Answers "the latest state acknowledged before time t" in O(log n)."""

    def __init__(self, acked: Sequence[_Add], reads: Sequence[Operation]) -> None:
        by_end = sorted(acked, key=lambda a: a.op.end)
        self.add_ends = [a.op.end for a in by_end]
        self.best_add: list[_Add] = []
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

    def latest_add_before(self, t: float) -> _Add | None:
        """The highest new_sum acknowledged before t."""
        k = bisect_left(self.add_ends, t)
        return self.best_add[k - 1] if k else None

    def latest_read_before(self, t: float) -> Operation | None:
        k = bisect_left(self.read_ends, t)
        return self.best_read[k - 1] if k else None

    def first_add_after(self, t: float) -> _Add | None:
        """The lowest new_sum of the adds invoked after t."""
        k = bisect_right(self.add_starts, t)
        return self.lowest_add[k] if k < len(self.lowest_add) else None


def _val(op: Operation) -> Decimal:
    assert op.result is not None
    return op.result
