"""Throughput and latency of adds and reads at several concurrencies, through one URL.

    abacus-bench --url URL [--concurrency 16,64,256] [--duration 10] [--warmup 1]
                            [--compare-url URL2 [--rounds 3]] [--threads 2] [--timeout 10]
                            [--no-wrk] [--reset [--admin-token T]] [--json]

Drives wrk when installed (Python threads otherwise, with a warning). With --compare-url the
two deployments alternate, A, B, A, B, and the table gives per-point medians and A/B ratios.
Exit status: 0 measured, 2 could not run.
"""

from __future__ import annotations

import argparse
import json
import sys

from abacus.harness import arguments
from abacus.harness.bench import DEFAULT_CONCURRENCIES, run_bench
from abacus.harness.bench_report import bench_json, render_bench
from abacus.harness.client import CannotRun

PROG = "abacus-bench"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Throughput and latency of adds and reads of an Abacus deployment.",
    )
    arguments.add_server_options(parser, reset_help="reset each target's sum first")
    parser.add_argument(
        "--concurrency",
        type=arguments.concurrencies,
        default=DEFAULT_CONCURRENCIES,
        help="comma-separated connection counts (default 16,64,256)",
    )
    parser.add_argument(
        "--duration",
        type=arguments.positive_float,
        default=10.0,
        help="seconds per point and mode (default 10; wrk rounds up to whole seconds)",
    )
    parser.add_argument(
        "--warmup",
        type=arguments.non_negative_float,
        default=1.0,
        help="seconds of warm-up before each measurement (default 1; 0 for none)",
    )
    parser.add_argument("--compare-url", help="a second deployment, measured alternately")
    parser.add_argument(
        "--rounds",
        type=arguments.positive_int,
        help="rounds per target; figures are medians (default 3 with --compare-url, else 1)",
    )
    parser.add_argument(
        "--threads", type=arguments.positive_int, default=2, help="wrk threads (default 2)"
    )
    parser.add_argument(
        "--timeout",
        type=arguments.positive_float,
        default=10.0,
        help="seconds a request may take before it counts as an error (default 10)",
    )
    parser.add_argument(
        "--no-wrk", action="store_true", help="use the Python load generator even if wrk exists"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        result = run_bench(
            args.url,
            compare_url=args.compare_url,
            concurrencies=args.concurrency,
            duration=args.duration,
            warmup=args.warmup,
            rounds=args.rounds,
            use_wrk=not args.no_wrk,
            threads=args.threads,
            timeout=args.timeout,
            reset=args.reset,
            admin_token=arguments.admin_token(args),
            log=None if args.json else _log,
        )
    except CannotRun as exc:
        return arguments.cannot_run(PROG, str(exc), as_json=args.json)
    except KeyboardInterrupt:
        return arguments.cannot_run(PROG, "interrupted", as_json=args.json)
    if args.json:
        print(json.dumps(bench_json(result), indent=2))
    else:
        print(render_bench(result))
    return 0


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
