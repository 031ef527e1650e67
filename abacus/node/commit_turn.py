"""Commit lanes take turns on the hot key, with a token in a Redis list.

Every lane of every worker of every node commits to the same key, and of the transactions whose
WATCH-to-EXEC windows overlap only one can win: with lanes that simply retry, conflicts per
commit grew with the number of lanes (1.5 at 6 lanes, 2.5 at 12, `make bench-lanes`), each one
an attempt's work thrown away. A lane backing off by the contention it saw (a window of its
own, measured and dropped) kept conflicts flat but left lanes idle and cost half the adds/s.

Here the lanes queue for the turn in Redis itself. Round trip 1 starts with `BLPOP <sum>:turn T`:
Redis blocks the connection until the list holds the token (waiting clients are served in
arrival order), then runs the WATCH / GET / MGET that follow in the same write. The lane then
plans and sends its transaction, which ends with `DEL` + `RPUSH` of the token: the commit hands
the turn to the next lane in the same step that ends its own. No round trip is added, the adds
arriving meanwhile join each lane's next batch, and a lane that waits costs nothing.

It is optimistic locking still: the WATCH decides, the turn only orders the lanes. A lane whose
BLPOP times out (the token lost with a node killed while holding it, or a queue longer than T)
goes on without the turn, as before; its commit writes a fresh token, so a lost one comes back
within T. Two tokens for a while (a lane that timed out commits while another holds one) only
make conflicts possible again, and the next commit's `DEL` brings it back to one.
"""

from __future__ import annotations

from dataclasses import dataclass

from abacus.node import resp

# Longest a lane waits for its turn before it goes without: long enough for a queue of many
# lanes on a busy machine, short enough that a lost token costs little.
TURN_WAIT_S = 0.1
# Of round trip 1's time limit, what the wait for the turn may take (the WATCH and reads follow).
SHARE_OF_ROUNDTRIP = 0.5


@dataclass(frozen=True)
class Turn:
    key: str

    def take(self, roundtrip_s: float) -> resp.Command:
        """The wait for the turn, first in round trip 1; never 0, which would mean forever."""
        wait_s = max(0.001, min(TURN_WAIT_S, roundtrip_s * SHARE_OF_ROUNDTRIP))
        return ("BLPOP", self.key, f"{wait_s:.3f}")

    def hand_on(self) -> list[resp.Command]:
        """One token in the list, whatever was there: it wakes the next lane in the queue."""
        return [("DEL", self.key), ("RPUSH", self.key, "1")]
