"""Histories as files: saved as JSON lines, read back exactly, re-judged without any server.

A failing run is a fixture: tests/histories/ holds one, and every faulty server's saved history
must still fail when judged from the file alone.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from abacus.harness.check import rejudge, run_check, save_history
from abacus.harness.faults import FaultEvent, FaultKind
from abacus.harness.history import Kind, Outcome
from abacus.harness.history_file import HistoryFileError, load
from abacus.harness.judge import APPLIED_TWICE
from tests.faulty_servers import FAULTY, Correct, FencesSomeKeys, serve
from tests.script_runner import run_script

FIXTURES = Path(__file__).resolve().parent / "histories"
ADDS = 120
# Every field of an operation a history file keeps as it was (times: see the test).
FIELDS = "kind number key outcome result status error node_id request_id replayed resolved"
FIELDS += " first_outcome body"


def test_a_saved_history_reads_back_exactly(tmp_path: Path) -> None:
    with serve(FencesSomeKeys(every=5)) as url:
        report = run_check(url, adds=ADDS, concurrency=4, reset=True, resolve_unknown=True)
    origin = report.history.origin
    report.history.faults.append(
        FaultEvent(FaultKind.PAUSE_NODE, "node-2", origin + 0.1, origin + 0.2, origin + 0.3, "x")
    )
    path = tmp_path / "history.jsonl"
    save_history(report, path)
    history, run = load(path)

    assert run.url == report.url
    assert run.concurrency == 4
    assert run.elapsed == report.elapsed
    assert history.start_sum == report.history.start_sum
    assert history.final_sum == report.history.final_sum
    assert len(history.operations) == len(report.history.operations)
    for saved, live in zip(history.operations, report.history.operations, strict=True):
        assert saved.op_id == live.op_id
        # Times count from the run's start, at full precision.
        assert saved.start == live.start - origin
        assert saved.end == live.end - origin
        assert (saved.first_end is None) == (live.first_end is None)
        for name in FIELDS.split():
            assert getattr(saved, name) == getattr(live, name), (name, saved, live)
    resolved = [op for op in history.operations if op.resolved]
    assert resolved, "every fifth key was fenced, then asked again"
    assert {op.first_outcome for op in resolved} == {Outcome.UNKNOWN}
    assert all(op.body and op.request_id for op in history.of(Kind.ADD))
    (fault,) = history.faults
    assert (fault.kind, fault.target, fault.detail) == (FaultKind.PAUSE_NODE, "node-2", "x")
    assert math.isclose(fault.start, 0.1)
    assert math.isclose(fault.end, 0.3)


def test_each_line_is_one_operation_or_fault_in_time_order(tmp_path: Path) -> None:
    with serve(Correct()) as url:
        report = run_check(url, adds=40, concurrency=4, reset=True)
    origin = report.history.origin
    report.history.faults.append(
        FaultEvent(FaultKind.KILL_REDIS, "redis", origin + 0.001, origin + 0.002, origin + 1, "")
    )
    path = tmp_path / "history.jsonl"
    save_history(report, path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0]["type"] == "run"
    body = lines[1:]
    assert {line["type"] for line in body} == {"op", "fault"}
    assert len(body) == len(report.history.operations) + 1
    times = [line["invoke"] if line["type"] == "op" else line["start"] for line in body]
    assert times == sorted(times)
    assert all(isinstance(line["number"], str) for line in body if line.get("kind") == "add")


@pytest.mark.parametrize("fault", sorted(FAULTY))
def test_a_faulty_servers_saved_history_still_fails_from_the_file(
    fault: str, tmp_path: Path
) -> None:
    with serve(FAULTY[fault]()) as url:
        live = run_check(url, adds=ADDS * 2, concurrency=8, reset=True, seed=2)
    assert live.verdict.fault == fault
    path = tmp_path / "failing.jsonl"
    save_history(live, path)
    again = rejudge(path)
    assert again.exit_code == 1
    assert again.verdict.fault == fault
    assert again.verdict.message() == live.verdict.message()
    assert again.verdict.fault_counts == live.verdict.fault_counts


def test_the_fixture_of_a_failing_run_fails() -> None:
    """A history saved from a server that applied every tenth add twice, kept as a fixture:
    the format stays readable, and the verdict stays the same."""
    report = rejudge(FIXTURES / "applied-twice.jsonl")
    assert report.exit_code == 1
    assert report.verdict.fault == APPLIED_TWICE
    # The total names the three adds counted again; the order check names each where it was.
    assert report.verdict.fault_counts == {APPLIED_TWICE: 4}
    assert "adds #12 (1029360268883704930), #25 (" in report.verdict.message()


def test_cli_saves_and_re_judges_a_failing_run(tmp_path: Path) -> None:
    path = tmp_path / "failing.jsonl"
    with serve(FAULTY[APPLIED_TWICE]()) as url:
        live = run_script(
            "check_consistency.py",
            *("--url", url, "--requests", str(ADDS * 2), "--concurrency", "8", "--reset"),
            *("--save-history", str(path), "--json"),
        )
    assert live.returncode == 1, live.stderr
    again = run_script("check_consistency.py", "--judge", str(path), "--json")
    assert again.returncode == 1, again.stderr
    first, second = json.loads(live.stdout), json.loads(again.stdout)
    assert second["judged_from"] == str(path)
    for key in ("verdict", "fault", "message", "violations", "adds", "reads", "sum", "checks"):
        assert second[key] == first[key], key
    human = run_script("check_consistency.py", "--judge", str(path))
    assert human.returncode == 1
    assert f"re-judged from {path}" in human.stdout


def test_a_file_that_is_no_history_cannot_be_judged(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text(
        (FIXTURES / "applied-twice.jsonl").read_text().splitlines()[0] + "\n{not json\n"
    )
    with pytest.raises(HistoryFileError, match=r"broken.jsonl:2"):
        load(path)
    done = run_script("check_consistency.py", "--judge", str(path), "--json")
    assert done.returncode == 2
    assert "broken.jsonl:2" in json.loads(done.stdout)["error"]


def test_judge_refuses_options_that_would_fire(tmp_path: Path) -> None:
    done = run_script(
        "check_consistency.py", "--judge", str(tmp_path / "x.jsonl"), "--url", "http://x"
    )
    assert done.returncode == 2
    assert "--judge re-judges a file" in done.stderr
