"""The history in the judge's terms: the chain of acknowledged adds and the gaps between them.

The model: one sum, adds that take effect one at a time, each somewhere between its invocation
and its response (linearizability). Adds must be positive, which makes the sum grow with every
add, so the sequential order of the acknowledged adds is simply the order of their `new_sum`
values. Between two neighbouring acknowledged adds A and B lies a *gap*: `new_sum(B) -
number(B) - new_sum(A)` is what other adds contributed in between, and only unknown adds invoked
before B ended can fill it, each at most once. The same holds before the first acknowledged add
(from the starting sum) and after the last one (up to the final sum: the *tail*).

An `Analysis` is computed once from a history and never changes; each check reads it and none
writes it, so the checks run alone or together, in any order, with the same results. What is
costly to work out (the placement of the unknown adds) is computed on first use and kept.
Amounts are integers: every value scaled by one power of ten.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property

from abacus.harness.decimals import fractional_digits, from_units, render, to_units
from abacus.harness.history import History, Kind, Operation, Outcome
from abacus.harness.placement import Placement, place

DEFAULT_SEARCH_BUDGET = 2_000_000


@dataclass(frozen=True)
class Add:
    op: Operation
    number: int
    new_sum: int = 0  # only meaningful for acknowledged adds


@dataclass(frozen=True)
class Gap:
    """The stretch of the order between two acknowledged adds, filled only by unknown adds."""

    lower: int  # the state the gap starts from
    upper: int | None  # the state it must reach; None after the last add if the final is unknown
    deadline: float  # unknown adds in it must have been invoked before this
    after: Add | None  # the acknowledged add that produced `lower`, if any
    before: Add | None  # the acknowledged add that follows, None for the tail

    @property
    def target(self) -> int | None:
        return None if self.upper is None else self.upper - self.lower

    @property
    def is_tail(self) -> bool:
        return self.before is None


class Analysis:
    def __init__(self, history: History, search_budget: int = DEFAULT_SEARCH_BUDGET) -> None:
        self.history = history
        self.search_budget = search_budget
        adds = history.of(Kind.ADD)
        for op in adds:
            if op.number is None or op.number <= 0:
                raise ValueError(f"add #{op.op_id}: the judge needs positive numbers")
        numbers: list[Decimal] = [op.number for op in adds if op.number is not None]
        values = [op.result for op in history.operations if op.result is not None]
        extremes = [history.start_sum] + ([] if history.final_sum is None else [history.final_sum])
        self.digits = fractional_digits([*numbers, *values, *extremes])
        self.start = self.units(history.start_sum)
        self.final = None if history.final_sum is None else self.units(history.final_sum)
        self.adds = len(adds)
        self.acked: tuple[Add, ...] = tuple(
            sorted(
                (
                    Add(op, self.units(op.number), self.units(op.result))
                    for op in adds
                    if op.outcome is Outcome.OK and op.result is not None and op.number is not None
                ),
                key=lambda a: (a.new_sum, a.op.start),
            )
        )
        # An ok add without a readable new_sum happened, but we cannot tell where: treat it
        # like an unknown one rather than guess.
        self.unknown: tuple[Add, ...] = tuple(
            Add(op, self.units(op.number))
            for op in adds
            if op.number is not None
            and (op.outcome is Outcome.UNKNOWN or (op.outcome is Outcome.OK and op.result is None))
        )
        self.failed: tuple[Add, ...] = tuple(
            Add(op, self.units(op.number))
            for op in adds
            if op.outcome is Outcome.FAILED and op.number is not None
        )
        self.reads: tuple[Operation, ...] = tuple(
            op for op in history.of(Kind.READ, Outcome.OK) if op.result is not None
        )
        self.acked_by_number = {a.number: a for a in self.acked}
        self.gaps = self._gaps()

    def units(self, value: Decimal | None) -> int:
        assert value is not None
        return to_units(value, self.digits)

    def show(self, units: int) -> str:
        return render(from_units(units, self.digits))

    def decimal(self, units: int) -> Decimal:
        return from_units(units, self.digits)

    def _gaps(self) -> tuple[Gap, ...]:
        gaps: list[Gap] = []
        lower, after = self.start, None
        for b in self.acked:
            gaps.append(Gap(lower, b.new_sum - b.number, b.op.end, after, b))
            lower, after = b.new_sum, b
        gaps.append(Gap(lower, self.final, math.inf, after, None))
        return tuple(gaps)

    # -- what any check may ask -----------------------------------------------------------

    def candidates(self, gap: Gap) -> list[int]:
        """Indices of the unknown adds that may lie in `gap`: invoked by its deadline.

        As everywhere here, A precedes B only if A ended strictly before B began: an unknown
        add that began at the very instant the gap's add ended may still come before it.
        """
        return [i for i, u in enumerate(self.unknown) if u.op.start <= gap.deadline]

    def room(self, gap: Gap) -> int:
        """The most the unknown adds that may lie in `gap` can add."""
        return sum(self.unknown[i].number for i in self.candidates(gap))

    @property
    def acknowledged_total(self) -> int:
        return sum(a.number for a in self.acked)

    @property
    def unknown_total(self) -> int:
        return sum(u.number for u in self.unknown)

    @property
    def top(self) -> int:
        """The highest state the acknowledged adds show: the last new_sum (or the start)."""
        return self.acked[-1].new_sum if self.acked else self.start

    def final_has_surplus(self) -> bool:
        """True unless a final sum within start + acknowledged + unknown adds is known."""
        if self.final is None:
            return True
        return self.final > self.start + self.acknowledged_total + self.unknown_total

    @cached_property
    def real_time_inversions(self) -> tuple[tuple[Add, Add], ...]:
        """Pairs (A, B): A was acknowledged before B was invoked, yet new_sum(A) >= new_sum(B).

        For each B, A is the highest new_sum acknowledged before B began.
        """
        by_end = sorted(self.acked, key=lambda a: a.op.end)
        found: list[tuple[Add, Add]] = []
        highest: Add | None = None
        i = 0
        for b in sorted(self.acked, key=lambda a: a.op.start):
            while i < len(by_end) and by_end[i].op.end < b.op.start:
                if highest is None or by_end[i].new_sum > highest.new_sum:
                    highest = by_end[i]
                i += 1
            if highest is not None and highest.new_sum >= b.new_sum:
                found.append((highest, b))
        return tuple(found)

    @cached_property
    def chain_fits(self) -> bool:
        """Do the acknowledged new_sum values fit one order by themselves? Real time holds, and
        every gap between two acknowledged adds is neither negative nor beyond what the unknown
        adds that may lie in it could add. (The tail is the final sum's, not the chain's.)"""
        if self.real_time_inversions:
            return False
        for gap in self.gaps:
            target = gap.target
            if gap.is_tail or target is None:
                continue
            if target < 0 or target > self.room(gap):
                return False
        return True

    @cached_property
    def placement(self) -> Placement:
        """Which unknown adds filled which gap, as far as the search budget decides."""
        return place(self)
