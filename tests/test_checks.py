"""Each of the judge's checks alone against hand-made histories, and their composition.

Times are plain numbers; sums start at 0. Every check is run on its own analysis of the history,
so nothing another check did can help or hinder it.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from abacus.harness.analysis import Analysis
from abacus.harness.checks import final_sum, order, reads, refusals
from abacus.harness.history import History, Operation, Outcome, add, read
from abacus.harness.judge import CHECKS, judge
from abacus.harness.violations import (
    APPLIED_TWICE,
    BAD_READ,
    FAILED_APPLIED,
    LOST_UPDATE,
    NO_ORDER,
    STALE_READ,
    SURPLUS,
    CheckResult,
)

UNKNOWN = Outcome.UNKNOWN
FAILED = Outcome.FAILED


def history(*ops: Operation, final: int | None) -> History:
    return History(Decimal(0), list(ops), None if final is None else Decimal(final))


def alone(check: object, h: History) -> CheckResult:
    """The check run by itself, on an analysis no other check has seen."""
    assert callable(check)
    result = check(Analysis(h))
    assert isinstance(result, CheckResult)
    return result


def kinds(result: CheckResult) -> set[str]:
    return {v.kind for v in result.violations}


# A correct history every check passes: acknowledged adds in order, an unknown add that was
# applied, a failed add that was not, reads of real states.
GOOD = history(
    add(1, 1, 0, 1, new_sum=1),
    add(2, 10, 0.5, 9, outcome=UNKNOWN),  # applied between #1 and #3
    add(3, 100, 2, 3, new_sum=111),
    add(4, 1000, 2, 9, outcome=FAILED),  # never applied, as it was told
    read(5, 3.5, 4, 111),
    add(6, 5000, 4, 5, new_sum=5111),
    read(7, 6, 7, 5111),
    final=5111,
)


@pytest.mark.parametrize("check", [final_sum.check, order.check, reads.check, refusals.check])
def test_each_check_passes_a_correct_history_alone(check: object) -> None:
    result = alone(check, GOOD)
    assert result.consistent, result.violations
    assert result.summary


# -- the final sum --------------------------------------------------------------------------


def test_final_sum_alone_catches_a_lost_update() -> None:
    # Both read 0 and wrote their own number: the later write clobbered the earlier.
    h = history(add(1, 1, 0, 2, new_sum=1), add(2, 2, 0, 2, new_sum=2), final=2)
    result = alone(final_sum.check, h)
    assert kinds(result) == {LOST_UPDATE}
    assert "exactly add #1's number" in result.violations[0].detail


def test_final_sum_alone_catches_a_surplus() -> None:
    result = alone(final_sum.check, history(add(1, 1, 0, 1, new_sum=1), final=1000))
    assert kinds(result) == {SURPLUS}


def test_final_sum_alone_catches_a_total_beyond_the_adds_whatever_the_order() -> None:
    """The sum rose by a failed add's number before #3: the order check and the refusals check
    see where; the final sum alone still sees that the total is too high."""
    h = history(
        add(1, 1, 0, 1, new_sum=1),
        add(2, 5, 2, 3, outcome=FAILED),
        add(3, 10, 4, 5, new_sum=16),
        final=16,
    )
    result = alone(final_sum.check, h)
    assert kinds(result) == {SURPLUS}
    assert "exceeds start + the acknowledged adds by 5" in result.violations[0].detail


def test_final_sum_alone_names_an_add_counted_again_at_the_end() -> None:
    h = history(add(1, 5, 0, 1, new_sum=5), add(2, 3, 2, 3, new_sum=8), final=13)
    result = alone(final_sum.check, h)
    assert kinds(result) == {APPLIED_TWICE}
    assert "add #1" in result.violations[0].detail


def test_final_sum_alone_calls_a_final_read_below_the_order_stale() -> None:
    h = history(add(1, 1, 0, 1, new_sum=1), add(2, 1, 2, 3, new_sum=2), final=1)
    assert kinds(alone(final_sum.check, h)) == {STALE_READ}


def test_final_sum_alone_without_a_final_sum_does_not_run() -> None:
    result = alone(final_sum.check, history(add(1, 1, 0, 1, new_sum=1), final=None))
    assert result.consistent
    assert "not checked" in result.summary
    assert result.notes


# -- the order ------------------------------------------------------------------------------


def test_order_alone_catches_real_time_inversion() -> None:
    # Each new_sum alone could fit, but #1 finished before #2 began and has the larger one.
    h = history(add(1, 2, 0, 1, new_sum=3), add(2, 1, 2, 3, new_sum=1), final=3)
    result = alone(order.check, h)
    assert NO_ORDER in kinds(result)
    assert any("before add #2 began" in v.detail for v in result.violations)


def test_order_alone_catches_two_adds_with_one_new_sum() -> None:
    h = history(add(1, 2, 0, 3, new_sum=3), add(2, 3, 0, 3, new_sum=3), final=5)
    result = alone(order.check, h)
    assert any("both returned new_sum 3" in v.detail for v in result.violations)


def test_order_alone_catches_an_unknown_add_needed_in_two_gaps() -> None:
    h = history(
        add(1, 1, 0, 1, new_sum=11),
        add(2, 10, 0, 9, outcome=UNKNOWN),
        add(3, 1, 2, 3, new_sum=22),
        final=22,
    )
    result = alone(order.check, h)
    assert kinds(result) == {APPLIED_TWICE}
    assert "not all at once" in result.violations[0].detail


def test_order_alone_ignores_the_final_sum() -> None:
    """A final sum far off is the final-sum check's; the order of new_sums is still fine."""
    h = history(add(1, 1, 0, 1, new_sum=1), add(2, 2, 2, 3, new_sum=3), final=1000)
    assert alone(order.check, h).consistent


