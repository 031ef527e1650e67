"""How long to wait before asking again: capped exponential backoff with full jitter, never
sooner than the service's Retry-After.

Full jitter (a uniform draw below the exponential ceiling) spreads clients that failed together,
as they do when Redis stalls under all of them, so their retries do not arrive together again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# Past this many doublings the ceiling is the cap anyway; stops the power from growing forever.
_MAX_DOUBLINGS = 30


@dataclass(frozen=True)
class Backoff:
    first: float = 0.05  # the ceiling of the first retry's wait, in seconds
    cap: float = 2.0  # no ceiling grows past this

    def __post_init__(self) -> None:
        if not 0 < self.first <= self.cap:
            raise ValueError(f"need 0 < first <= cap, not first={self.first}, cap={self.cap}")

    def ceiling(self, retry: int) -> float:
        """The most the jitter of retry number `retry` (0 for the first) may add."""
        return min(self.cap, self.first * 2.0 ** min(retry, _MAX_DOUBLINGS))

    def delay(self, retry: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number `retry`. With a Retry-After the service asked for
        that long, and the jitter comes on top: every client told "1 s" at the same moment would
        otherwise come back at the same moment."""
        jitter = rng.uniform(0.0, self.ceiling(retry))
        return jitter if retry_after is None else retry_after + jitter
