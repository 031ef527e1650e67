"""The turn with other waits T (TURN_WAIT) than the node's default, in the simulation only: how
short a wait still keeps the lanes taking turns as lanes are added (docs/scaling.md has them)."""

from __future__ import annotations

from collections.abc import Sequence

from abacus.harness import sim_report
from abacus.harness.sim_params import Calibration
from abacus.harness.simulation import Config, Result, simulate

TURN_WAITS_S = (0.005, 0.02, 0.1)


def name(turn_wait_s: float) -> str:
    return f"turns, T {turn_wait_s * 1000:g} ms"


def run(
    nodes: Sequence[int], clients: int, seed: int, measure_s: float, cal: Calibration
) -> dict[str, list[Result]]:
    return {
        name(wait): [
            simulate(
                Config(
                    n,
                    1,
                    clients=clients,
                    policy="turns",
                    seed=seed,
                    measure_s=measure_s,
                    turn_wait_s=wait,
                ),
                cal,
            )
            for n in nodes
        ]
        for wait in TURN_WAITS_S
    }


def report(
    nodes: Sequence[int], clients: int, seed: int, measure_s: float, cal: Calibration
) -> str:
    results = run(nodes, clients, seed, measure_s, cal)
    return sim_report.table(
        [r for rows in results.values() for r in rows], label=lambda r: name(r.config.turn_wait_s)
    )
