"""`make bench-lanes`: how the commit lanes scale with the number of nodes, on this machine.

For each shape (nodes x workers: one commit lane per worker) it starts a local stack, runs adds
with wrk at one concurrency for a few rounds and reads the nodes' own counters around each
round: adds/s, attempts per committed add, retries per committed add, conflicts per commit and
adds per commit. With `--baseline-ref REF` each shape also runs the nodes' code at REF, the two
alternating round by round (A, B, A, B) so that their ratios hold on a noisy machine; figures
are medians over the rounds.

On a machine with fewer cores than processes, more nodes also means more CPU contention: the
counters (conflicts, retries) are the signal, adds/s is the machine's as much as the design's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from abacus.harness import baseline_tree, lane_counters
from abacus.harness.stats import median
from abacus.harness.workload import Mode, Workload
from abacus.harness.wrk_driver import find_wrk, run_wrk
from abacus.local_stack import LocalStack, StackConfig, StackError

DEFAULT_SHAPES = "3x1,6x1,12x1,3x2,3x4"
WARMUP_S = 1.0


@dataclass(frozen=True)
class Round:
    adds_per_s: float
    p99_ms: float | None
    non_2xx: int
    counters: lane_counters.LaneCounters


@dataclass(frozen=True)
class ShapeStats:
    """One variant at one shape: medians over its rounds."""

    nodes: int
    workers: int
    adds_per_s: float | None
    p99_ms: float | None
    attempts_per_add: float | None
    retries_per_add: float | None
    conflicts_per_commit: float | None
    batch: float | None
    non_2xx: int

    @classmethod
    def of(cls, nodes: int, workers: int, rounds: list[Round]) -> ShapeStats:
        c = [r.counters for r in rounds]
        return cls(
            nodes,
            workers,
            median(r.adds_per_s for r in rounds),
            median(r.p99_ms for r in rounds),
            median(x.attempts_per_add for x in c),
            median(x.retries_per_add for x in c),
            median(x.conflicts_per_commit for x in c),
            median(x.batch for x in c),
            sum(r.non_2xx for r in rounds),
        )


def parse_shapes(text: str) -> list[tuple[int, int]]:
    shapes = []
    for item in text.split(","):
        nodes, _, workers = item.partition("x")
        shapes.append((int(nodes), int(workers or 1)))
    return shapes


def measure(stack: LocalStack, concurrency: int, duration: float, wrk: str) -> Round:
    url = stack.config.url
    run_wrk(Workload(url, Mode.ADD, concurrency, WARMUP_S, 10.0), wrk=wrk)
    before = lane_counters.read(stack.config.node_ports)
    load = run_wrk(Workload(url, Mode.ADD, concurrency, duration, 10.0), wrk=wrk)
    after = lane_counters.read(stack.config.node_ports)
    return Round(load.ok_per_s, load.p99_ms, load.non_2xx + load.errors, after - before)


@contextmanager
def variants(baseline_ref: str | None) -> Iterator[dict[str, dict[str, str]]]:
    """Each variant's name and the nodes' extra environment."""
    if baseline_ref is None:
        yield {"this tree": {}}
        return
    with baseline_tree.checked_out(baseline_ref) as tree:
        yield {"this tree": {}, f"{tree.ref} ({tree.commit[:12]})": tree.node_env()}


def run_shape(
    shape: tuple[int, int],
    env: dict[str, dict[str, str]],
    args: argparse.Namespace,
    wrk: str,
    root: Path,
) -> dict[str, ShapeStats]:
    nodes, workers = shape
    rounds: dict[str, list[Round]] = {name: [] for name in env}
    with ExitStack() as stacks:
        running = {}
        for index, (name, node_env) in enumerate(env.items()):
            config = StackConfig.on_free_ports(
                root / f"{nodes}x{workers}-{index}",
                nodes,
                workers=workers,
                rate_limit=False,
                node_env=node_env,
            )
            stack = LocalStack(config)
            stacks.callback(stack.down)
            stack.up()
            running[name] = stack
        for number in range(args.rounds):
            for name, stack in running.items():
                result = measure(stack, args.concurrency, args.duration, wrk)
                rounds[name].append(result)
                print(
                    f"{nodes}x{workers} round {number + 1} {name}: {result.adds_per_s:.0f} adds/s,"
                    f" retries/add {result.counters.retries_per_add}",
                    file=sys.stderr,
                    flush=True,
                )
    return {name: ShapeStats.of(nodes, workers, r) for name, r in rounds.items()}


def _figure(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render(results: dict[str, list[ShapeStats]], concurrency: int) -> str:
    lines = [
        f"adds at concurrency {concurrency}, medians over the rounds",
        "| variant | nodes x workers (lanes) | adds/s | p99 ms | attempts/add | retries/add "
        "| conflicts/commit | adds/commit | non-2xx |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, shapes in results.items():
        for s in shapes:
            lines.append(
                f"| {name} | {s.nodes} x {s.workers} ({s.nodes * s.workers}) "
                f"| {_figure(s.adds_per_s, 0)} | {_figure(s.p99_ms, 0)} "
                f"| {_figure(s.attempts_per_add, 3)} | {_figure(s.retries_per_add, 3)} "
                f"| {_figure(s.conflicts_per_commit, 3)} | {_figure(s.batch, 1)} | {s.non_2xx} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default=DEFAULT_SHAPES, help="nodes x workers, e.g. 3x2")
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline-ref", help="also run the nodes' code at this commit")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    wrk = find_wrk()
    if wrk is None:
        print("bench_lanes.py: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    results: dict[str, list[ShapeStats]] = {}
    try:
        with variants(args.baseline_ref) as env, tempfile.TemporaryDirectory() as directory:
            for shape in parse_shapes(args.shapes):
                for name, stats in run_shape(shape, env, args, wrk, Path(directory)).items():
                    results.setdefault(name, []).append(stats)
    except (StackError, baseline_tree.BaselineError) as exc:
        print(f"bench_lanes.py: {exc}", file=sys.stderr)
        return 2
    if args.json:
        document: dict[str, Any] = {
            "concurrency": args.concurrency,
            "variants": {name: [asdict(s) for s in shapes] for name, shapes in results.items()},
        }
        print(json.dumps(document, indent=2))
    else:
        print(render(results, args.concurrency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
