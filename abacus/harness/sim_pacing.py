"""The commit lane's pacing policies the simulation compares, behind one small interface.

"before" is the backoff the lanes had until the contention window: nothing before an attempt,
a full-jitter sleep of up to 1, 2, 4, then 8 ms after each conflict, the count reset by a commit.
"after" drives `abacus.node.commit_pacing.ContentionWindow` itself, with the simulation's seeded
random source. `Variant` is that window with other constants, for trying them here only.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Protocol

from abacus.node import commit_pacing
from abacus.node.commit_pacing import ContentionWindow

OLD_CONFLICT_BACKOFF = (0.001, 0.008)


class Pacing(Protocol):
    def pause(self) -> float:
        """Seconds to wait before the next attempt."""

    def attempted(self, seconds: float) -> None: ...

    def conflict(self) -> float:
        """The EXEC was discarded; returns seconds to sleep before going on."""

    def committed(self) -> None: ...


class Before:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.failures = 0

    def pause(self) -> float:
        return 0.0

    def attempted(self, seconds: float) -> None:
        pass

    def conflict(self) -> float:
        self.failures += 1
        base, cap = OLD_CONFLICT_BACKOFF
        return self.rng.uniform(0, min(cap, base * 2 ** (self.failures - 1)))

    def committed(self) -> None:
        self.failures = 0


class After:
    def __init__(self, rng: random.Random) -> None:
        self.window = ContentionWindow(uniform=rng.uniform)

    def pause(self) -> float:
        return self.window.pause()

    def attempted(self, seconds: float) -> None:
        self.window.attempted(seconds)

    def conflict(self) -> float:
        self.window.conflict()
        return 0.0

    def committed(self) -> None:
        self.window.committed()


@dataclass(frozen=True)
class WindowConstants:
    grow: float = commit_pacing.GROW
    shrink: float = commit_pacing.SHRINK
    first_level: float = commit_pacing.FIRST_LEVEL
    idle_level: float = commit_pacing.IDLE_LEVEL
    max_level: float = commit_pacing.MAX_LEVEL
    max_pause_s: float = commit_pacing.MAX_PAUSE_S

    @property
    def equilibrium_conflict(self) -> float:
        return math.log(1 / self.shrink) / (math.log(self.grow) + math.log(1 / self.shrink))


class Variant(After):
    """The contention window with other constants: its level rules restated with them."""

    def __init__(self, rng: random.Random, constants: WindowConstants) -> None:
        super().__init__(rng)
        self.c = constants
        self.rng = rng

    def pause(self) -> float:
        window = self.window
        if window.level == 0.0:
            return 0.0
        return min(self.c.max_pause_s, self.rng.uniform(0.0, window.level * window.attempt_s))

    def conflict(self) -> float:
        window = self.window
        window.level = min(self.c.max_level, max(self.c.first_level, window.level * self.c.grow))
        return 0.0

    def committed(self) -> None:
        window = self.window
        window.level *= self.c.shrink
        if window.level < self.c.idle_level:
            window.level = 0.0
