"""`make nemesis`: the checker with every fault, against a freshly started local stack.

Starts a stack of its own on free ports (so it never touches one you run), fires at it through
the balancer for 60 s at concurrency 64 while the nemesis injects every fault, saves the
history, judges it again from the file and compares the two verdicts, draws the timeline, and
stops the stack (as its state file says it is now: the nemesis restarted parts of it).

Exit code: the checker's (0 consistent, 1 inconsistent, 2 could not run, 3 inconclusive), or 1
when the verdict re-judged from the file differs from the live one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from abacus.cli.throwaway_stack import TOKEN, throwaway_stack
from abacus.harness import arguments, faults, plot
from abacus.harness.check import CheckReport, rejudge, save_history
from abacus.harness.nemesis import Nemesis
from abacus.harness.report import check_json, render_check
from abacus.harness.timed_run import run_timed
from abacus.local_stack import LocalStack, StackError

DURATION_S = 60.0
CONCURRENCY = 64
# Long enough that the service is seen serving between faults, short enough that every kind
# fits in 60 s (their holds and recoveries take about 40 s on a 2-core machine).
INTERVAL_S = 2.0
HISTORY = Path(".stack/nemesis/history.jsonl")
PICTURE = Path("docs/nemesis-timeline.png")
PLAN = 100_000  # the most adds the run may fire (see abacus/cli/check_consistency.py)

# What must come out the same when the saved history is judged again.
SAME = ("verdict", "fault", "message", "method", "exit_code", "checks", "adds", "reads", "sum")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=arguments.positive_float, default=DURATION_S)
    parser.add_argument("--concurrency", type=arguments.positive_int, default=CONCURRENCY)
    parser.add_argument("--interval", type=arguments.non_negative_float, default=INTERVAL_S)
    parser.add_argument("--faults", type=faults.parse_kinds, default=faults.parse_kinds("all"))
    parser.add_argument("--history", type=Path, default=HISTORY)
    parser.add_argument("--plot", type=Path, default=PICTURE)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not plot.available():
        print(f"nemesis_stack.py: {plot.INSTALL_HINT}", file=sys.stderr)
        return arguments.EXIT_CANNOT_RUN
    try:
        # Stopped as its state file names it then: the nemesis replaced nodes and Redis.
        with throwaway_stack("abacus-nemesis-") as stack:
            return _run(stack, args)
    except StackError as exc:
        print(f"nemesis_stack.py: {exc}", file=sys.stderr)
        return arguments.EXIT_CANNOT_RUN


def _run(stack: LocalStack, args: argparse.Namespace) -> int:
    kinds = ", ".join(kind.value for kind in args.faults)
    print(
        f"{args.duration:g} s of load at concurrency {args.concurrency}, faults every "
        f"{args.interval:g} s: {kinds}",
        file=sys.stderr,
        flush=True,
    )
    nemesis = Nemesis(stack, args.faults, interval=args.interval)
    report = run_timed(
        stack.config.url,
        duration=args.duration,
        nemesis=nemesis,
        adds=PLAN,
        concurrency=args.concurrency,
        reset=True,
        admin_token=TOKEN,
        timeout=30.0,
        resolve_unknown=True,
        progress=sys.stderr.isatty(),
    )
    print(render_check(report))
    save_history(report, args.history)
    again = rejudge(args.history)
    differences = _differences(report, again)
    print(f"  {'history':<11} {args.history}: {sum(1 for _ in args.history.open())} lines")
    print(
        f"  {'re-judged':<11} {again.headline()}: "
        + ("the same verdict" if not differences else f"DIFFERENT: {', '.join(differences)}")
    )
    plot.plot(report, args.plot)
    print(f"  {'timeline':<11} {args.plot}")
    missing = sorted(set(args.faults) - faults.kinds_seen(report.history.faults))
    if missing:
        print(f"  {'missing':<11} not injected: {', '.join(missing)}")
    if differences:
        return 1
    return report.exit_code if not missing else arguments.EXIT_CANNOT_RUN


def _differences(live: CheckReport, again: CheckReport) -> list[str]:
    first, second = check_json(live), check_json(again)
    return [key for key in SAME if first[key] != second[key]]


if __name__ == "__main__":
    sys.exit(main())
