"""Redis through Sentinel: finding the primary with bounded waits, and READONLY kept a refusal.

redis-py's Sentinel support (`redis.asyncio.sentinel`) does the work: its pool asks the Sentinels
for the primary's address each time a connection (re)connects, and drops its idle connections when
the address changes, so the nodes follow a failover without a restart. What is added here, each
for a reason of the commit path's rules (docs/design.md, "Replication and failover"):

- Every Sentinel is asked with short connect and reply timeouts and no retries (redis-py's clients
  retry three times by default), and discovery as a whole is bounded too: the Sentinels are asked
  one after another, so their timeouts add up.
- Every reconnect asks the Sentinels. redis-py reconnects a dropped connection inside
  `send_packed_command` through `connect_check_health`, which skips the Sentinel connection's
  `connect` and so its discovery: a connection that lost its primary connected to the old address
  again and again (redis-py issue #3874, open in 8.1.0). Measured: a commit lane under steady
  load (which keeps its connection while it has work) kept dialling the dead primary for 45 s
  after the failover, until its queue ran dry.
- A READONLY reply stays what it is, a refusal. redis-py's Sentinel connection turns it into a
  ConnectionError ("The previous master is now a slave"), which the commit path would have to
  read as a reply lost after EXEC (the add *may* have counted). Redis refused the transaction and
  applied none of it (a write queued in MULTI that is refused aborts the EXEC), and that is what
  lets an add be answered truthfully after a failover.

redis_pool.py puts these together with the blocking wait for a free connection, which redis-py's
SentinelConnectionPool does not have.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio.connection import AbstractConnection, Connection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection
from redis.backoff import NoBackoff
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from abacus.node.settings import Settings

# One Sentinel's connect and reply: it answers from memory, in a millisecond on a healthy network.
# A stopped Sentinel costs this much before the next is asked (redis-py then asks the one that
# answered first).
SENTINEL_TIMEOUT_S = 0.2
# Discovery as a whole, the Sentinels asked one after another: less than the commit lane's budget
# for a connection (group_commit.CONNECT_BUDGET_S, 1 s), which must still hold the TCP connect and
# the handshake with the primary.
DISCOVERY_TIMEOUT_S = 0.5


def sentinels(settings: Settings) -> Sentinel:
    """The Sentinels of `settings`, each asked with short timeouts and no retries of redis-py's."""
    query_options = {
        "socket_connect_timeout": SENTINEL_TIMEOUT_S,
        "socket_timeout": SENTINEL_TIMEOUT_S,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 0,
    }
    return Sentinel(  # type: ignore[no-untyped-call]
        list(settings.redis_sentinels), sentinel_kwargs=query_options
    )


class PrimaryConnection(SentinelManagedConnection):
    """A connection to whatever the Sentinels call the primary, however it (re)connects, on which
    READONLY is a refusal."""

    async def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        """How redis-py reconnects before a send: through the Sentinels, as `connect` does."""
        if self.is_connected:
            return
        await self.connect_to(await self.connection_pool.get_master_address())

    async def connect_to(self, address: tuple[str, int]) -> None:
        self.host, self.port = address
        # The plain connection's connect, to the address just discovered (not this class's own,
        # which would ask the Sentinels again).
        await AbstractConnection.connect_check_health(
            self, check_health=self.connection_pool.check_connection, retry_socket_connect=False
        )

    async def read_response(
        self,
        disable_decoding: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 - redis-py's signature
        *,
        # As redis-py's SentinelManagedConnection annotates it (a flag, in truth).
        disconnect_on_error: float | None = True,
        push_request: bool | None = False,
    ) -> Any:
        try:
            # SentinelManagedConnection's own read_response is skipped on purpose: it is what turns
            # READONLY into a ConnectionError (see the module's docstring).
            return await Connection.read_response(
                self,
                disable_decoding=disable_decoding,
                timeout=timeout,
                disconnect_on_error=bool(disconnect_on_error),
                push_request=push_request,
            )
        except ReadOnlyError:
            # The server was demoted: the next use connects again, and so asks the Sentinels.
            await self.disconnect()
            raise


class BoundedDiscovery(SentinelConnectionPool):
    """redis-py's Sentinel pool, with master discovery bounded as a whole."""

    async def get_master_address(self) -> Any:
        try:
            async with asyncio.timeout(DISCOVERY_TIMEOUT_S):
                return await super().get_master_address()  # type: ignore[no-untyped-call]
        except TimeoutError:
            # Sentinels that do not answer are a stall, not a refusal: the commit path keeps
            # trying until its deadline, as it does when Redis itself stalls.
            raise RedisTimeoutError(
                f"no Sentinel named the primary within {DISCOVERY_TIMEOUT_S} s"
            ) from None

    async def close_sentinels(self) -> None:
        """Close the connections to the Sentinels (the pool's own are closed by disconnect)."""
        manager: Sentinel = self.sentinel_manager
        await manager.aclose()
