"""The judge on hand-built histories: times are plain numbers, sums start at 0 unless said."""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abacus.harness.addends import UNIT, make_addends
from abacus.harness.history import History, Operation, Outcome, add, read
from abacus.harness.judge import (
    APPLIED_TWICE,
    BAD_READ,
    FAILED_APPLIED,
    LOST_UPDATE,
    NO_ORDER,
    STALE_READ,
    SURPLUS,
    Method,
    judge,
)
from abacus.harness.subsets import Budget, BudgetExhausted, subsets_with_sum

UNKNOWN = Outcome.UNKNOWN
FAILED = Outcome.FAILED


def history(*ops: Operation, final: int | None, start: int = 0) -> History:
    return History(Decimal(start), list(ops), None if final is None else Decimal(final))


def kinds(h: History) -> set[str]:
    return {v.kind for v in judge(h).violations}


def test_sequential_adds_and_reads_are_consistent() -> None:
    h = history(
        add(1, 1, 0, 1, new_sum=1),
        read(2, 1.5, 2, 1),
        add(3, 2, 2, 3, new_sum=3),
        add(4, 3, 4, 5, new_sum=6),
        read(5, 6, 7, 6),
        final=6,
    )
    verdict = judge(h)
    assert verdict.consistent
    assert verdict.method is Method.EXACT
    assert verdict.expected_sum == 6
    assert verdict.message() == "CONSISTENT (exact)"


def test_overlapping_adds_may_take_effect_in_either_order() -> None:
    h = history(
        add(1, 5, 0, 10, new_sum=7),
        add(2, 2, 0, 10, new_sum=2),
        read(3, 1, 9, 2),
        final=7,
        start=0,
    )
    assert judge(h).consistent


def test_a_start_sum_other_than_zero_is_the_base() -> None:
    h = history(add(1, 5, 0, 1, new_sum=105), final=105, start=100)
    assert judge(h).consistent


def test_lost_update_is_named() -> None:
    # Both read 0 and wrote their own number: the later write clobbered the earlier.
    h = history(add(1, 1, 0, 2, new_sum=1), add(2, 2, 0, 2, new_sum=2), final=2)
    verdict = judge(h)
    assert verdict.fault == LOST_UPDATE
    assert "short of" in verdict.message()
    assert NO_ORDER in kinds(h)


def test_an_add_applied_twice_is_named_with_the_add() -> None:
    h = history(add(1, 5, 0, 1, new_sum=10), add(2, 3, 2, 3, new_sum=13), final=13)
    verdict = judge(h)
    assert verdict.fault == APPLIED_TWICE
    assert "add #1" in verdict.message()


def test_an_add_applied_twice_later_shows_in_the_final_sum() -> None:
    h = history(add(1, 5, 0, 1, new_sum=5), add(2, 3, 2, 3, new_sum=8), final=13)
    assert judge(h).fault == APPLIED_TWICE


def test_new_sums_off_while_the_final_sum_is_right() -> None:
    h = history(
        add(1, 1, 0, 1, new_sum=1),
        add(2, 2, 2, 3, new_sum=4),  # should be 3
        add(3, 3, 4, 5, new_sum=6),
        final=6,
    )
    verdict = judge(h)
    assert verdict.fault == NO_ORDER
    assert kinds(h) == {NO_ORDER}


def test_two_adds_with_the_same_new_sum_fit_no_order() -> None:
    h = history(add(1, 2, 0, 3, new_sum=3), add(2, 3, 0, 3, new_sum=3), final=5)
    verdict = judge(h)
    assert NO_ORDER in kinds(h)
    assert any("both returned new_sum 3" in v.detail for v in verdict.violations)


def test_real_time_order_is_enforced() -> None:
    # Each new_sum alone could fit, but #1 finished before #2 began and has the larger one.
    h = history(add(1, 2, 0, 1, new_sum=3), add(2, 1, 2, 3, new_sum=1), final=3)
    verdict = judge(h)
    assert verdict.fault == NO_ORDER
    assert any("before add #2 began" in v.detail for v in verdict.violations)


def test_stale_read_after_an_acknowledged_add() -> None:
    h = history(add(1, 1, 0, 1, new_sum=1), read(2, 2, 3, 0), final=1)
    verdict = judge(h)
    assert verdict.fault == STALE_READ
    assert "read #2" in verdict.message()


def test_stale_read_older_than_an_earlier_read() -> None:
    h = history(
        add(1, 1, 0, 10, new_sum=1),
        read(2, 1, 2, 1),
        read(3, 3, 4, 0),
        final=1,
    )
    assert judge(h).fault == STALE_READ


def test_stale_final_read() -> None:
    h = history(add(1, 1, 0, 1, new_sum=1), add(2, 1, 2, 3, new_sum=2), final=1)
    verdict = judge(h)
    assert verdict.fault == STALE_READ
    assert "final read" in verdict.message()


