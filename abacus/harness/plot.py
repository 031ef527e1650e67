"""The timeline picture: throughput, latency and outcomes over time, with the faults marked.

matplotlib is a development dependency (requirements-dev.txt), not the node image's nor the
commands' own: `require()` says how to install it before a run is spent without it. The figure
is drawn without pyplot (no global state, no display), straight to a PNG.
"""

from __future__ import annotations

import importlib.util
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING

from abacus.harness.check import CheckReport
from abacus.harness.faults import FaultKind
from abacus.harness.history import Kind, Outcome
from abacus.harness.timeline import Second, seconds, seen_end, seen_outcome

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

INSTALL_HINT = "--plot needs matplotlib: pip install matplotlib (make setup installs it)"

# One colour per fault kind, the same in every picture.
FAULT_COLOURS = {
    FaultKind.KILL_NODE: "#d62728",
    FaultKind.RESTART_NODE: "#9467bd",
    FaultKind.PAUSE_NODE: "#ff7f0e",
    FaultKind.KILL_REDIS: "#8c564b",
    FaultKind.PAUSE_REDIS: "#e377c2",
    FaultKind.CUT_CONNECTIONS: "#17becf",
}
OUTCOME_COLOURS = {Outcome.OK: "#2ca02c", Outcome.UNKNOWN: "#ffbf00", Outcome.FAILED: "#d62728"}


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def require() -> None:
    """Raise RuntimeError (with how to install it) when matplotlib is missing."""
    if not available():
        raise RuntimeError(INSTALL_HINT)


def plot(report: CheckReport, path: Path, width: float = 1.0) -> None:
    """Draw the run's timeline into `path` (PNG)."""
    require()
    from matplotlib.figure import Figure  # noqa: PLC0415 - optional, imported only to draw

    buckets = seconds(report.history, width)
    figure = Figure(figsize=(12, 8), dpi=100, layout="constrained")
    throughput, latency, outcomes = figure.subplots(3, 1, sharex=True)
    figure.suptitle(_title(report), fontsize=10)
    times = [b.start + b.width / 2 for b in buckets]

    throughput.plot(times, [b.ops_per_s for b in buckets], color="#1f77b4", label="all answers")
    throughput.plot(
        times,
        [b.adds[Outcome.OK] / b.width for b in buckets],
        color=OUTCOME_COLOURS[Outcome.OK],
        label="adds acknowledged",
    )
    throughput.set_ylabel("operations / s")
    throughput.legend(loc="lower left", fontsize=8)

    _latency_points(latency, report)
    for q, style in ((50, "-"), (99, "--")):
        # NaN where no add was answered: the line breaks there instead of bridging the gap.
        values = [math.nan if (v := b.latency_ms(q)) is None else v for b in buckets]
        latency.plot(times, values, style, color="#1f77b4", label=f"add p{q}")
    latency.set_yscale("log")
    latency.set_ylabel("add latency (ms)")
    latency.legend(loc="upper left", fontsize=8)

    _outcome_bars(outcomes, times, buckets)
    outcomes.set_ylabel("adds answered / s")
    outcomes.set_xlabel("seconds since the run began")
    outcomes.legend(loc="lower left", fontsize=8)

    _mark_faults(report, [throughput, latency, outcomes])
    path.parent.mkdir(parents=True, exist_ok=True)
    save_small(figure, path)


def save_small(figure: Figure, path: Path) -> None:
    """A PNG of 256 colours: the picture has a dozen, and it is a third of the size (it is
    kept in docs/)."""
    from PIL import Image  # noqa: PLC0415 - matplotlib's own dependency, needed only here

    drawn = io.BytesIO()
    figure.savefig(drawn, format="png")
    drawn.seek(0)
    with Image.open(drawn) as image:
        image.convert("RGB").quantize(256).save(path, format="PNG", optimize=True)


def _latency_points(axes: Axes, report: CheckReport) -> None:
    """Every add as a faint dot at its answer, coloured by how it was first answered."""
    origin = report.history.origin
    for outcome in (Outcome.OK, Outcome.UNKNOWN, Outcome.FAILED):
        adds = [
            op
            for op in report.history.of(Kind.ADD)
            if seen_outcome(op) is outcome and not math.isnan(op.start)
        ]
        axes.scatter(
            [seen_end(op) - origin for op in adds],
            [(seen_end(op) - op.start) * 1000 for op in adds],
            s=2,
            alpha=0.3,
            color=OUTCOME_COLOURS[outcome],
            linewidths=0,
            rasterized=True,
        )


def _outcome_bars(axes: Axes, times: list[float], buckets: list[Second]) -> None:
    bottom = [0.0] * len(buckets)
    for outcome in (Outcome.OK, Outcome.UNKNOWN, Outcome.FAILED):
        heights = [b.adds[outcome] / b.width for b in buckets]
        widths = [b.width for b in buckets]
        axes.bar(
            times,
            heights,
            width=widths,
            bottom=bottom,
            color=OUTCOME_COLOURS[outcome],
            label=outcome.value,
            linewidth=0,
        )
        bottom = [a + b for a, b in zip(bottom, heights, strict=True)]


def _mark_faults(report: CheckReport, panels: list[Axes]) -> None:
    origin = report.history.origin
    for panel in panels:
        for event in report.history.faults:
            colour = FAULT_COLOURS[event.kind]
            # The fault held (solid), then the recovery until the stack was healthy (lighter).
            panel.axvspan(event.start - origin, event.recover - origin, color=colour, alpha=0.25)
            panel.axvspan(event.recover - origin, event.end - origin, color=colour, alpha=0.1)
    top = panels[0]
    for i, event in enumerate(report.history.faults):
        # Two rows of labels, alternating: neighbouring faults' labels would overlap in one.
        top.annotate(
            f"{event.kind.value}\n{event.target}",
            xy=(event.start - origin, 1.0 - 0.16 * (i % 2)),
            xycoords=("data", "axes fraction"),
            xytext=(2, -2),
            textcoords="offset points",
            va="top",
            fontsize=7,
            color=FAULT_COLOURS[event.kind],
        )


def _title(report: CheckReport) -> str:
    verdict = report.verdict
    return (
        f"{report.headline()}\n{verdict.adds:,} adds ({verdict.acknowledged:,} acknowledged, "
        f"{verdict.unknown:,} unknown after resolving) at concurrency {report.concurrency}, "
        f"{len(report.history.faults)} faults"
    )
