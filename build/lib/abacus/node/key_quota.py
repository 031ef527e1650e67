"""Each client's quota of new Idempotency-Key records.

A keyed add that makes a new record holds Redis memory for ABACUS_IDEMPOTENCY_TTL_S (24 h), and
Redis runs with `noeviction`: a client sending unique keys at the balancer's rate (~500 B each)
would fill 512 MB in minutes and then every add and reset would be refused until the records
expire. So each client may make ABACUS_KEYS_PER_CLIENT new records per window; past that its new
keys get 429 `key_quota_exhausted` (no record, no fence), while its replays, its keyless adds and
everyone else go on.

*The client* is the address the connection came from: the peer, or, for a request the balancer
sent, the address nginx saw (`X-Real-IP`, which nginx sets from `$remote_addr` over whatever the
client sent). Everyone behind one NAT or proxy is one client; an IPv6 client is its /64, the
block one host or home usually holds, or rotating addresses would buy quota for free.

*The window* starts with the client's first new record while it has no counter: that transaction
makes the counter with the records' own lifetime (`SET counter 0 EX ttl NX`, then `INCRBY`), and
later ones only count into it until Redis expires it. A record lives one window's length, so the
records alive at any moment belong to at most two windows: at most 2 x quota per client. Only
Redis's clock is involved, and clients' windows do not all end at the same moment.

*Exact, not approximate*: the counters are read in the WATCH round trip and counted in the EXEC
of the transaction that writes the records, and every transaction that writes anything also
writes the sum it watched; of two transactions that read the same counter, at most one commits.
The one way past the quota: an add whose EXEC was sent and its reply lost must be applied or
fenced to be answered truthfully, whatever its client's count (it is counted all the same).
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

from abacus.node.errors import ApiError, key_quota_exhausted
from abacus.node.settings import Settings

# One IPv6 host or home usually gets a /64; its addresses are one client.
IPV6_CLIENT_PREFIX = 64
# No address at all (a Unix socket, an in-process test client): all such share one quota.
UNKNOWN_CLIENT = "unknown"


def client_of(peer: str | None, forwarded: str | None) -> str:
    """The client, from the peer address and, only for a request the balancer sent, the
    address nginx saw (its X-Real-IP); an unusable forwarded address falls back to the peer."""
    for candidate in (forwarded, peer):
        client = _address(candidate)
        if client is not None:
            return client
    return UNKNOWN_CLIENT


def _address(text: str | None) -> str | None:
    try:
        address = ipaddress.ip_address((text or "").strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        host_bits = 128 - IPV6_CLIENT_PREFIX
        block = int(address) >> host_bits << host_bits
        return str(ipaddress.IPv6Network((block, IPV6_CLIENT_PREFIX)))
    return str(address)


@dataclass(frozen=True)
class Quota:
    """One client's quota: where its count lives, how many new records it may make per window,
    and how long a window (a record's lifetime) is."""

    counter_key: str
    limit: int
    window_s: int

    def exhausted(self, window_left_ms: int) -> ApiError:
        """The 429, with `window_left_ms` as Redis's PTTL of the counter gave it."""
        if window_left_ms == -1:
            # A counter with no end: not one this code writes, but never "retry in 0 s".
            return key_quota_exhausted(self.window_s, self.limit)
        # -2 (the window ended since it was read) and the last few ms alike: 1 s, never 0.
        return key_quota_exhausted(max(1, math.ceil(window_left_ms / 1000)), self.limit)


def quota_for(settings: Settings, client: str) -> Quota | None:
    """The quota of `client`'s new keyed records; None when ABACUS_KEYS_PER_CLIENT is 0."""
    if settings.keys_per_client == 0:
        return None
    return Quota(
        counter_key=settings.keys.quota(client),
        limit=settings.keys_per_client,
        window_s=settings.idempotency_ttl_s,
    )