def test_read_of_a_value_that_was_never_the_sum() -> None:
    h = history(add(1, 10, 0, 1, new_sum=10), read(2, 0, 2, 4), final=10)
    assert judge(h).fault == BAD_READ


def test_read_that_sees_an_add_invoked_after_it_ended() -> None:
    h = history(read(1, 0, 1, 5), add(2, 5, 2, 3, new_sum=5), final=5)
    verdict = judge(h)
    assert verdict.fault == BAD_READ
    assert "began only after the read ended" in verdict.message()


def test_unknown_adds_fill_gaps_exactly() -> None:
    h = history(
        add(1, 1, 0, 1, new_sum=1),
        add(2, 10, 0.5, 9, outcome=UNKNOWN),  # applied between #1 and #3
        add(3, 100, 2, 3, new_sum=111),
        add(4, 1000, 2, 9, outcome=UNKNOWN),  # never applied
        add(5, 5000, 4, 9, outcome=UNKNOWN),  # applied after #3
        read(6, 5, 6, 5111),
        final=5111,
    )
    verdict = judge(h)
    assert verdict.consistent
    assert verdict.method is Method.EXACT
    assert verdict.applied_unknown == (2, 5)
    assert verdict.expected_sum == 5111


def test_an_unknown_add_cannot_precede_an_add_that_ended_before_it_began() -> None:
    h = history(
        add(1, 1, 0, 1, new_sum=11),  # the 10 would have to come before #1 ...
        add(2, 10, 2, 9, outcome=UNKNOWN),  # ... but was invoked after #1 ended
        final=11,
    )
    assert not judge(h).consistent


def test_an_unknown_add_may_precede_an_add_that_ended_the_instant_it_began() -> None:
    # A precedes B only when A ended strictly before B began; equal instants are concurrent.
    h = history(
        add(1, 10, 1, 1, outcome=UNKNOWN),
        add(2, 1, 0, 1, new_sum=11),
        read(3, 1, 1, 10),
        final=11,
    )
    verdict = judge(h)
    assert verdict.consistent, verdict.violations
    assert verdict.applied_unknown == (1,)


def test_an_unknown_add_cannot_fill_two_gaps() -> None:
    h = history(
        add(1, 1, 0, 1, new_sum=11),
        add(2, 10, 0, 9, outcome=UNKNOWN),
        add(3, 1, 2, 3, new_sum=22),
        final=22,
    )
    verdict = judge(h)
    assert verdict.fault == APPLIED_TWICE
    assert "not all at once" in verdict.message()


def test_a_failed_add_that_was_applied_is_named() -> None:
    h = history(add(1, 1, 0, 1, new_sum=1), add(2, 7, 2, 3, outcome=FAILED), final=8)
    verdict = judge(h)
    assert verdict.fault == FAILED_APPLIED
    assert "add #2" in verdict.message()


def test_a_surplus_no_add_explains() -> None:
    h = history(add(1, 1, 0, 1, new_sum=1), final=1000)
    assert judge(h).fault == SURPLUS


def test_replayed_answers_are_one_operation() -> None:
    replayed = add(1, 5, 0, 1, new_sum=5)
    replayed.replayed = True
    assert judge(history(replayed, final=5)).consistent


def test_an_ok_add_without_new_sum_counts_as_unknown() -> None:
    h = history(add(1, 5, 0, 1, new_sum=None), add(2, 1, 2, 3, new_sum=6), final=6)
    verdict = judge(h)
    assert verdict.consistent
    assert verdict.unknown == 1


def test_ambiguous_unknowns_are_consistent_but_not_unique() -> None:
    h = history(
        add(1, 1, 0, 9, outcome=UNKNOWN),
        add(2, 2, 0, 9, outcome=UNKNOWN),
        add(3, 3, 0, 9, outcome=UNKNOWN),
        final=3,
    )
    verdict = judge(h)
    assert verdict.consistent
    assert verdict.method is Method.EXACT_NOT_UNIQUE
    assert verdict.expected_sum is None
    assert any("more than one choice" in note for note in verdict.notes)


def test_falls_back_to_bounds_when_the_search_budget_runs_out() -> None:
    unknown = [add(i, i, 0, 9, outcome=UNKNOWN) for i in range(1, 30)]
    h = history(*unknown, read(99, 1, 2, 200), final=200)
    verdict = judge(h, search_budget=5)
    assert verdict.consistent
    assert verdict.method is Method.BOUNDS
    assert any("falls back to bounds" in note for note in verdict.notes)
    assert verdict.expected_min == 0
    assert verdict.expected_max == sum(range(1, 30))


def test_bounds_still_catch_a_final_sum_beyond_every_unknown_add() -> None:
    unknown = [add(i, i, 0, 9, outcome=UNKNOWN) for i in range(1, 30)]
    verdict = judge(history(*unknown, final=10_000), search_budget=5)
    assert verdict.fault == SURPLUS