# -- the reads ------------------------------------------------------------------------------


def test_reads_alone_catch_a_stale_read() -> None:
    h = history(add(1, 1, 0, 1, new_sum=1), read(2, 2, 3, 0), final=1)
    result = alone(reads.check, h)
    assert kinds(result) == {STALE_READ}
    assert "read #2" in result.violations[0].detail


def test_reads_alone_catch_a_value_that_was_never_the_sum() -> None:
    h = history(add(1, 10, 0, 1, new_sum=10), read(2, 0, 2, 4), final=10)
    assert kinds(alone(reads.check, h)) == {BAD_READ}


def test_reads_alone_catch_unknown_adds_seen_in_no_single_order() -> None:
    h = history(
        add(1, 10, 0, 9, outcome=UNKNOWN),
        add(2, 100, 0, 9, outcome=UNKNOWN),
        read(3, 1, 2, 10),  # saw 10 but not 100 ...
        read(4, 1, 2, 100),  # ... and 100 but not 10: no single order has both
        final=110,
    )
    assert kinds(alone(reads.check, h)) == {BAD_READ}


# -- the refusals ---------------------------------------------------------------------------


def test_refusals_alone_catch_a_failed_add_in_the_final_sum() -> None:
    h = history(add(1, 1, 0, 1, new_sum=1), add(2, 7, 2, 3, outcome=FAILED), final=8)
    result = alone(refusals.check, h)
    assert kinds(result) == {FAILED_APPLIED}
    assert "add #2" in result.violations[0].detail


def test_refusals_alone_catch_a_failed_add_between_acknowledged_ones() -> None:
    """Answered 503 unavailable, yet the next acknowledged new_sum includes it (with an
    unknown add beside it): the lie a stalled Redis plus a balancer retry used to tell."""
    h = history(
        add(1, 1, 0, 1, new_sum=1),
        add(2, 20, 1, 2, outcome=FAILED),
        add(3, 300, 1, 9, outcome=UNKNOWN),
        add(4, 4000, 3, 4, new_sum=4321),
        final=4321,
    )
    result = alone(refusals.check, h)
    assert kinds(result) == {FAILED_APPLIED}
    assert "#2 (20" in result.violations[0].detail


def test_refusals_alone_leave_a_gap_the_unknown_adds_explain() -> None:
    h = history(
        add(1, 1, 0, 1, new_sum=1),
        add(2, 20, 1, 2, outcome=FAILED),
        add(3, 20, 1, 9, outcome=UNKNOWN),  # the same number, and may have been applied
        add(4, 4000, 3, 4, new_sum=4021),
        final=4021,
    )
    assert alone(refusals.check, h).consistent


# -- composed -------------------------------------------------------------------------------

# One history that breaks every check: a lost amount, a stale read, an inverted pair, a failed
# add applied.
BROKEN = history(
    add(1, 2, 0, 1, new_sum=3),
    add(2, 1, 2, 3, new_sum=1),  # real-time inversion with #1
    add(3, 50, 2.5, 3, outcome=FAILED),
    read(4, 4, 5, 0),  # stale: #1 and #2 were acknowledged before
    add(5, 700, 6, 7, new_sum=753),  # the failed 50 is in it
    final=753,
)


def test_checks_do_not_depend_on_each_other_or_their_order() -> None:
    """Alone, first, last, in any order over one shared analysis: the same findings."""
    alone_results = {name: alone(check, BROKEN) for name, check in CHECKS.items()}
    for permutation in itertools.permutations(CHECKS):
        shared = Analysis(BROKEN)
        together = {name: CHECKS[name](shared) for name in permutation}
        assert together == alone_results, permutation


def test_the_verdict_merges_every_checks_own_violations() -> None:
    verdict = judge(BROKEN)
    assert [c.name for c in verdict.checks] == list(CHECKS)
    merged = [v for c in verdict.checks for v in c.violations]
    assert verdict.violations == merged
    by_check = {c.name: kinds(c) for c in verdict.checks}
    assert FAILED_APPLIED in by_check["refusals"]
    assert STALE_READ in by_check["reads"]
    assert NO_ORDER in by_check["order"]
    # The headline is the highest-ranked kind found, whichever check found it.
    assert verdict.fault == FAILED_APPLIED


def test_a_verdict_can_be_composed_of_some_checks_only() -> None:
    verdict = judge(BROKEN, checks={"reads": reads.check})
    assert [c.name for c in verdict.checks] == ["reads"]
    assert {v.kind for v in verdict.violations} == {STALE_READ}
