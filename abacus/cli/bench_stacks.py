"""`make bench`: one variant of the local stack against another, in one run, on this machine.

Starts two local stacks on free ports (no rate limit) and runs abacus-bench's measurement on
both, alternating A, B, A, B, so that the ratios hold on a noisy machine:

    --compare batch     A = group commit (the default), B = one transaction per request
    --compare fsync     A = appendfsync always (the default), B = appendfsync everysec
    --compare acks      replicated Redis with Sentinel (--redis-ha) on both:
                        A = 1 replica ack (ABACUS_MIN_REPLICA_ACKS=1), B = none (0)
    --compare turns     A = lanes taking turns (the default),
                        B = lanes racing (ABACUS_COMMIT_TURNS=off)
    --compare ceiling   A = the nodes, B = the ceiling app (abacus/harness/ceiling_app.py): one
                        Redis command per request on the same Gunicorn, worker, nginx and Redis
    --compare baseline  A = this tree's nodes, B = the nodes' code at --baseline-ref (main)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from abacus.harness import baseline_tree
from abacus.harness.bench import run_bench
from abacus.harness.bench_report import bench_json, render_bench
from abacus.harness.ceiling_app import CEILING_APP
from abacus.local_stack import LocalStack, StackConfig, StackError

DEFAULT_ROUNDS = 5
DEFAULT_BASELINE_REF = "main"


@dataclass(frozen=True)
class Pair:
    """The two stacks of a comparison: what each is, and its StackConfig options."""

    label_a: str
    label_b: str
    a: dict[str, Any] = field(default_factory=dict)
    b: dict[str, Any] = field(default_factory=dict)


def _ha(node_env: dict[str, str]) -> dict[str, Any]:
    return {"redis_ha": True, "node_env": node_env}


PAIRS = {
    "batch": Pair(
        "group commit",
        "one transaction per request (ABACUS_MAX_BATCH=1)",
        b={"node_env": {"ABACUS_MAX_BATCH": "1"}},
    ),
    # B's Redis is switched to everysec once it runs (main).
    "fsync": Pair("appendfsync always", "appendfsync everysec"),
    "acks": Pair(
        "1 replica ack (ABACUS_MIN_REPLICA_ACKS=1)",
        "no replica ack (0)",
        a=_ha({"ABACUS_MIN_REPLICA_ACKS": "1"}),
        b=_ha({"ABACUS_MIN_REPLICA_ACKS": "0"}),
    ),
    "turns": Pair(
        "lanes taking turns (the default)",
        "lanes racing (ABACUS_COMMIT_TURNS=off)",
        b={"node_env": {"ABACUS_COMMIT_TURNS": "off"}},
    ),
    "ceiling": Pair(
        "the nodes", "the ceiling app (one Redis command a request)", b={"app": CEILING_APP}
    ),
}
COMPARES = sorted([*PAIRS, "baseline"])


@contextmanager
def pair_for(compare: str, baseline_ref: str) -> Iterator[Pair]:
    """The comparison's pair; for `baseline`, with the ref's nodes checked out meanwhile."""
    if compare != "baseline":
        yield PAIRS[compare]
        return
    with baseline_tree.checked_out(baseline_ref) as tree:
        yield Pair(
            "this tree's nodes",
            f"the nodes of {tree.ref} ({tree.commit[:12]}, from {tree.path})",
            b={"node_env": tree.node_env()},
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compare", choices=COMPARES, default="batch")
    parser.add_argument("--concurrency", default="16,64,256,1024")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per point")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument(
        "--baseline-ref",
        help=f"with --compare baseline: the commit (default {DEFAULT_BASELINE_REF})",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.baseline_ref is not None and args.compare != "baseline":
        parser.error("--baseline-ref goes with --compare baseline")
    concurrencies = tuple(int(c) for c in args.concurrency.split(","))
    try:
        with pair_for(args.compare, args.baseline_ref or DEFAULT_BASELINE_REF) as pair:
            return _run(args, pair, concurrencies)
    except (StackError, baseline_tree.BaselineError) as exc:
        print(f"bench_stacks.py: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, pair: Pair, concurrencies: tuple[int, ...]) -> int:
    with tempfile.TemporaryDirectory(prefix="abacus-bench-") as directory:
        root = Path(directory)
        a = LocalStack(StackConfig.on_free_ports(root / "a", rate_limit=False, **pair.a))
        b = LocalStack(StackConfig.on_free_ports(root / "b", rate_limit=False, **pair.b))
        try:
            a.up()
            b.up()
            if args.compare == "fsync":
                with redis.Redis.from_url(b.config.effective_redis_url) as client:
                    client.config_set("appendfsync", "everysec")
            # With --json, stdout holds the one JSON object and nothing else.
            out = sys.stderr if args.json else sys.stdout
            print(f"A: {pair.label_a} at {a.config.url}", file=out, flush=True)
            print(f"B: {pair.label_b} at {b.config.url}", file=out, flush=True)
            result = run_bench(
                a.config.url,
                compare_url=b.config.url,
                concurrencies=concurrencies,
                duration=args.duration,
                rounds=args.rounds,
                log=lambda line: print(line, file=sys.stderr, flush=True),
            )
            if args.json:
                labels = {"a": pair.label_a, "b": pair.label_b}
                print(json.dumps({**labels, **bench_json(result)}, indent=2))
            else:
                print(render_bench(result))
            return 0
        finally:
            b.down()
            a.down()


if __name__ == "__main__":
    sys.exit(main())