def test_without_a_final_sum_the_verdict_is_incomplete() -> None:
    verdict = judge(history(add(1, 1, 0, 1, new_sum=1), final=None))
    assert verdict.consistent
    assert not verdict.complete
    assert verdict.message().startswith("INCOMPLETE")


def test_decimal_numbers_are_judged_exactly() -> None:
    h = History(
        Decimal("0"),
        [
            add(1, Decimal("0.1"), 0, 1, new_sum=Decimal("0.1")),
            add(2, Decimal("0.2"), 2, 3, new_sum=Decimal("0.3")),
        ],
        Decimal("0.3"),
    )
    assert judge(h).consistent


def test_non_positive_numbers_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        judge(history(add(1, -1, 0, 1, new_sum=-1), final=-1))


def test_reads_must_see_unknown_adds_in_one_order() -> None:
    h = history(
        add(1, 10, 0, 9, outcome=UNKNOWN),
        add(2, 100, 0, 9, outcome=UNKNOWN),
        read(3, 1, 2, 10),  # saw 10 but not 100 ...
        read(4, 1, 2, 100),  # ... and 100 but not 10: no single order has both
        final=110,
    )
    assert judge(h).fault == BAD_READ


# -- subset search -------------------------------------------------------------------------


def test_subsets_enumerates_every_solution() -> None:
    found = {tuple(sorted(s)) for s in subsets_with_sum([1, 2, 3, 4], 5, Budget(1000))}
    assert found == {(0, 3), (1, 2)}


def test_subsets_of_the_whole_and_of_nothing() -> None:
    assert list(subsets_with_sum([1, 2, 3], 6, Budget(10))) == [(0, 1, 2)]
    assert list(subsets_with_sum([1, 2, 3], 0, Budget(10))) == [()]
    assert list(subsets_with_sum([1, 2, 3], 7, Budget(10))) == []


def test_subsets_gives_up_when_the_budget_runs_out() -> None:
    with pytest.raises(BudgetExhausted):
        list(subsets_with_sum(list(range(1, 40)), 390, Budget(3)))


def test_generated_addends_make_subsets_unique() -> None:
    numbers = [int(n) for n in make_addends(200, random.Random(7))]
    chosen = [3, 50, 199]
    found = list(subsets_with_sum(numbers, sum(numbers[i] for i in chosen), Budget(10**6)))
    assert [sorted(s) for s in found] == [chosen]
    assert all(UNIT < n < 2 * UNIT for n in numbers)


# -- no false alarms: simulated correct executions ----------------------------------------


@dataclass
class _Planned:
    kind: str
    start: float
    point: float  # when it takes effect, within [start, end]
    end: float
    fate: str  # adds: ok / unknown-applied / unknown-lost / failed


@st.composite
def correct_executions(draw: st.DrawFn, *, unique_sums: bool) -> History:
    """Operations on one correct counter, each taking effect inside its interval.

    With `unique_sums` the numbers are distinct powers of two, so every placement of the
    unknown adds is unique and the exact read checks run; otherwise small numbers collide.
    """
    count = draw(st.integers(1, 12))
    planned = []
    for _ in range(count):
        start = draw(st.floats(0, 10))
        point = start + draw(st.floats(0, 3))
        end = point + draw(st.floats(0, 3))
        kind = draw(st.sampled_from(["add", "add", "read"]))
        fate = draw(st.sampled_from(["ok", "ok", "unknown-applied", "unknown-lost", "failed"]))
        planned.append(_Planned(kind, start, point, end, fate))
    if unique_sums:
        numbers = [2**k for k in draw(st.permutations(range(count)))]
    else:
        numbers = draw(st.lists(st.integers(1, 50), min_size=count, max_size=count))
    total = 0
    ops: list[Operation] = []
    for i, p in sorted(enumerate(planned), key=lambda e: e[1].point):
        if p.kind == "read":
            ops.append(read(i, p.start, p.end, total))
            continue
        applied = p.fate in ("ok", "unknown-applied")
        total += numbers[i] if applied else 0
        outcome = {"ok": Outcome.OK, "failed": FAILED}.get(p.fate, UNKNOWN)
        new_sum = total if p.fate == "ok" else None
        ops.append(add(i, numbers[i], p.start, p.end, new_sum=new_sum, outcome=outcome))
    return History(Decimal(0), ops, Decimal(total))


@settings(max_examples=200, deadline=None)
@given(correct_executions(unique_sums=False))
def test_correct_executions_are_judged_consistent(h: History) -> None:
    verdict = judge(h)
    assert verdict.consistent, verdict.violations


@settings(max_examples=200, deadline=None)
@given(correct_executions(unique_sums=True))
def test_correct_executions_with_unique_sums_are_judged_exactly(h: History) -> None:
    verdict = judge(h)
    assert verdict.consistent, verdict.violations
    assert verdict.method is Method.EXACT
