"""The figures the commit simulation is calibrated with, and the JSON file that keeps them.

Each cost is a fixed part plus a part per add of the batch, in seconds. Redis's are the time its
one thread is busy with a round trip (CPU, measured from its own scheduler statistics, so other
load on the machine does not inflate them) and the fsync that `appendfsync always` adds to every
event-loop iteration that wrote; the node's are one worker's CPU. `calibration.json` beside this
module was measured here by `make calibrate` and is what the simulation reads by default.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PATH = Path(__file__).with_name("calibration.json")


@dataclass(frozen=True)
class Linear:
    """A cost of `fixed + per_add x k` seconds for a batch of k adds."""

    fixed: float
    per_add: float

    def at(self, k: int) -> float:
        return self.fixed + self.per_add * k

    @classmethod
    def fit(cls, points: Sequence[tuple[float, float]]) -> Linear:
        """Least squares over (k, seconds); a negative slope or intercept (noise) becomes 0."""
        n = len(points)
        mean_k = sum(k for k, _ in points) / n
        mean_s = sum(s for _, s in points) / n
        spread = sum((k - mean_k) ** 2 for k, _ in points)
        slope = sum((k - mean_k) * (s - mean_s) for k, s in points) / spread if spread else 0.0
        slope = max(0.0, slope)
        return cls(fixed=max(0.0, mean_s - slope * mean_k), per_add=slope)


@dataclass(frozen=True)
class Calibration:
    # Loopback round trip between a client and Redis, Redis's own work excluded.
    rtt_s: float
    # Redis's thread for round trip 1 (WATCH, GET, MGET of k records).
    redis_read: Linear
    # Round trip 2 when the EXEC applies (MULTI, SET sum, k SETs with EX, EXEC) and when it is
    # discarded (a conflict: the commands are queued, not run).
    redis_commit: Linear
    redis_discarded: Linear
    # The fsync of an event-loop iteration that wrote k adds' records.
    fsync: Linear
    # A worker's CPU: per HTTP request (parse, route, answer), per attempt, per add per attempt.
    node_request_s: float
    node_attempt_s: float
    node_attempt_add_s: float
    # When, where and how it was measured: for people reading the file.
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibration:
        return cls(
            rtt_s=float(data["rtt_s"]),
            redis_read=Linear(**data["redis_read"]),
            redis_commit=Linear(**data["redis_commit"]),
            redis_discarded=Linear(**data["redis_discarded"]),
            fsync=Linear(**data["fsync"]),
            node_request_s=float(data["node_request_s"]),
            node_attempt_s=float(data["node_attempt_s"]),
            node_attempt_add_s=float(data["node_attempt_add_s"]),
            provenance=dict(data.get("provenance", {})),
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path = DEFAULT_PATH) -> Calibration:
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
