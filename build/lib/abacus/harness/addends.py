"""The numbers the checker adds, chosen so the judge can tell exactly which adds happened.

Each add is `UNIT + tag` with a distinct random tag below `UNIT // count`. Any k of them sum to
`k * UNIT` plus k tags, and k tags stay below UNIT, so `amount // UNIT` says how many adds an
amount contains. The tags are random integers of 40 bits or more, so two different sets of
adds summing to the same amount is vanishingly unlikely; the judge does not rely on that (it
counts the solutions it finds) but it keeps its searches short and their answers unique.
Everything stays an integer, far below the service's bound of 10^30 for any realistic run.
"""

from __future__ import annotations

import random
from decimal import Decimal

UNIT = 10**18


def make_addends(count: int, rng: random.Random) -> list[Decimal]:
    """`count` distinct positive integers of the form UNIT + tag."""
    if count < 0:
        raise ValueError("count must not be negative")
    tag_bound = UNIT // max(count, 1)
    tags = rng.sample(range(1, tag_bound), count)
    return [Decimal(UNIT + tag) for tag in tags]


def room_needed(count: int) -> Decimal:
    """An upper bound of what `count` addends can add to the sum."""
    return Decimal((count + 1) * UNIT)
