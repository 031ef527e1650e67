"""`make check`: the consistency checker against a freshly started local stack.

Starts a stack of its own on free ports (so it never touches one you run), fires the checker
at it through the balancer, prints the verdict and stops the stack. Exit code: the checker's.
"""

from __future__ import annotations

import argparse
import sys

from abacus.cli.throwaway_stack import TOKEN, throwaway_stack
from abacus.harness.check import run_check
from abacus.harness.report import render_check
from abacus.local_stack import StackError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    try:
        with throwaway_stack("abacus-check-") as stack:
            report = run_check(
                stack.config.url,
                adds=args.requests,
                concurrency=args.concurrency,
                reset=True,
                admin_token=TOKEN,
                progress=sys.stderr.isatty(),
            )
    except StackError as exc:
        print(f"check_stack.py: {exc}", file=sys.stderr)
        return 2
    print(render_check(report))
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
