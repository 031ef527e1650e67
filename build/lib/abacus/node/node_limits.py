"""What a node's HTTP server allows one connection, and how long its stop may take.

One source for the Gunicorn worker (worker.py), `python -m abacus.node` and gunicorn_conf.py. The
balancer has stricter limits of its own (the nginx template); these are what a
node reached directly holds to, chosen so that nothing nginx passes on is ever cut by them.
"""

from __future__ import annotations

import math

from abacus.node.settings import RESOLVE_GRACE_S

# Request line and headers together. nginx passes at most 4 x 8 KiB of them
# (large_client_header_buffers 4 8k) plus the few it adds (X-Request-ID, X-Abacus-Retry-Key,
# X-Abacus-Try, X-Real-IP, Host: well under 1 KiB), so 64 KiB never cuts what nginx passes, and
# it bounds what one connection can make a worker hold while it reads a head.
HEAD_LIMIT_BYTES = 64 * 1024

# nginx's client_header_timeout: how long a request head may take, from a new connection's
# connect, or from the first byte of a keep-alive connection's next request.
HEAD_TIMEOUT_S = 10.0

# How long a body may take to arrive once its head has. nginx's client_body_timeout (also 10 s)
# bounds each gap between two reads instead; bodies here are at most 1 KiB, and a bound on gaps
# would let one trickle in a byte at a time for hours, so this one bounds the whole body.
BODY_TIMEOUT_S = 10.0

# Connections, or requests in progress, per worker at which a new request is answered 503
# `unavailable` instead of being taken on (uvicorn's limit_concurrency, checked once a head is
# complete). Through the balancer a worker sees far fewer: the benchmark's 1,024 clients over
# 3 nodes x 2 workers are about 170 connections a worker, plus at most 128 idle ones per nginx
# worker. A worker commits some hundreds of adds a second, so a thousand adds in progress already
# wait seconds, near their deadline: past that, a quick 503 that changed nothing serves a client
# better than a queue it would time out in. (Connections still sending their head are bounded by
# HEAD_LIMIT_BYTES and HEAD_TIMEOUT_S instead: 1,000 holding 60 KiB each cost a worker 68 MB.)
CONCURRENCY_LIMIT = 1000

# Longer than nginx's upstream keepalive_timeout (60 s): the balancer closes an idle connection
# before the node does, so it never sends a request on a connection the node is closing.
KEEPALIVE_S = 75

# On SIGTERM Gunicorn lets its workers finish for this long, then kills them.
GRACEFUL_TIMEOUT_S = 20

# After the requests in progress, a stopping worker's app answers every add it has taken (the
# committer's close), which takes at most an add's deadline plus the resolve grace; this second
# covers the rest (closing the Redis pools, exiting).
SHUTDOWN_MARGIN_S = 1.0


def drain_timeout_s(graceful_timeout_s: float, add_deadline_s: float) -> int:
    """How long a stopping worker waits for its requests in progress before it cancels them
    (uvicorn's timeout_graceful_shutdown): what is left of Gunicorn's graceful timeout once the
    app's own shutdown is provided for, so that the worker exits before Gunicorn kills it."""
    left = graceful_timeout_s - add_deadline_s - RESOLVE_GRACE_S - SHUTDOWN_MARGIN_S
    # uvicorn takes whole seconds; at least one, even for a deadline that leaves none.
    return max(1, math.floor(left))
