"""The commit simulation's results: a table for people, the measured points beside their
prediction, and the picture of the curves to 100 nodes (matplotlib, as abacus/harness/plot.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from abacus.harness import plot
from abacus.harness.simulation import Result


@dataclass(frozen=True)
class Measured:
    """A point measured on the real stack (issue 19), CPU contention of 2 cores included."""

    nodes: int
    workers: int
    adds_per_s: str
    retries_per_add: float | None
    conflicts_per_commit: float | None
    batch: float | None


# At concurrency 256, the old backoff without turns ("before"); None: not reported.
MEASURED_CONCURRENCY = 256
MEASURED = (
    Measured(3, 2, "5,600-5,850", 1.0, 1.2, 24.0),
    Measured(6, 1, "4,300-5,100", 2.0, None, None),
    Measured(12, 1, "2,850-2,920", 4.35, 2.7, 8.0),
)

HEADER = (
    f"{'nodes':>5} {'wk':>2} {'policy':<22} {'adds/s':>8} {'att/add':>7} {'retr/add':>8} "
    f"{'conf/cmt':>8} {'batch':>6} {'p50 ms':>7} {'p99 ms':>7} {'redis':>5} {'worker':>6} "
    f"{'no turn':>7}"
)


def _policy(r: Result) -> str:
    return r.config.policy


def row(r: Result, label: Callable[[Result], str] = _policy) -> str:
    """One run; `no turn`: the share of attempts whose wait for the turn timed out."""
    c = r.config
    return (
        f"{c.nodes:>5} {c.workers:>2} {label(r)[:22]:<22} {r.adds_per_s:>8,.0f} "
        f"{r.attempts_per_add:>7.2f} {r.retries_per_add:>8.2f} {r.conflicts_per_commit:>8.2f} "
        f"{r.batch:>6.1f} {r.p50_ms:>7.1f} {r.p99_ms:>7.0f} {r.redis_busy:>5.0%} "
        f"{r.worker_busy:>6.0%} {r.without_turn:>7.1%}"
    )


def table(results: list[Result], label: Callable[[Result], str] = _policy) -> str:
    return "\n".join([HEADER, *(row(r, label) for r in results)])


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def validation(results: list[Result]) -> str:
    """Each measured point beside the simulation's "before" prediction for it."""
    lines = [
        f"{'config':<6} {'':<9} {'adds/s':>12} {'retr/add':>8} {'conf/cmt':>8} {'batch':>6}",
    ]
    for m in MEASURED:
        lines.append(
            f"{m.nodes}x{m.workers:<4} {'measured':<9} {m.adds_per_s:>12} "
            f"{_fmt(m.retries_per_add):>8} {_fmt(m.conflicts_per_commit):>8} {_fmt(m.batch):>6}"
        )
        for r in results:
            c = r.config
            if (c.nodes, c.workers) == (m.nodes, m.workers) and c.policy == "before":
                lines.append(
                    f"{'':<6} {'simulated':<9} {r.adds_per_s:>12,.0f} {r.retries_per_add:>8.2f} "
                    f"{r.conflicts_per_commit:>8.2f} {r.batch:>6.1f}"
                )
    return "\n".join(lines)


def draw(curves: dict[str, list[Result]], path: Path, title: str) -> None:
    """adds/s, retries per add and p99 latency against nodes, one line per policy."""
    plot.require()
    from matplotlib.figure import Figure  # noqa: PLC0415 - optional, imported only to draw

    figure = Figure(figsize=(12, 4), dpi=100, layout="constrained")
    rate, retries, latency = figure.subplots(1, 3)
    figure.suptitle(title, fontsize=10)
    for name, results in curves.items():
        nodes = [r.config.nodes for r in results]
        rate.plot(nodes, [r.adds_per_s for r in results], "o-", label=name)
        retries.plot(nodes, [r.retries_per_add for r in results], "o-", label=name)
        latency.plot(nodes, [r.p99_ms for r in results], "o-", label=name)
    for axes, label in (
        (rate, "adds / s"),
        (retries, "retries per committed add"),
        (latency, "p99 add latency (ms)"),
    ):
        axes.set_xscale("log")
        axes.set_xlabel("nodes (1 worker each)")
        axes.set_ylabel(label)
        axes.legend(fontsize=8)
    rate.set_ylim(bottom=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    plot.save_small(figure, path)
