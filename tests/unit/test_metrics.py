"""/metrics: the process registry for one process, every worker's files under Gunicorn."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from abacus.node import metrics

COMMITTED = "abacus_adds_committed"


def test_one_process_exposes_its_own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    metrics.ADDS_COMMITTED.inc(0)
    content, media_type = metrics.exposition()
    assert media_type == CONTENT_TYPE_LATEST
    text = content.decode()
    for name in (
        "abacus_http_requests_total",
        "abacus_http_request_duration_seconds",
        "abacus_adds_committed_total",
        "abacus_adds_replayed_total",
        "abacus_add_outcomes_total",
        "abacus_commit_conflicts_total",
        "abacus_commit_retries_total",
        "abacus_commit_batch_size",
        "abacus_ambiguous_commits_total",
        "abacus_ambiguous_adds_resolved_total",
        "abacus_redis_errors_total",
        "abacus_adds_pending",
        "abacus_redis_memory_used_ratio",
        "abacus_redis_memory_used_bytes",
        "abacus_redis_maxmemory_bytes",
        "abacus_keyed_adds_paused",
        "abacus_key_budget_refusals_total",
    ):
        assert f"# TYPE {name} " in text, name


def write_worker_file(directory: Path, pid: int, committed: float) -> None:
    """A worker's counter file, as prometheus_client writes it under Gunicorn."""
    # prometheus_client's mmap file is untyped.
    values = MmapedDict(str(directory / f"counter_{pid}.db"))  # type: ignore[no-untyped-call]
    try:
        key = mmap_key(COMMITTED, f"{COMMITTED}_total", [], [], "Adds that counted")
        values.write_value(key, committed, 0.0)  # type: ignore[no-untyped-call]
    finally:
        values.close()  # type: ignore[no-untyped-call]


def test_under_gunicorn_every_worker_s_counts_add_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_worker_file(tmp_path, 101, 3)
    write_worker_file(tmp_path, 102, 4)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    content, media_type = metrics.exposition()
    assert media_type == CONTENT_TYPE_LATEST
    assert f"{COMMITTED}_total 7.0" in content.decode().splitlines()
    assert b"abacus_http_requests_total" not in content, "only the workers' files count"
