"""How long a commit lane waits before its next attempt, from the conflicts it has met.

Every lane of every worker of every node commits to the same key, and only one transaction can
win each window between a WATCH and the EXECs behind it. Lanes that retry at once after a
conflict (the old 1-8 ms backoff, reset by each commit) meet each other again, so conflicts per
commit grew with the number of lanes: 1.2 at 6 lanes, 2.7 at 12 (issue 19's measurements).

Here a lane keeps a contention level, in units of its own attempt time (so it needs no tuning to
a machine or a network): a conflict multiplies it by GROW, a commit by SHRINK, and before each
attempt the lane waits a random time up to level x attempt time. The adds that arrive while it
waits join its next batch, so a lane that backs off loses no throughput, it commits more at once.
As with TCP's congestion window or Ethernet's backoff, the lanes settle where a conflict is as
likely as GROW and SHRINK balance, whatever their number: p x ln(GROW) = (1 - p) x ln(1 / SHRINK),
that is p = 0.24 per attempt for 2 and 0.8, so conflicts per commit stay near p / (1 - p) = 0.32,
and each lane's attempts slow down in proportion to the lanes it competes with.

The policy is a pure object (a random source and the lane's measurements in, a pause out), so the
discrete-event simulation (abacus/harness/simulation) runs this very class.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

GROW = 2.0
SHRINK = 0.8
# After the first conflict a lane waits up to one attempt time: the winner's EXEC is on its way.
FIRST_LEVEL = 1.0
# Below this the expected pause is noise next to an attempt: the lane goes at once.
IDLE_LEVEL = 0.05
# A lane never waits more than this many attempt times: with a thousand lanes on one key it
# would rather meet a conflict than sit out a whole deadline.
MAX_LEVEL = 1024.0
# Weight of the newest attempt in the attempt time's moving average.
ATTEMPT_WEIGHT = 0.2
# The pause is also capped in seconds, for when attempts are slow for a reason other than
# contention (a stalled Redis makes an attempt take its whole timeout).
MAX_PAUSE_S = 0.25

# The equilibrium conflict probability per attempt that GROW and SHRINK give (see above).
EQUILIBRIUM_CONFLICT = math.log(1 / SHRINK) / (math.log(GROW) + math.log(1 / SHRINK))


class ContentionWindow:
    """One lane's contention level and attempt time; `pause()` before each attempt."""

    def __init__(self, uniform: Callable[[float, float], float] = random.uniform) -> None:
        self.level = 0.0
        self.attempt_s = 0.0
        self._uniform = uniform

    def attempted(self, seconds: float) -> None:
        """An attempt reached Redis and took `seconds`, first round trip to last reply."""
        if self.attempt_s == 0.0:
            self.attempt_s = seconds
        else:
            self.attempt_s += ATTEMPT_WEIGHT * (seconds - self.attempt_s)

    def conflict(self) -> None:
        self.level = min(MAX_LEVEL, max(FIRST_LEVEL, self.level * GROW))

    def committed(self) -> None:
        self.level *= SHRINK
        if self.level < IDLE_LEVEL:
            self.level = 0.0

    def pause(self) -> float:
        """Seconds to wait before the next attempt (0 with no contention seen)."""
        if self.level == 0.0:
            return 0.0
        return min(MAX_PAUSE_S, self._uniform(0.0, self.level * self.attempt_s))
