"""Fire concurrent adds and reads at an Abacus server and judge whether the history is consistent.

    abacus-check --url URL [--requests N] [--concurrency C] [--reset]
                                        [--admin-token T] [--json]

Exit status: 0 consistent, 1 inconsistent (the message names the fault), 2 could not run.
"""

from __future__ import annotations

import argparse
import json
import sys

from abacus.harness import arguments
from abacus.harness.check import run_check
from abacus.harness.client import CannotRun
from abacus.harness.report import check_json, render_check

PROG = "abacus-check"


def _ratio(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be between 0 and 100, not {text}")
    return value


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Fire concurrent adds and reads at an Abacus server and judge the history.",
    )
    arguments.add_server_options(parser, reset_help="reset the sum first (DELETE /abacus/sum)")
    parser.add_argument(
        "--requests", type=arguments.positive_int, default=1000, help="adds to fire (default 1000)"
    )
    parser.add_argument(
        "--concurrency",
        type=arguments.positive_int,
        default=16,
        help="concurrent clients (default 16)",
    )
    parser.add_argument(
        "--read-ratio",
        type=_ratio,
        default=0.25,
        help="reads fired per add, spread among them (default 0.25)",
    )
    parser.add_argument(
        "--timeout",
        type=arguments.positive_float,
        default=10.0,
        help="per request, seconds (default 10)",
    )
    parser.add_argument(
        "--resolve-unknown",
        action="store_true",
        help="send an Idempotency-Key with each add and retry unknown outcomes once with it",
    )
    parser.add_argument("--seed", type=int, help="seed for the generated numbers")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not args.reset and not args.json:
        print(
            "note: no --reset: the check starts from the current sum; any other writer during "
            "the run spoils it",
            file=sys.stderr,
        )
    try:
        report = run_check(
            args.url,
            adds=args.requests,
            concurrency=args.concurrency,
            read_ratio=args.read_ratio,
            reset=args.reset,
            admin_token=arguments.admin_token(args),
            timeout=args.timeout,
            resolve_unknown=args.resolve_unknown,
            seed=args.seed,
            progress=not args.json and sys.stderr.isatty(),
        )
    except CannotRun as exc:
        return arguments.cannot_run(PROG, str(exc), as_json=args.json, verdict="error")
    except KeyboardInterrupt:
        return arguments.cannot_run(PROG, "interrupted", as_json=args.json, verdict="error")
    if args.json:
        print(json.dumps(check_json(report), indent=2))
    else:
        print(render_check(report))
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
