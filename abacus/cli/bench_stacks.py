"""`make bench`: one variant of the local stack against another, in one run, on this machine.

Starts two local stacks on free ports (no rate limit) and runs abacus-bench's measurement on
both, alternating A, B, A, B, so that the ratios hold on a noisy machine:

    --compare batch   A = group commit (the default), B = one transaction per request
    --compare fsync   A = appendfsync always (the default), B = appendfsync everysec
    --compare acks    replicated Redis with Sentinel (--redis-ha) on both:
                      A = 1 replica ack (ABACUS_MIN_REPLICA_ACKS=1), B = none (0)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import redis

from abacus.harness.bench import run_bench
from abacus.harness.bench_report import bench_json, render_bench
from abacus.local_stack import LocalStack, StackConfig, StackError

VARIANTS = {
    "batch": ("group commit", "one transaction per request (ABACUS_MAX_BATCH=1)"),
    "fsync": ("appendfsync always", "appendfsync everysec"),
    "acks": ("1 replica ack (ABACUS_MIN_REPLICA_ACKS=1)", "no replica ack (0)"),
}
# The nodes' settings of each variant's stacks A and B.
NODE_ENV = {
    "batch": ({}, {"ABACUS_MAX_BATCH": "1"}),
    "fsync": ({}, {}),
    "acks": ({"ABACUS_MIN_REPLICA_ACKS": "1"}, {"ABACUS_MIN_REPLICA_ACKS": "0"}),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compare", choices=sorted(VARIANTS), default="batch")
    parser.add_argument("--concurrency", default="16,64,256,1024")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per point")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    concurrencies = tuple(int(c) for c in args.concurrency.split(","))
    label_a, label_b = VARIANTS[args.compare]
    with tempfile.TemporaryDirectory(prefix="abacus-bench-") as directory:
        root = Path(directory)
        a_env, b_env = NODE_ENV[args.compare]
        ha = args.compare == "acks"
        a = LocalStack(
            StackConfig.on_free_ports(root / "a", rate_limit=False, redis_ha=ha, node_env=a_env)
        )
        b = LocalStack(
            StackConfig.on_free_ports(root / "b", rate_limit=False, redis_ha=ha, node_env=b_env)
        )
        try:
            a.up()
            b.up()
            if args.compare == "fsync":
                with redis.Redis.from_url(b.config.effective_redis_url) as client:
                    client.config_set("appendfsync", "everysec")
            print(f"A: {label_a} at {a.config.url}\nB: {label_b} at {b.config.url}", flush=True)
            result = run_bench(
                a.config.url,
                compare_url=b.config.url,
                concurrencies=concurrencies,
                duration=args.duration,
                rounds=args.rounds,
                log=lambda line: print(line, file=sys.stderr, flush=True),
            )
            if args.json:
                print(json.dumps({"a": label_a, "b": label_b, **bench_json(result)}, indent=2))
            else:
                print(render_bench(result))
            return 0
        except StackError as exc:
            print(f"bench_stacks.py: {exc}", file=sys.stderr)
            return 2
        finally:
            b.down()
            a.down()


if __name__ == "__main__":
    sys.exit(main())
