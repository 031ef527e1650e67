"""The conflict backoff the commit lanes keep, with the turn ("turns") and without ("before").

Nothing before an attempt; after a conflict (a discarded EXEC), a full-jitter sleep of up to 1, 2,
4, then 8 ms, the count of failures reset by a commit. With the turn, conflicts are rare (only a
lane that went without the turn can make one), so the backoff is for those.
"""

from __future__ import annotations

import random

OLD_CONFLICT_BACKOFF = (0.001, 0.008)


class ConflictBackoff:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.failures = 0

    def conflict(self) -> float:
        """The EXEC was discarded; returns seconds to sleep before going on."""
        self.failures += 1
        base, cap = OLD_CONFLICT_BACKOFF
        # The exponent bounded (the same pauses): 2 ** 1024 is no float, and without deadlines a
        # lane can meet that many conflicts in a row ("before", 100 lanes, 10 s).
        return self.rng.uniform(0, min(cap, base * 2 ** min(self.failures - 1, 32)))

    def committed(self) -> None:
        self.failures = 0
