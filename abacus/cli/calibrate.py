"""`make calibrate`: measure what the commit simulation needs, here, and write it as JSON.

    python scripts/calibrate.py [--output abacus/harness/calibration.json] [--reps 300]
                                [--no-node]

Starts a redis-server of its own (the project's redis.conf, a free port, a temporary directory)
and, unless --no-node, one Gunicorn node with one worker against it; stops both by pid.
Prints the figures; exit status 0 measured, 2 could not run (no redis-server, say).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import tempfile
from pathlib import Path

from abacus.harness import node_calibration, sim_calibration
from abacus.harness.sim_params import DEFAULT_PATH, Calibration, Linear
from abacus.local_stack.errors import StackError

COMMAND = "make calibrate"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="calibrate", description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_PATH, help="the JSON file")
    parser.add_argument("--reps", type=int, default=300, help="repetitions per measurement")
    parser.add_argument(
        "--no-node",
        action="store_true",
        help="measure Redis only; keep the node's CPU figures of the existing file",
    )
    return parser.parse_args(argv)


def calibrate(reps: int, with_node: bool, previous: Calibration | None) -> Calibration:
    with (
        tempfile.TemporaryDirectory(prefix="abacus-calibrate-") as scratch,
        sim_calibration.own_redis(Path(scratch)) as (redis, port),
    ):
        figures = sim_calibration.measure_redis(redis.pid, port, reps, max(30, reps // 3))
        if with_node or previous is None:
            plan = node_calibration.plan_cost()
            node = node_calibration.measure_node(port, plan.per_add)
            node_figures = (node.request_s, node.attempt_s, node.attempt_add_s)
            node_runs = [list(run) for run in node.runs]
        else:
            node_figures = (
                previous.node_request_s,
                previous.node_attempt_s,
                previous.node_attempt_add_s,
            )
            node_runs = previous.provenance.get("node_runs", [])
    provenance = {
        "measured": datetime.date.today().isoformat(),
        "command": COMMAND,
        "machine": f"{platform.machine()}, {platform.system()} {platform.release()}",
        "redis_table": figures.table,
        "node_runs": node_runs,
    }
    request_s, attempt_s, attempt_add_s = node_figures
    return Calibration(
        rtt_s=figures.rtt_s,
        redis_read=figures.read,
        redis_commit=figures.commit,
        redis_discarded=figures.discarded,
        fsync=figures.fsync,
        node_request_s=request_s,
        node_attempt_s=attempt_s,
        node_attempt_add_s=attempt_add_s,
        provenance=provenance,
    )


def describe(cal: Calibration) -> str:
    def us(line: Linear) -> str:
        return f"{line.fixed * 1e6:7.1f} us + {line.per_add * 1e6:6.2f} us/add"

    return "\n".join(
        [
            f"loopback round trip        {cal.rtt_s * 1e6:7.1f} us",
            f"Redis round trip 1         {us(cal.redis_read)}",
            f"Redis round trip 2 applied {us(cal.redis_commit)}",
            f"Redis round trip 2 discard {us(cal.redis_discarded)}",
            f"fsync per iteration        {us(cal.fsync)}",
            f"worker CPU per request     {cal.node_request_s * 1e6:7.1f} us",
            f"worker CPU per attempt     {cal.node_attempt_s * 1e6:7.1f} us"
            f" + {cal.node_attempt_add_s * 1e6:6.2f} us/add",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    previous = Calibration.load(args.output) if args.output.is_file() else None
    try:
        calibration = calibrate(args.reps, not args.no_node, previous)
    except (StackError, RuntimeError) as exc:
        print(f"calibrate: could not run: {exc}", file=sys.stderr)
        return 2
    calibration.save(args.output)
    print(describe(calibration))
    print(f"written to {args.output}")
    return 0
