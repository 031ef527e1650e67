"""The contention window with other constants, in the simulation only: which would keep retries
per add flat as lanes are added without costing adds/s (docs/scaling.md has the findings)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import partial

from abacus.harness import sim_report
from abacus.harness.sim_pacing import Pacing, Variant, WindowConstants
from abacus.harness.sim_params import Calibration
from abacus.harness.simulation import Config, Result, simulate

VARIANTS: dict[str, WindowConstants] = {
    "as shipped": WindowConstants(),
    "pause <= 5 ms": WindowConstants(max_pause_s=0.005),
    "pause <= 20 ms": WindowConstants(max_pause_s=0.020),
    "level <= 8": WindowConstants(max_level=8.0),
    "shrink 0.5": WindowConstants(shrink=0.5),
}


def pacing(constants: WindowConstants) -> partial[Pacing]:
    def make(rng: random.Random, constants: WindowConstants) -> Pacing:
        return Variant(rng, constants)

    return partial(make, constants=constants)


def run(
    nodes: Sequence[int], clients: int, seed: int, measure_s: float, cal: Calibration
) -> dict[str, list[Result]]:
    results: dict[str, list[Result]] = {}
    for name, constants in VARIANTS.items():
        results[name] = [
            simulate(
                Config(
                    n,
                    1,
                    clients=clients,
                    policy=name,
                    seed=seed,
                    measure_s=measure_s,
                    pacing=pacing(constants),
                ),
                cal,
            )
            for n in nodes
        ]
    return results


def report(
    nodes: Sequence[int], clients: int, seed: int, measure_s: float, cal: Calibration
) -> str:
    results = run(nodes, clients, seed, measure_s, cal)
    return sim_report.table([r for rows in results.values() for r in rows])
