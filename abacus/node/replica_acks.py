"""Acknowledged means replicated: the WAIT (or WAITAOF) an answer waits for, when the nodes are told
to (`ABACUS_MIN_REPLICA_ACKS` > 0; docs/design.md, "Replication and failover").

`WAIT n t` returns once n replicas have acknowledged every write *this connection* has made, or
after t ms, with how many did: they hold the writes in memory. `WAITAOF 0 n t` (Redis 7.2 and
later) returns once n replicas have written them to their append-only file and fsynced it: on
disk. Each commit connection learns as it connects whether its server has WAITAOF (`handshake`)
and waits with the stronger of the two it has. Either falls short by returning fewer than n, and
then the answer cannot be a 200 (or a refusal made final by a fence): a failover could still
undo what it would report.

Because WAIT covers only the connection's own writes, an answer that reports what Redis already
held (a replay, an add found committed after its EXEC's reply was lost, a fence another request
wrote) is confirmed by a write of this connection's that follows the read: the probe key, written
right before the WAIT. Redis replicates in one ordered stream, so a replica that has the probe
has everything the read saw.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ResponseError

from abacus.node import resp
from abacus.node.settings import Settings

# The server's timeout of a WAIT, as a share of the round trip that carries it: Redis answers by
# then, and the rest of the round trip's time is for the EXEC's fsync and the replies' way back.
# Were the round trip's own timer to fire first, the EXEC's reply would be lost with the WAIT's
# (safe: the add is then resolved by its record, but slower and noisier).
SHARE_OF_ROUNDTRIP = 0.6
# The probe key outlives any WAIT by far; it only has to exist while the WAIT runs.
PROBE_TTL_MS = 60_000

# Whether the server a commit connection is connected to has WAITAOF: learnt by `handshake` on
# every (re)connect, since after a failover the connection may be talking to another server.
_HAS_WAITAOF: weakref.WeakKeyDictionary[AbstractConnection, bool] = weakref.WeakKeyDictionary()


async def handshake(connection: AbstractConnection) -> None:
    """redis-py's handshake (AUTH, CLIENT SETINFO), then whether the server knows WAITAOF.

    Passed to the commit pool as redis-py's `redis_connect_func`, so it runs under the same
    timers as any connect of the commit path."""
    await connection.on_connect()
    await connection.send_command("COMMAND", "INFO", "WAITAOF", check_health=False)
    try:
        reply = await connection.read_response()
    except ResponseError:
        # COMMAND itself refused (renamed, or not allowed by an ACL): WAIT is always there.
        reply = [None]
    _HAS_WAITAOF[connection] = bool(reply and reply[0])


def has_waitaof(connection: AbstractConnection) -> bool:
    return _HAS_WAITAOF.get(connection, False)


@dataclass(frozen=True)
class ReplicaAcks:
    """How many replicas must confirm a write, and this node's probe key."""

    replicas: int
    probe_key: str

    def command(self, connection: AbstractConnection, roundtrip_s: float) -> resp.Command:
        """The WAIT (or WAITAOF) to send last in a round trip bounded by `roundtrip_s`."""
        # Never 0: to Redis that means "wait forever".
        timeout_ms = max(1, int(roundtrip_s * SHARE_OF_ROUNDTRIP * 1000))
        if has_waitaof(connection):
            # numlocal 0: the primary's own fsync is appendfsync always's (abacus/conf/redis.conf),
            # done before the EXEC is answered; 1 would be an error on a Redis without the AOF.
            return ("WAITAOF", 0, self.replicas, timeout_ms)
        return ("WAIT", self.replicas, timeout_ms)

    def probe(self) -> resp.Command:
        """A write of this connection's, so that the WAIT after it covers what was read before."""
        return ("SET", self.probe_key, "1", "PX", PROBE_TTL_MS)

    def covered(self, reply: Any) -> bool:
        """Whether the reply of `command` says enough replicas confirmed. An error reply (WAIT on
        a server demoted meanwhile, an ACL) confirms nothing."""
        if isinstance(reply, Exception):
            return False
        # WAIT: how many replicas; WAITAOF: [the local fsync (0 or 1), how many replicas].
        confirmed = reply[1] if isinstance(reply, list) else reply
        return int(confirmed) >= self.replicas


def for_settings(settings: Settings) -> ReplicaAcks | None:
    """None when no answer waits for replicas (ABACUS_MIN_REPLICA_ACKS 0, the default)."""
    if settings.min_replica_acks == 0:
        return None
    return ReplicaAcks(settings.min_replica_acks, settings.keys.ack_probe(settings.node_id))
