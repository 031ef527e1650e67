"""A node's `GET /metrics` (Prometheus text, summed over its workers), read with the parser of
prometheus_client itself rather than regular expressions."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families


def scrape(port: int) -> str:
    """The metrics text of the node on 127.0.0.1:port (direct: the balancer does not serve it)."""
    reply = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    reply.raise_for_status()
    return reply.text


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels`; 0 when none.

    `name` is the sample's own name: `abacus_adds_committed_total`, `..._bucket`, `..._count`.
    """
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def adds_pending(port: int) -> float:
    """Adds the node holds (queued or in flight) and has not answered yet."""
    return value(scrape(port), "abacus_adds_pending")


def keyed_adds_paused(port: int) -> float:
    """How many workers of the node pause new Idempotency-Keys (the key store's memory budget)."""
    return value(scrape(port), "abacus_keyed_adds_paused")
