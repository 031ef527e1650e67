"""What the command-line scripts share: argument types with a clear message for a bad value, the
options that name a server, and the "could not run" exit."""

from __future__ import annotations

import argparse
import json
import os
import sys

EXIT_CANNOT_RUN = 2


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text}")
    return value


def concurrencies(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of integers: {text}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"concurrencies must be positive: {text}")
    return values


def add_server_options(
    parser: argparse.ArgumentParser, *, reset_help: str, url_required: bool = True
) -> None:
    """--url, --reset, --admin-token and --json, as every script that talks to a server has them
    (--url optional for a script that can learn the URL otherwise, and then says so itself)."""
    parser.add_argument("--url", required=url_required, help="base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--reset", action="store_true", help=reset_help)
    parser.add_argument(
        "--admin-token", help="bearer token for --reset (default: $ABACUS_ADMIN_TOKEN)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")


def admin_token(args: argparse.Namespace) -> str | None:
    token: str | None = args.admin_token or os.environ.get("ABACUS_ADMIN_TOKEN")
    return token


def cannot_run(prog: str, reason: str, *, as_json: bool, **fields: str) -> int:
    """Report why a script could not run (as JSON too with --json); its exit status."""
    if as_json:
        print(json.dumps({**fields, "error": reason, "exit_code": EXIT_CANNOT_RUN}))
    print(f"{prog}: cannot run: {reason}", file=sys.stderr)
    return EXIT_CANNOT_RUN
