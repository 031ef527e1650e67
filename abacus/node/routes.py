"""The API's endpoints: add a number, read the sum, reset it, health, liveness, metrics."""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import re
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from abacus.node import amounts, key_quota, metrics, openapi
from abacus.node.add_request import read_add_request
from abacus.node.errors import ApiError, ErrorCode, unavailable
from abacus.node.group_commit import GroupCommitter
from abacus.node.json_body import encode
from abacus.node.memory_watch import MemoryWatch
from abacus.node.pending_add import Committed, Others
from abacus.node.settings import Settings
from abacus.node.timestamps import timestamp

log = logging.getLogger("abacus.api")

# The header nginx sets on every proxied request (overwriting any client's) with its $request_id,
# which stays the same when nginx passes a request on to another node.
RETRY_KEY_HEADER = "x-abacus-retry-key"
# Set by nginx with the retry key: "first" on a request's first try, "retry" when nginx passes it
# on after a node failed.
BALANCER_TRY_HEADER = "x-abacus-try"
# Set by nginx on every proxied request (overwriting any client's) to the secret it shares with
# the nodes: only with it are the two headers above (and X-Real-IP) the balancer's.
BALANCER_SECRET_HEADER = "x-abacus-balancer-secret"  # noqa: S105 - a name, not a secret
# A wrong or missing secret is logged at most this often per worker (the metric counts each).
UNTRUSTED_LOG_INTERVAL_S = 60.0
# Set by nginx to the address it saw ($remote_addr), overwriting any client's: who the client is,
# for a request the balancer sent.
REAL_IP_HEADER = "x-real-ip"
_RETRY_KEY = re.compile(r"[0-9A-Za-z]{1,64}")
HEALTH_TIMEOUT_S = 1.0
HEALTH_KEY_TTL_MS = 60_000


