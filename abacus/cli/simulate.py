"""`make simulate`: the commit simulation, before and after the lanes take turns.

    python scripts/simulate.py [--nodes 3,6,12,25,50,100] [--concurrency 256] [--seed 1]
                               [--measure 30] [--turn-wait 0.1] [--calibration FILE]
                               [--plot docs/scaling.png] [--no-plot] [--variants]

Runs each node count with one worker per node, and the configurations measured on the real
stack (3x2, 6x1, 12x1, 3x4), optimistic ("before") and taking turns ("turns", BLPOP waiting up
to --turn-wait seconds); prints the table, the measured points beside their prediction, and draws
the curves. --variants also runs the turn with other waits (abacus/harness/sim_variants.py).
Deterministic for a seed; no servers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from abacus.harness import arguments, plot, sim_report, sim_variants
from abacus.harness.sim_engine import TURN_WAIT_S
from abacus.harness.sim_params import DEFAULT_PATH, Calibration
from abacus.harness.simulation import POLICIES, Config, Result, simulate

DEFAULT_NODES = (3, 6, 12, 25, 50, 100)
MEASURED_SHAPES = ((3, 2), (6, 1), (12, 1), (3, 4))
DEFAULT_PLOT = Path("docs/scaling.png")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="simulate", description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=arguments.concurrencies, default=DEFAULT_NODES)
    parser.add_argument("--concurrency", type=arguments.positive_int, default=256)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--measure", type=arguments.positive_float, default=30.0, help="simulated seconds"
    )
    parser.add_argument(
        "--turn-wait", type=arguments.positive_float, default=TURN_WAIT_S, help="T, seconds"
    )
    parser.add_argument("--calibration", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--plot", type=Path, default=DEFAULT_PLOT)
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--variants", action="store_true")
    return parser.parse_args(argv)


def run(shapes: list[tuple[int, int]], args: argparse.Namespace, cal: Calibration) -> list[Result]:
    results = []
    for policy in POLICIES:
        for nodes, workers in shapes:
            config = Config(
                nodes,
                workers,
                clients=args.concurrency,
                policy=policy,
                seed=args.seed,
                measure_s=args.measure,
                turn_wait_s=args.turn_wait,
            )
            results.append(simulate(config, cal))
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    cal = Calibration.load(args.calibration)
    curve = run([(n, 1) for n in args.nodes], args, cal)
    print(
        f"concurrency {args.concurrency}, 1 worker per node, seed {args.seed}, "
        f"{args.measure:g} s measured, T {args.turn_wait:g} s"
    )
    print(sim_report.table(curve))
    measured = run(list(MEASURED_SHAPES), args, cal)
    print("\nthe shapes measured on the real stack")
    print(sim_report.table(measured))
    if args.concurrency == sim_report.MEASURED_CONCURRENCY:
        print("\nmeasured (2 shared cores, no turns) and simulated (a CPU per worker), before")
        print(sim_report.validation(measured))
    if args.variants:
        print("\nthe turn with other waits T")
        print(sim_variants.report(args.nodes, args.concurrency, args.seed, args.measure, cal))
    if not args.no_plot and plot.available():
        curves = {policy: [r for r in curve if r.config.policy == policy] for policy in POLICIES}
        title = (
            f"simulated, concurrency {args.concurrency}, seed {args.seed}, T {args.turn_wait:g} s "
            f"({args.calibration.name}: fsync {cal.fsync.fixed * 1e6:.0f} us, "
            f"worker {cal.node_request_s * 1e6:.0f} us/request)"
        )
        sim_report.draw(curves, args.plot, title)
        print(f"\ncurves drawn into {args.plot}")
    return 0
