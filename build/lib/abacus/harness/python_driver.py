"""A load generator in plain Python, for when wrk is not installed.

One thread per connection, each with its own keep-alive `http.client` connection, looping
until the deadline. Python's own overhead caps what it can measure (a few thousand requests a
second), so its numbers are a floor, not the server's limit; `bench` says so.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from abacus.harness.stats import percentile
from abacus.harness.workload import ADD_BODY, LoadResult, Mode, Workload


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    non_2xx: int = 0
    errors: int = 0


def run_python(workload: Workload) -> LoadResult:
    parts = urlsplit(workload.target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {workload.url}")
    tallies = [_Tally() for _ in range(workload.concurrency)]
    ready = threading.Barrier(workload.concurrency + 1)
    deadline: list[float] = []

    def connect() -> http.client.HTTPConnection:
        kind = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        return kind(parts.hostname or "", parts.port, timeout=workload.timeout)

    def work(tally: _Tally) -> None:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn = connect()
        ready.wait()
        try:
            while time.monotonic() < deadline[0]:
                began = time.monotonic()
                try:
                    if workload.mode is Mode.ADD:
                        conn.request("POST", path, ADD_BODY, {"Content-Type": "application/json"})
                    else:
                        conn.request("GET", path)
                    response = conn.getresponse()
                    response.read()
                except (OSError, http.client.HTTPException):
                    tally.errors += 1
                    conn.close()
                    conn = connect()
                    time.sleep(0.01)  # a refused connection would otherwise spin
                    continue
                tally.latencies.append(time.monotonic() - began)
                if not 200 <= response.status < 300:
                    tally.non_2xx += 1
        finally:
            conn.close()

    threads = [
        threading.Thread(target=work, args=(t,), name=f"abacus-bench-{i}", daemon=True)
        for i, t in enumerate(tallies)
    ]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    deadline.append(started + workload.duration)
    ready.wait()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    latencies_ms = [s * 1000 for t in tallies for s in t.latencies]
    return LoadResult(
        responses=len(latencies_ms),
        non_2xx=sum(t.non_2xx for t in tallies),
        errors=sum(t.errors for t in tallies),
        duration=elapsed,
        p50_ms=percentile(latencies_ms, 50),
        p99_ms=percentile(latencies_ms, 99),
    )
