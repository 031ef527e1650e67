"""`make check`: the consistency checker against a freshly started local stack.

Starts a stack of its own on free ports (so it never touches one you run), fires the checker
at it through the balancer, prints the verdict and stops the stack. Exit code: the checker's.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
from pathlib import Path

from abacus.harness.check import run_check
from abacus.harness.report import render_check
from abacus.local_stack import LocalStack, StackConfig, StackError

# A throwaway stack needs a throwaway token: reset is how the check starts from 0.
TOKEN = secrets.token_hex(16)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="abacus-check-") as directory:
        config = StackConfig.on_free_ports(
            Path(directory), rate_limit=False, node_env={"ABACUS_ADMIN_TOKEN": TOKEN}
        )
        stack = LocalStack(config)
        try:
            print(f"starting a local stack at {config.url} ...", file=sys.stderr, flush=True)
            stack.up()
            report = run_check(
                config.url,
                adds=args.requests,
                concurrency=args.concurrency,
                reset=True,
                admin_token=TOKEN,
                progress=sys.stderr.isatty(),
            )
            print(render_check(report))
            return report.exit_code
        except StackError as exc:
            print(f"check_stack.py: {exc}", file=sys.stderr)
            return 2
        finally:
            stack.down()


if __name__ == "__main__":
    sys.exit(main())
