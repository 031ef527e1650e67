"""The key store's global budget: how full Redis's memory is, as this worker last saw it.

Redis runs with `maxmemory` and `noeviction`: once it is full, every write is refused, adds and
resets alike. Idempotency-Key records are what can fill it (kept 24 h; a keyless add's retry
record lives 2 minutes, so that memory is bounded by throughput). The per-client quota
(key_quota.py) bounds one client; many clients together are bounded here: once `used_memory`
reaches ABACUS_KEY_STORE_LIMIT of `maxmemory`, new Idempotency-Keys get 503 `key_store_full` (no
record, no fence) and the remaining room stays for keyless adds, replays and resets.

Each worker polls `INFO memory` about once a second through its ordinary pool (never the commit
lane's connection), and /health feeds what it reads too; the commit lane decides from the last
value seen, so the budget costs adds no round trip. New keys between two polls can overshoot the
limit by a second's worth, which the headroom absorbs. With `maxmemory 0` (no limit) no share can
be computed, and nothing is paused.

Keys resume only below RESUME_FRACTION of the limit: records expire one by one, and a budget that
flipped at every poll around the line would flood the log and make clients' luck depend on which
second they asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from redis.asyncio import Redis
from redis.exceptions import RedisError

from abacus.node import metrics

# Read at every poll, so that a test can slow the poller down.
POLL_INTERVAL_S = 1.0
RESUME_FRACTION = 0.975

log = logging.getLogger("abacus.memory")


class MemoryWatch:
    """Redis's memory use as last seen, and whether new Idempotency-Keys are paused for it."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        # used_memory / maxmemory; None before the first reading, or when maxmemory is 0.
        self.ratio: float | None = None
        self.paused = False
        metrics.KEYED_ADDS_PAUSED.set(0)

    def observe(self, info: Mapping[str, object]) -> None:
        """Take a reading from an INFO reply; one without the figures changes nothing."""
        used, maxmemory = info.get("used_memory"), info.get("maxmemory")
        if not isinstance(used, int) or not isinstance(maxmemory, int):
            return
        metrics.REDIS_MEMORY_USED_BYTES.set(used)
        metrics.REDIS_MAXMEMORY_BYTES.set(maxmemory)
        if maxmemory <= 0:
            self.ratio = None
            metrics.REDIS_MEMORY_USED_RATIO.set(0)
            if self.paused:
                self._set_paused(False, "Redis has no maxmemory any more")
            return
        self.ratio = ratio = used / maxmemory
        metrics.REDIS_MEMORY_USED_RATIO.set(ratio)
        if not self.paused and ratio >= self.limit:
            self._set_paused(True, f"Redis memory at {ratio:.0%} of maxmemory")
        elif self.paused and ratio < self.limit * RESUME_FRACTION:
            self._set_paused(False, f"Redis memory at {ratio:.0%} of maxmemory")

    def _set_paused(self, paused: bool, why: str) -> None:
        self.paused = paused
        metrics.KEYED_ADDS_PAUSED.set(1 if paused else 0)
        if paused:
            log.warning(
                "%s (limit %.0f%%): new Idempotency-Keys paused (503 key_store_full) until it is "
                "below %.0f%%; keyless adds, replays, reads and resets go on",
                why,
                self.limit * 100,
                self.limit * RESUME_FRACTION * 100,
                extra={"memory_used_ratio": self.ratio},
            )
        else:
            log.info(
                "%s: new Idempotency-Keys accepted again",
                why,
                extra={"memory_used_ratio": self.ratio},
            )


async def poll(
    redis: Redis, watch: MemoryWatch, stop: asyncio.Event, interval_s: float | None = None
) -> None:
    """Feed `watch` with `INFO memory` at once, then every `interval_s` (POLL_INTERVAL_S), until
    `stop` is set. A failed poll leaves the last reading as it was: while Redis cannot be
    reached, keyed adds fail anyway, and the next poll that gets through sets it right.

    Stopped by an event, not by cancelling: redis-py answers a cancelled command with its reply
    when it comes, and the cancellation is gone. A poll in flight ends within the pool's
    timeouts."""
    while not stop.is_set():
        try:
            watch.observe(await redis.info("memory"))
        except (RedisError, OSError, TimeoutError) as exc:
            metrics.REDIS_ERRORS.labels("memory").inc()
            log.debug("memory poll failed: %s: %s", type(exc).__name__, exc)
        except Exception:
            # A bug must not end the polls for good (the budget would freeze as it was).
            metrics.REDIS_ERRORS.labels("memory").inc()
            log.exception("memory poll failed unexpectedly")
        interval = POLL_INTERVAL_S if interval_s is None else interval_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
