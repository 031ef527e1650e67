"""Which unknown adds filled which gap of the order: a bounded search over the whole history.

Each gap with a positive target must be made up by unknown adds that may lie in it, each add
used at most once across all gaps. The search decides that exactly when its budget allows:
`EXACT` (one placement, unique), `EXACT_NOT_UNIQUE` (valid placements exist, more than one or
not known to be the only one) or `BOUNDS` (it gave up, or there was nothing sound to search: the
chain itself is broken). A placement is a pure function of the analysis; the checks read it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from abacus.harness.subsets import Budget, BudgetExhausted, subsets_with_sum

if TYPE_CHECKING:
    from abacus.harness.analysis import Analysis, Gap


class Method(StrEnum):
    EXACT = "exact"  # which unknown adds were applied, and where, is decided and unique
    EXACT_NOT_UNIQUE = "exact, placement not unique"  # a valid placement exists; not the only one
    BOUNDS = "bounds"  # the search gave up; only necessary conditions were checked


@dataclass(frozen=True)
class Placement:
    method: Method
    # Gap index -> indices of the unknown adds in it, for every gap that is decided: the empty
    # ones (nothing else sums to zero), and all of them when the placement is exact.
    members: dict[int, tuple[int, ...]] = field(default_factory=dict)
    # Indices of the unknown adds found applied: exact placement and a known final sum only.
    applied: tuple[int, ...] | None = None
    # Gaps no subset of their own candidates fills, each on its own: definite violations.
    unfillable: tuple[int, ...] = ()
    # Every gap can be filled on its own, but not all at once: some add would count twice.
    conflict: bool = False
    notes: tuple[str, ...] = ()


BUDGET_NOTE = (
    "the search for which unknown adds were applied ran out of budget: the verdict on them "
    "falls back to bounds (every gap between 0 and what the unknown adds invoked in time could "
    "add)"
)


def place(analysis: Analysis) -> Placement:
    gaps = analysis.gaps
    empty: dict[int, tuple[int, ...]] = {i: () for i, gap in enumerate(gaps) if gap.target == 0}
    open_gaps = [i for i, gap in enumerate(gaps) if gap.target is not None and gap.target > 0]
    if not analysis.chain_fits or any(_target(gaps[i]) > analysis.room(gaps[i]) for i in open_gaps):
        # Once the chain is broken a placement would only be a guess.
        return Placement(Method.BOUNDS, empty)
    budget = Budget(analysis.search_budget)
    unfillable: list[int] = []
    try:
        for i in open_gaps:
            if not _fillable(analysis, gaps[i], budget):
                unfillable.append(i)
        if unfillable:
            return Placement(Method.BOUNDS, empty, unfillable=tuple(unfillable))
        found, exhausted = _search_jointly(analysis, [gaps[i] for i in open_gaps], budget)
    except BudgetExhausted:
        return Placement(Method.BOUNDS, empty, unfillable=tuple(unfillable), notes=(BUDGET_NOTE,))
    return _decided(analysis, open_gaps, empty, found, exhausted)


def _decided(
    analysis: Analysis,
    open_gaps: list[int],
    empty: dict[int, tuple[int, ...]],
    found: list[list[tuple[int, ...]]],
    exhausted: bool,
) -> Placement:
    """What the joint search's findings decide."""
    if not found:
        notes = (BUDGET_NOTE,) if exhausted else ()
        return Placement(Method.BOUNDS, empty, conflict=not exhausted, notes=notes)
    if len(found) == 1 and not exhausted:
        members = {**empty, **dict(zip(open_gaps, found[0], strict=True))}
        applied = None
        if analysis.final is not None:
            applied = tuple(sorted(i for picked in found[0] for i in picked))
        return Placement(Method.EXACT, members, applied)
    note = (
        "more than one choice of applied unknown adds fits; the verdict holds for each"
        if len(found) > 1
        else "one choice of applied unknown adds fits; the search budget ran out before it "
        "could rule out others"
    )
    return Placement(Method.EXACT_NOT_UNIQUE, empty, notes=(note,))


def _target(gap: Gap) -> int:
    assert gap.target is not None
    return gap.target


def _fillable(analysis: Analysis, gap: Gap, budget: Budget) -> bool:
    values = [analysis.unknown[i].number for i in analysis.candidates(gap)]
    return next(subsets_with_sum(values, _target(gap), budget), None) is not None


def _search_jointly(
    analysis: Analysis, gaps: Sequence[Gap], budget: Budget
) -> tuple[list[list[tuple[int, ...]]], bool]:
    """Up to two assignments of unknown adds to gaps, each add used at most once; and whether
    the budget ran out.

    Depth-first over the gaps with an explicit stack (a history can have more gaps than
    Python allows recursion).
    """
    used = [False] * len(analysis.unknown)

    def options(gap: Gap) -> Iterator[tuple[int, ...]]:
        free = [i for i in analysis.candidates(gap) if not used[i]]
        values = [analysis.unknown[i].number for i in free]
        for picked in subsets_with_sum(values, _target(gap), budget):
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
