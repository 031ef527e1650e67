"""Prometheus metrics of a node.

Under Gunicorn every worker is its own process, so the counters live in files in
`PROMETHEUS_MULTIPROC_DIR` (set by gunicorn_conf.py before any worker starts) and `/metrics`
adds up all workers' files. Without that variable (`python -m abacus.node`) it is the process
registry.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter(
    "abacus_http_requests_total", "HTTP requests answered", ["route", "method", "status"]
)
REQUEST_SECONDS = Histogram(
    "abacus_http_request_duration_seconds",
    "Time to answer a request",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
ADDS_COMMITTED = Counter("abacus_adds_committed_total", "Adds that counted (replays excluded)")
ADDS_REPLAYED = Counter("abacus_adds_replayed_total", "Adds answered from an idempotency record")
# Every add that reached the commit path, by how it was answered (pending_add.py decides): the
# HTTP status alone cannot tell `unavailable` (never counted) from `outcome_unknown` (may have
# counted), which are both 503 and mean opposite things to a client. Label values are bounded:
# counted, replayed, or an error code of errors.ErrorCode.
ADD_OUTCOMES = Counter(
    "abacus_add_outcomes_total",
    "Adds the commit path answered, by outcome (counted, replayed, or the error code)",
    ["outcome"],
)
CONFLICTS = Counter(
    "abacus_commit_conflicts_total", "Transactions whose EXEC failed its WATCH (a conflict)"
)
TURN_TIMEOUTS = Counter(
    "abacus_commit_turn_timeouts_total",
    "Commit attempts that waited for the lanes' token in vain and went on without it",
)
RETRIES = Counter("abacus_commit_retries_total", "Adds put back in the queue for another attempt")
BATCH_SIZE = Histogram(
    "abacus_commit_batch_size",
    "Adds applied by one committed transaction",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
AMBIGUOUS_COMMITS = Counter(
    "abacus_ambiguous_commits_total", "EXECs sent whose reply was lost (Redis unreachable)"
)
AMBIGUOUS_RESOLVED = Counter(
    "abacus_ambiguous_adds_resolved_total",
    "Adds that had a lost EXEC, by how they were answered",
    ["resolution"],
)
# Adds taken by a node and not yet answered: what an operator watches during a Redis stall, and
# how a test knows its requests have reached the node.
ADDS_PENDING = Gauge(
    "abacus_adds_pending", "Adds queued or in flight, not yet answered", multiprocess_mode="livesum"
)
# Retry keys without the balancer's secret: through the balancer, a secret nginx and the nodes do
# not share (a misconfiguration); directly at a node, somebody posing as the balancer.
UNTRUSTED_RETRY_KEYS = Counter(
    "abacus_untrusted_retry_keys_total",
    "Requests with a retry key but without the balancer's secret (the key was ignored)",
)
REDIS_ERRORS = Counter("abacus_redis_errors_total", "Redis calls that failed", ["operation"])
# Replication (docs/design.md, "Replication and failover"): what a failover looks like from a
# node, and answers held back because replicas did not confirm them.
PRIMARY_REFUSALS = Counter(
    "abacus_primary_refusals_total",
    "Transactions Redis refused because the primary was demoted or lacked replicas, by reason "
    "(readonly, noreplicas); their adds were tried again",
    ["reason"],
)
REPLICA_ACKS_SHORT = Counter(
    "abacus_replica_acks_short_total",
    "WAITs (or WAITAOFs) that fell short of ABACUS_MIN_REPLICA_ACKS: their answers became "
    "outcome_unknown",
)
# The key budget (key_quota.py, memory_watch.py). Every worker polls the same Redis, so
# the ratio is the freshest reading of any live worker; the pause is per worker, so this counts
# the workers that pause (a test waits for all of them, an operator alerts on any).
REDIS_MEMORY_USED_RATIO = Gauge(
    "abacus_redis_memory_used_ratio",
    "Redis used_memory / maxmemory as last polled (0 when Redis has no maxmemory)",
    multiprocess_mode="livemostrecent",
)
# The figures behind the ratio, for dashboards and alerts in bytes. The same mode as the ratio:
# every worker reads the same Redis, so the freshest reading is the true one, and a sum or max
# over workers would be wrong or stale.
REDIS_MEMORY_USED_BYTES = Gauge(
    "abacus_redis_memory_used_bytes",
    "Redis used_memory as last polled",
    multiprocess_mode="livemostrecent",
)
REDIS_MAXMEMORY_BYTES = Gauge(
    "abacus_redis_maxmemory_bytes",
    "Redis maxmemory as last polled (0: no limit)",
    multiprocess_mode="livemostrecent",
)
KEYED_ADDS_PAUSED = Gauge(
    "abacus_keyed_adds_paused",
    "Workers that pause new Idempotency-Keys because Redis memory is nearly full",
    multiprocess_mode="livesum",
)
KEY_BUDGET_REFUSALS = Counter(
    "abacus_key_budget_refusals_total",
    "Keyed adds the key budget refused, by reason (key_quota_exhausted, key_store_full)",
    ["reason"],
)


def exposition() -> tuple[bytes, str]:
    """The metrics of every worker of this node, in Prometheus text format."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
