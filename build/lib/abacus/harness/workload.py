"""What one benchmark point asks a load generator for, and what it measured."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

ADD_BODY = b'{"number": 1}'  # adding 1 makes the sum grow by exactly the adds acknowledged


class Mode(StrEnum):
    ADD = "add"
    READ = "read"


@dataclass(frozen=True)
class Workload:
    url: str  # base URL of the deployment
    mode: Mode
    concurrency: int  # connections kept busy, each one request at a time
    duration: float  # seconds
    timeout: float  # seconds a request may take before it counts as an error

    @property
    def path(self) -> str:
        return "/abacus/number" if self.mode is Mode.ADD else "/abacus/sum"

    @property
    def target(self) -> str:
        return self.url.rstrip("/") + self.path


@dataclass(frozen=True)
class LoadResult:
    responses: int  # completed HTTP exchanges, whatever their status
    non_2xx: int
    errors: int  # connect/read/write errors and timeouts: no response at all
    duration: float  # seconds actually measured
    p50_ms: float | None
    p99_ms: float | None

    @property
    def ok(self) -> int:
        return self.responses - self.non_2xx

    @property
    def ok_per_s(self) -> float:
        """2xx responses per second: the throughput that counts."""
        return self.ok / self.duration if self.duration > 0 else 0.0

    @property
    def responses_per_s(self) -> float:
        return self.responses / self.duration if self.duration > 0 else 0.0
