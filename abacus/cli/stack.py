"""The local stack without Docker: real redis-server, Gunicorn nodes and nginx on 127.0.0.1.

abacus-stack up [--port 8080] [--node-port 8001] [--nodes 3] [--workers 2]
                           [--redis-port 6380] [--redis-url URL] [--redis-ha]
                           [--sentinel-port 26380] [--dir .stack] [--detach]
                           [--no-rate-limit] [--max-batch N]
abacus-stack down | status [--dir .stack]
abacus-stack restart [--node node-N] [--dir .stack]
abacus-stack redis stop|start|kill [--dir .stack]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from abacus.local_stack import LocalStack, StackConfig, StackError


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="abacus-stack", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="start Redis, the nodes and nginx")
    up.add_argument("--port", type=int, default=8080, help="the balancer's port")
    up.add_argument("--node-port", type=int, default=8001, help="first node's port")
    up.add_argument("--nodes", type=int, default=3)
    up.add_argument("--workers", type=int, default=2, help="Gunicorn workers per node")
    up.add_argument("--redis-port", type=int, default=6380, help="port of the stack's own Redis")
    up.add_argument("--redis-url", help="use this Redis instead of starting one")
    up.add_argument(
        "--redis-ha",
        action="store_true",
        help="a primary, two replicas and three Sentinels (ports from --redis-port and "
        "--sentinel-port on) instead of one Redis",
    )
    up.add_argument(
        "--sentinel-port", type=int, default=26380, help="first Sentinel's port (--redis-ha)"
    )
    up.add_argument("--detach", action="store_true", help="return once everything is healthy")
    up.add_argument(
        "--no-rate-limit", action="store_true", help="no per-client rate limit (benchmarks)"
    )
    up.add_argument(
        "--max-batch", type=int, help="ABACUS_MAX_BATCH of the nodes (1 = no group commit)"
    )

    for name in ("down", "status"):
        commands.add_parser(name)
    restart = commands.add_parser("restart", help="rolling graceful restart")
    restart.add_argument("--node", help="only this node (node-N)")
    redis = commands.add_parser(
        "redis",
        help="stop, start or SIGKILL the stack's Redis (--redis-ha: stop or kill the primary, "
        "start every stopped instance)",
    )
    redis.add_argument("action", choices=["stop", "start", "kill"])
    for sub in commands.choices.values():
        sub.add_argument("--dir", type=Path, default=Path(".stack"), help="state and logs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "up" and args.redis_ha and args.redis_url:
            raise StackError("--redis-ha starts its own Redis group; it takes no --redis-url")
        if args.command == "up":
            node_env = {"ABACUS_MAX_BATCH": str(args.max_batch)} if args.max_batch else {}
            config = StackConfig(
                port=args.port,
                node_port=args.node_port,
                nodes=args.nodes,
                workers=args.workers,
                redis_port=args.redis_port,
                redis_url=args.redis_url,
                redis_ha=args.redis_ha,
                sentinel_port=args.sentinel_port,
                dir=args.dir,
                rate_limit=not args.no_rate_limit,
                node_env=node_env,
            )
            stack = LocalStack(config)
            stack.up()
            up = f"Abacus is up at {config.url} (logs in {stack.dir / 'logs'})"
            if args.detach:
                print(up, flush=True)
                return 0
            stack.wait_for_signal(
                ready=lambda: print(f"{up}\nCtrl-C stops it gracefully.", flush=True)
            )
            return 0
        stack = LocalStack.load(args.dir)
        if args.command == "down":
            stack.down()
        elif args.command == "status":
            report = stack.status()
            print(json.dumps(report, indent=2))
            healthy = all(e["running"] and e.get("healthy", True) for e in report.values())
            return 0 if healthy else 1
        elif args.command == "restart":
            stack.restart(args.node)
        elif args.command == "redis":
            stack.redis(args.action)
    except StackError as exc:
        print(f"stack.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
