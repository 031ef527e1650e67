"""The settings both clients share, with their defaults and why they are what they are."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from abacus_client.backoff import Backoff

# The most one call (with all its retries) takes by default. Long enough to ride out a node's
# death (the balancer passes its requests on within seconds) and a short Redis restart; a caller
# with a tighter budget passes its own, per client or per call.
DEFAULT_DEADLINE_S = 30.0
# The most one attempt waits for its answer. A node answers an add within its deadline plus
# the resolve grace (3 s + 0.8 s by default) whatever Redis does, and that answer is final, so a
# client that waited less would turn final answers into open ones; the balancer may pass one
# request through three nodes (up to 20 s), and past this a fresh attempt with the same key is
# the better bet.
DEFAULT_TIMEOUT_S = 10.0
# Opening a connection on a working network takes milliseconds; a balancer that does not accept
# within this is down or overloaded, and a failed connect is the one failure known to have sent
# nothing, so it is cheap to try again.
DEFAULT_CONNECT_TIMEOUT_S = 2.0
# The AsyncClient's connection pool: past this many requests in flight, calls wait for a free
# connection (within their attempt's time) instead of opening sockets without bound.
DEFAULT_MAX_CONNECTIONS = 100
# Idle keep-alive connections are dropped by the client well before the balancer drops them
# (nginx's keepalive_timeout is 75 s): an add sent on a connection the server is closing at that
# moment gets no answer, and its outcome is then open for nothing.
KEEPALIVE_EXPIRY_S = 30.0


@dataclass(frozen=True)
class Options:
    deadline: float = DEFAULT_DEADLINE_S
    timeout: float = DEFAULT_TIMEOUT_S
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S
    new_key_if_fenced: bool = False
    backoff: Backoff = field(default_factory=Backoff)
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        for name in ("deadline", "timeout", "connect_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")


def base_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"the service's URL starts with http:// or https://, not {url!r}")
    return url.rstrip("/")
