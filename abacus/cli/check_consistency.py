"""Fire concurrent adds and reads at an Abacus server and judge whether the history is consistent.

    abacus-check --url URL [--requests N | --duration S] [--concurrency C] [--reset] [--json]
    abacus-check --stack-dir DIR --nemesis FAULTS --duration S [--nemesis-interval S] [--reset]
    abacus-check --judge FILE                      re-judge a saved history, without any server
    ... [--save-history FILE] [--plot FILE.png] [--max-unknown FRACTION]

Exit status: 0 consistent, 1 inconsistent (the message names the fault), 2 could not run (or
finish: no final sum, a fault that did not go as planned), 3 inconclusive (more adds unknown
than --max-unknown allows).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from abacus.harness import arguments, faults, plot
from abacus.harness.check import CheckReport, rejudge, run_check, save_history
from abacus.harness.client import CannotRun
from abacus.harness.faults import FaultEvent, FaultKind
from abacus.harness.history_file import HistoryFileError
from abacus.harness.nemesis import Nemesis
from abacus.harness.report import check_json, render_check
from abacus.harness.timed_run import run_timed
from abacus.local_stack import LocalStack, StackError

PROG = "abacus-check"
# With --duration, the most adds the run may fire: its plan is made up front (the judge's
# exactness needs every addend chosen before the first is sent); planning 100,000 takes about
# half a second, and a 60 s run at this machine's pace fires a third of them.
DURATION_PLAN = 100_000
DEFAULT_TIMEOUT_S = 10.0
# With faults: longer than the balancer may take over one request (its read timeout, 8 s, then
# passing the request on for up to 20 s), so a client never gives up on an add nginx still holds.
NEMESIS_TIMEOUT_S = 30.0
DEFAULT_INTERVAL_S = 5.0


def _ratio(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be between 0 and 100, not {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {text}")
    return value


def _kinds(text: str) -> tuple[FaultKind, ...]:
    try:
        return faults.parse_kinds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Fire concurrent adds and reads at an Abacus server and judge the history.",
    )
    arguments.add_server_options(
        p, reset_help="reset the sum first (DELETE /abacus/sum)", url_required=False
    )
    p.add_argument("--requests", type=arguments.positive_int, help="adds to fire (default 1000)")
    p.add_argument(
        "--duration",
        type=arguments.positive_float,
        help=f"fire for this many seconds instead (at most --requests adds, default "
        f"{DURATION_PLAN:,})",
    )
    p.add_argument(
        "--concurrency", type=arguments.positive_int, default=16, help="concurrent clients"
    )
    p.add_argument(
        "--read-ratio", type=_ratio, default=0.25, help="reads fired per add (default 0.25)"
    )
    p.add_argument(
        "--timeout",
        type=arguments.positive_float,
        help=f"per request, seconds (default {DEFAULT_TIMEOUT_S:g}; "
        f"{NEMESIS_TIMEOUT_S:g} with --nemesis)",
    )
    p.add_argument(
        "--resolve-unknown",
        action=argparse.BooleanOptionalAction,
        help="send an Idempotency-Key with each add and retry unknown outcomes once with it "
        "(default: on with --nemesis, off without)",
    )
    p.add_argument("--seed", type=int, help="seed for the generated numbers")
    faults_group = p.add_argument_group("faults (a local stack only)")
    faults_group.add_argument(
        "--nemesis",
        type=_kinds,
        metavar="FAULTS",
        help=f"inject these faults while the load runs: {', '.join(FaultKind)} "
        "(comma-separated), or all; needs --duration",
    )
    faults_group.add_argument(
        "--nemesis-interval",
        type=arguments.non_negative_float,
        default=DEFAULT_INTERVAL_S,
        help=f"seconds between one fault's recovery and the next (default {DEFAULT_INTERVAL_S:g})",
    )
    faults_group.add_argument(
        "--stack-dir",
        type=Path,
        help="the local stack to break (its state.json); its URL is the default --url",
    )
    files = p.add_argument_group("histories and verdicts")
    files.add_argument("--save-history", type=Path, metavar="FILE", help="write the history")
    files.add_argument(
        "--judge", type=Path, metavar="FILE", help="re-judge a saved history, no server needed"
    )
    files.add_argument(
        "--max-unknown",
        type=_fraction,
        metavar="FRACTION",
        help="above this share of adds unknown, a consistent run is inconclusive (exit 3)",
    )
    files.add_argument("--plot", type=Path, metavar="FILE.png", help="draw the run's timeline")
    return p


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = parser()
    args = p.parse_args(argv)
    if args.judge is not None:
        mixed = [
            option
            for option, value in (
                ("--url", args.url),
                ("--nemesis", args.nemesis),
                ("--duration", args.duration),
                ("--requests", args.requests),
                ("--stack-dir", args.stack_dir),
                ("--reset", args.reset or None),
            )
            if value is not None
        ]
        if mixed:
            p.error(f"--judge re-judges a file: {', '.join(mixed)} would fire at a server")
        return args
    if args.nemesis is not None and args.duration is None:
        p.error("--nemesis needs --duration: the load must outlast the faults")
    if args.nemesis is not None and args.stack_dir is None:
        p.error("--nemesis needs --stack-dir: the local stack it breaks")
    if args.url is None and args.stack_dir is None:
        p.error("--url is required (or --stack-dir, whose stack's URL it then is)")
    if args.timeout is None:
        args.timeout = NEMESIS_TIMEOUT_S if args.nemesis else DEFAULT_TIMEOUT_S
    if args.resolve_unknown is None:
        # With faults many outcomes are unknown; keys make them learnable afterwards.
        args.resolve_unknown = args.nemesis is not None
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.plot is not None and not plot.available():
        return arguments.cannot_run(PROG, plot.INSTALL_HINT, as_json=args.json, verdict="error")
    try:
        report = _judge_file(args) if args.judge is not None else _fire(args)
    except (CannotRun, StackError, HistoryFileError, ValueError) as exc:
        return arguments.cannot_run(PROG, str(exc), as_json=args.json, verdict="error")
    except KeyboardInterrupt:
        return arguments.cannot_run(PROG, "interrupted", as_json=args.json, verdict="error")
    if args.save_history is not None:
        save_history(report, args.save_history)
    if args.plot is not None:
        plot.plot(report, args.plot)
    if args.json:
        print(json.dumps(check_json(report), indent=2))
    else:
        print(render_check(report))
    return report.exit_code


def _judge_file(args: argparse.Namespace) -> CheckReport:
    return rejudge(args.judge, max_unknown=args.max_unknown)


def _fire(args: argparse.Namespace) -> CheckReport:
    stack = LocalStack.load(args.stack_dir) if args.stack_dir is not None else None
    url = args.url or (stack.config.url if stack is not None else None)
    assert url is not None
    if not args.reset and not args.json:
        print(
            "note: no --reset: the check starts from the current sum; any other writer during "
            "the run spoils it",
            file=sys.stderr,
        )
    options: dict[str, Any] = {
        "concurrency": args.concurrency,
        "read_ratio": args.read_ratio,
        "reset": args.reset,
        "admin_token": arguments.admin_token(args),
        "timeout": args.timeout,
        "resolve_unknown": args.resolve_unknown,
        "seed": args.seed,
        "progress": not args.json and sys.stderr.isatty(),
        "max_unknown": args.max_unknown,
    }
    if args.duration is None:
        return run_check(url, adds=args.requests or 1000, **options)
    nemesis = None
    if args.nemesis is not None:
        assert stack is not None
        on_event = None if args.json else _say_fault
        nemesis = Nemesis(stack, args.nemesis, interval=args.nemesis_interval, on_event=on_event)
    return run_timed(
        url,
        duration=args.duration,
        nemesis=nemesis,
        adds=args.requests or DURATION_PLAN,
        **options,
    )


def _say_fault(event: FaultEvent) -> None:
    """A line on stderr as each fault is over, so a person watching knows what happened."""
    outcome = f"ERROR: {event.error}" if event.error else event.detail
    print(
        f"fault: {event.kind.value} {event.target}, healthy again after "
        f"{event.end - event.start:.1f} s: {outcome}",
        file=sys.stderr,
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
