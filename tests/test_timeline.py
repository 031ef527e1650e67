"""The run over time: second-by-second buckets, what the clients saw during each fault, the
report's fault lines, and the timeline picture (matplotlib). No stack."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from abacus.cli import check_consistency
from abacus.harness import plot
from abacus.harness.check import CheckReport, run_check
from abacus.harness.faults import FaultEvent, FaultKind
from abacus.harness.history import History, Operation, Outcome, add, read
from abacus.harness.judge import judge
from abacus.harness.report import check_json, render_check
from abacus.harness.timeline import during, seconds
from tests.faulty_servers import Correct, serve

PNG = b"\x89PNG\r\n\x1a\n"
ORIGIN = 100.0  # a history's clock need not start at 0: times count from its origin


def at(op: Operation) -> Operation:
    op.start += ORIGIN
    op.end += ORIGIN
    if op.first_end is not None:
        op.first_end += ORIGIN
    return op


def resolved_later(op: Operation, first_end: float) -> Operation:
    """An add first answered unknown at `first_end`, its outcome learnt afterwards."""
    op.first_outcome, op.first_end, op.resolved = Outcome.UNKNOWN, first_end, True
    return op


PAUSE = FaultEvent(FaultKind.PAUSE_REDIS, "redis", ORIGIN + 1.0, ORIGIN + 1.8, ORIGIN + 2.0, "")
HISTORY = History(
    Decimal(0),
    [
        at(add(1, 1, 0.0, 0.2, new_sum=1)),
        at(read(2, 0.1, 0.3, 0)),
        at(resolved_later(add(3, 10, 0.5, 9.0, new_sum=11), first_end=1.5)),
        at(add(4, 100, 1.1, 1.9, outcome=Outcome.FAILED)),
        at(add(5, 1000, 2.2, 2.4, new_sum=1011)),
    ],
    Decimal(1011),
    faults=[PAUSE],
    origin=ORIGIN,
)


def report() -> CheckReport:
    return CheckReport("http://x", HISTORY, judge(HISTORY), 4, 2.5, True)


def test_buckets_count_what_the_clients_saw_when_they_saw_it() -> None:
    buckets = seconds(HISTORY)
    assert [b.start for b in buckets] == [0.0, 1.0, 2.0]
    assert buckets[0].adds == Counter({Outcome.OK: 1})
    assert buckets[0].reads == Counter({Outcome.OK: 1})
    # #3 counts as unknown at 1.5 s, as first answered, though it was settled at 9 s.
    assert buckets[1].adds == Counter({Outcome.UNKNOWN: 1, Outcome.FAILED: 1})
    assert buckets[2].adds == Counter({Outcome.OK: 1})
    assert buckets[1].add_latency_ms == pytest.approx((1000.0, 800.0))
    # The last bucket ends with the last answer (2.4 s): its rate is per 0.4 s.
    assert buckets[2].width == pytest.approx(0.4)
    assert buckets[2].ops_per_s == pytest.approx(2.5)


def test_what_the_adds_met_during_a_fault() -> None:
    assert during(HISTORY, PAUSE) == Counter({Outcome.UNKNOWN: 1, Outcome.FAILED: 1})


def test_the_report_puts_each_fault_on_the_timeline() -> None:
    text = render_check(report())
    assert "faults      1 injected, each recovered" in text
    assert "   1.0    1.8     2.0  pause-redis" in text
    assert "adds meanwhile: 0 ok, 1 failed, 1 unknown" in text
    (fault,) = check_json(report())["faults"]
    assert fault["start_s"] == 1.0
    assert fault["end_s"] == 2.0
    assert fault["adds_meanwhile"] == {"failed": 1, "unknown": 1}


def test_a_fault_that_did_not_go_as_planned_leaves_the_run_incomplete() -> None:
    broken = FaultEvent(FaultKind.KILL_NODE, "node-1", 101.0, 102.0, 103.0, "", "not healthy")
    h = History(HISTORY.start_sum, HISTORY.operations, HISTORY.final_sum, [broken], ORIGIN)
    failed = CheckReport("http://x", h, judge(h), 4, 2.5, True)
    assert failed.verdict.consistent
    assert failed.exit_code == 2
    assert failed.headline().startswith("INCOMPLETE: no violation found, but faults did not")
    assert "ERROR: not healthy" in render_check(failed)


def test_the_picture_is_a_png_with_the_faults(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "timeline.png"
    plot.plot(report(), path)
    assert path.read_bytes().startswith(PNG)


def test_cli_plots_a_run(tmp_path: Path) -> None:
    path = tmp_path / "run.png"
    with serve(Correct()) as url:
        code = check_consistency.main(
            ["--url", url, "--requests", "40", "--concurrency", "4", "--reset", "--plot", str(path)]
        )
    assert code == 0
    assert path.read_bytes().startswith(PNG)


def test_cli_without_matplotlib_says_how_to_get_it_before_firing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(plot, "available", lambda: False)
    with serve(Correct()) as url:
        code = check_consistency.main(
            ["--url", url, "--json", "--reset", "--plot", str(tmp_path / "x.png")]
        )
        assert code == 2
        # Nothing was fired: the sum is still untouched by a reset or an add.
        assert run_check(url, adds=1, concurrency=1).verdict.start_sum == 0
    assert "pip install matplotlib" in json.loads(capsys.readouterr().out)["error"]
