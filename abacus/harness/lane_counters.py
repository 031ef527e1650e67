"""The commit lanes' counters, summed over a stack's nodes: what `make bench-lanes` compares.

Read from each node's `/metrics` (the nodes sum their own workers) before and after a load, so
the figures are the load's own: committed adds, retries (an add put back after a failed attempt),
conflicts (an EXEC that failed its WATCH) and commits (transactions that applied adds)."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

SAMPLES = {
    "committed": "abacus_adds_committed_total",
    "retries": "abacus_commit_retries_total",
    "conflicts": "abacus_commit_conflicts_total",
    "commits": "abacus_commit_batch_size_count",
}


@dataclass(frozen=True)
class LaneCounters:
    committed: float = 0.0
    retries: float = 0.0
    conflicts: float = 0.0
    commits: float = 0.0

    def __add__(self, other: LaneCounters) -> LaneCounters:
        return LaneCounters(
            self.committed + other.committed,
            self.retries + other.retries,
            self.conflicts + other.conflicts,
            self.commits + other.commits,
        )

    def __sub__(self, earlier: LaneCounters) -> LaneCounters:
        return LaneCounters(
            self.committed - earlier.committed,
            self.retries - earlier.retries,
            self.conflicts - earlier.conflicts,
            self.commits - earlier.commits,
        )

    @property
    def retries_per_add(self) -> float | None:
        return self.retries / self.committed if self.committed else None

    @property
    def attempts_per_add(self) -> float | None:
        """Attempts each committed add took: its first, and each retry."""
        return 1 + self.retries / self.committed if self.committed else None

    @property
    def conflicts_per_commit(self) -> float | None:
        return self.conflicts / self.commits if self.commits else None

    @property
    def batch(self) -> float | None:
        """Adds per committed transaction."""
        return self.committed / self.commits if self.commits else None


def parse(text: str) -> LaneCounters:
    totals = dict.fromkeys(SAMPLES, 0.0)
    wanted = {sample: field for field, sample in SAMPLES.items()}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted:
                totals[wanted[sample.name]] += sample.value
    return LaneCounters(**totals)


def read(ports: Iterable[int], timeout: float = 5.0) -> LaneCounters:
    """The counters of the nodes on 127.0.0.1:port, summed (a node's /metrics is direct)."""
    total = LaneCounters()
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as reply:
            total += parse(reply.read().decode())
    return total