def json_response(
    content: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(encode(content), status, headers=headers, media_type="application/json")


def _services(request: Request) -> tuple[Settings, Redis, GroupCommitter]:
    state = request.app.state
    return state.settings, state.redis, state.committer


async def add_number(request: Request) -> Response:
    settings, _, committer = _services(request)
    add_request = await read_add_request(request)
    retry_key = request.headers.get(RETRY_KEY_HEADER)
    client_key = add_request.idempotency_key is not None
    record_key: str | None
    quota = None
    if add_request.idempotency_key is not None:
        # The client may send the key again, to any node, while this request is in flight.
        record_key = settings.keys.idempotency(add_request.idempotency_key)
        ttl = settings.idempotency_ttl_s
        others = Others.SAME_KEY
        # Its record holds memory for a day: each client may make only so many.
        quota = key_quota.quota_for(settings, _client(request, settings))
    elif retry_key and _RETRY_KEY.fullmatch(retry_key) and _from_balancer(request, settings):
        # nginx sends the same key on every try of a request; it marks the first one, which no
        # other node can be carrying yet.
        record_key = settings.keys.retry(retry_key)
        ttl = settings.retry_key_ttl_s
        first = request.headers.get(BALANCER_TRY_HEADER) == "first"
        others = Others.NONE if first else Others.SAME_KEY
    else:
        # A record of its own, only to learn the outcome of a lost EXEC. A retry key we cannot
        # trust still says that the balancer may pass this add to other nodes.
        if retry_key:
            _untrusted_retry_key(request)
        record_key = None
        ttl = settings.own_record_ttl_s
        others = Others.UNSEEN if retry_key else Others.NONE
    add = committer.submit(
        add_request.number, record_key, ttl, others=others, client_key=client_key, quota=quota
    )
    # A client that goes away cancels only this future: the lane answers the add all the same.
    outcome = await add.future
    request.state.log_fields = {
        "batch_size": add.batch_size,
        "attempts": add.attempts,
        "conflicts": add.conflicts,
    }
    if isinstance(outcome, ApiError):
        raise outcome
    assert isinstance(outcome, Committed)
    headers = {}
    if outcome.replayed:
        metrics.ADDS_REPLAYED.inc()
        headers["Idempotent-Replayed"] = "true"
    return Response(outcome.body, 200, headers=headers, media_type="application/json")


def _from_balancer(request: Request, settings: Settings) -> bool:
    return settings.is_balancer(request.headers.get(BALANCER_SECRET_HEADER))


_untrusted_logged_at = -math.inf


def _untrusted_retry_key(request: Request) -> None:
    global _untrusted_logged_at  # noqa: PLW0603 - one rate limit per worker process
    metrics.UNTRUSTED_RETRY_KEYS.inc()
    now = time.monotonic()
    if now - _untrusted_logged_at >= UNTRUSTED_LOG_INTERVAL_S:
        _untrusted_logged_at = now
        peer = request.client.host if request.client else "unknown"
        log.warning(
            "a retry key came without the balancer's secret (from %s); it was ignored. Through "
            "the balancer this means nginx and the nodes do not share ABACUS_BALANCER_SECRET_FILE",
            peer,
            extra={"peer": peer},
        )


def _client(request: Request, settings: Settings) -> str:
    """Who sent the request, for the key quota: the address the balancer saw when it sent the
    request, else the peer. X-Real-IP from anyone else is only what the sender claims."""
    peer = request.client.host if request.client else None
    forwarded = request.headers.get(REAL_IP_HEADER) if _from_balancer(request, settings) else None
    return key_quota.client_of(peer, forwarded)


async def read_sum(request: Request) -> Response:
    settings, _, _ = _services(request)
    try:
        raw = await request.app.state.reads.read()
    except RedisError:
        metrics.REDIS_ERRORS.labels("read").inc()
        raise unavailable("Redis is unavailable; the sum cannot be read now") from None
    return json_response(
        {"sum": amounts.parse_stored(raw), "timestamp": timestamp(), "node_id": settings.node_id}
    )


async def sum_endpoint(request: Request) -> Response:
    if request.method == "DELETE":
        return await reset_sum(request)
    return await read_sum(request)


async def reset_sum(request: Request) -> Response:
    settings, redis, _ = _services(request)
    _authorize(settings.admin_token, request.headers.get("authorization"))
    try:
        # A write like any add's, so every transaction that read the old sum fails its WATCH.
        replaced = await redis.set(settings.sum_key, "0", get=True)
    except RedisError:
        metrics.REDIS_ERRORS.labels("reset").inc()
        raise unavailable("Redis is unavailable; the sum was not reset") from None
    assert replaced is None or isinstance(replaced, bytes)  # SET ... GET: the old value or nil
    replaced_sum = amounts.render(amounts.parse_stored(replaced))
    log.warning("sum reset to 0, replacing %s", replaced_sum, extra={"replaced_sum": replaced_sum})
    return json_response(
        {
            "message": "Sum successfully reset to 0",
            "timestamp": timestamp(),
            "node_id": settings.node_id,
        }
    )


def _authorize(token: str | None, header: str | None) -> None:
    if token is None:
        return
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise ApiError(
            401,
            ErrorCode.UNAUTHORIZED,
            "reset needs an Authorization: Bearer <token> header",
            {"WWW-Authenticate": 'Bearer realm="abacus"'},
        )
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise ApiError(403, ErrorCode.FORBIDDEN, "the reset token is wrong")


async def health(request: Request) -> Response:
    settings, redis, _ = _services(request)
    memory: MemoryWatch = request.app.state.memory
    body: dict[str, object] = {
        "status": "healthy",
        "node_id": settings.node_id,
        "redis_connected": True,
        "current_sum": None,
        "stats": None,
        "memory_used_ratio": None,
        "keyed_adds": _keyed_adds(memory),
    }
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_S):
            pipe = redis.pipeline(transaction=False)
            # A real write: a Redis that answers but takes no writes (paused, out of memory,
            # a replica) cannot commit adds, so the node is not healthy.
            pipe.set(settings.keys.health(settings.node_id), timestamp(), px=HEALTH_KEY_TTL_MS)
            pipe.get(settings.sum_key)
            pipe.info()
            _, raw_sum, info = await pipe.execute()
    except (RedisError, TimeoutError, OSError) as exc:
        metrics.REDIS_ERRORS.labels("health").inc()
        log.warning("health check failed: %s: %s", type(exc).__name__, exc)
        body.update(status="unhealthy", redis_connected=False)
        return json_response(body, 503, {"Retry-After": "1"})
    body["current_sum"] = amounts.parse_stored(raw_sum)
    body["stats"] = {
        "connected_clients": info.get("connected_clients"),
        "total_commands_processed": info.get("total_commands_processed"),
        "used_memory_human": info.get("used_memory_human"),
    }
    # A fresher reading than the last poll: what this answer says is what the worker now does.
    # Paused keys leave the node healthy: everything else still commits.
    memory.observe(info)
    body["memory_used_ratio"] = None if memory.ratio is None else round(memory.ratio, 4)
    body["keyed_adds"] = _keyed_adds(memory)
    return json_response(body)


async def livez(request: Request) -> Response:
    """Whether this process serves HTTP, and nothing else: it never asks Redis. An orchestrator
    restarts what fails its liveness check, and restarting every node because Redis is down
    would only add a stampede to the outage (the nodes answer 503 themselves meanwhile)."""
    settings: Settings = request.app.state.settings
    return json_response({"status": "alive", "node_id": settings.node_id})


def _keyed_adds(memory: MemoryWatch) -> str:
    """Whether this worker takes new Idempotency-Keys, or pauses them (the key store's budget)."""
    return "paused" if memory.paused else "accepted"


# The document never changes: encode it once, not on every request.
_OPENAPI_BODY = encode(openapi.DOCUMENT)


async def openapi_document(request: Request) -> Response:
    return Response(_OPENAPI_BODY, 200, media_type="application/json")


async def prometheus_metrics(request: Request) -> Response:
    content, media_type = metrics.exposition()
    return Response(content, 200, media_type=media_type)


ROUTES = [
    Route("/abacus/number", add_number, methods=["POST"]),
    Route("/abacus/sum", sum_endpoint, methods=["GET", "DELETE"]),
    Route("/health", health, methods=["GET"]),
    Route("/livez", livez, methods=["GET"]),
    Route("/metrics", prometheus_metrics, methods=["GET"]),
    Route("/openapi.json", openapi_document, methods=["GET"]),
]
