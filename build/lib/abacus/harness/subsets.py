"""Bounded subset-sum search: which unknown adds make up an amount.

Values are positive integers. The search enumerates every subset (as index tuples) with the
given sum, largest values first, and gives up with `BudgetExhausted` once it has visited
`Budget.nodes` search nodes, so a pathological history costs bounded time.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence


class BudgetExhausted(Exception):
    """The search ran out of budget before it could decide."""


class Budget:
    def __init__(self, nodes: int) -> None:
        self.left = nodes

    def spend(self, nodes: int = 1) -> None:
        self.left -= nodes
        if self.left < 0:
            raise BudgetExhausted


def subsets_with_sum(
    values: Sequence[int], target: int, budget: Budget
) -> Iterator[tuple[int, ...]]:
    """Yield each set of indices into `values` whose values add up to `target`.

    Raises `BudgetExhausted` (possibly after yielding some subsets) when the budget runs out.
    """
    if any(v <= 0 for v in values):
        raise ValueError("subset search needs positive values")
    total = sum(values)
    if target < 0 or target > total:
        return
    everything = tuple(range(len(values)))
    if target == 0:
        yield ()
        return
    if target == total:
        # With positive values only the whole set reaches the total.
        yield everything
        return
    if total - target < target:
        # Search the smaller side: the complement of a subset summing to total - target.
        for other in _search(values, total - target, budget):
            left_out = set(other)
            yield tuple(i for i in everything if i not in left_out)
        return
    yield from _search(values, target, budget)


def _search(values: Sequence[int], target: int, budget: Budget) -> Iterator[tuple[int, ...]]:
    order = sorted(range(len(values)), key=lambda i: values[i], reverse=True)
    vals = [values[i] for i in order]
    descending_keys = [-v for v in vals]  # ascending, for bisect
    count = len(vals)
    suffix = [0] * (count + 1)
    for j in range(count - 1, -1, -1):
        suffix[j] = suffix[j + 1] + vals[j]
    smallest = vals[-1]
    chosen: list[int] = []

    def walk(first: int, remaining: int) -> Iterator[tuple[int, ...]]:
        budget.spend()
        j = bisect_left(descending_keys, -remaining, lo=first)
        while j < count and vals[j] == remaining:
            yield (*chosen, order[j])
            j += 1
        # Any further pick must leave room for at least the smallest value after it.
        j = max(j, bisect_left(descending_keys, -(remaining - smallest), lo=first))
        while j < count and suffix[j] >= remaining:
            chosen.append(order[j])
            yield from walk(j + 1, remaining - vals[j])
            chosen.pop()
            j += 1

    try:
        yield from walk(0, target)
    except RecursionError as exc:
        raise BudgetExhausted from exc
