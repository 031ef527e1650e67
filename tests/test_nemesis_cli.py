"""The nemesis from the command line, as a user runs it: `abacus-check --stack-dir --nemesis`
against a running stack, and `make nemesis`'s script on a stack of its own (briefly here; the
full minute is `make nemesis` itself, not part of the tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from abacus.local_stack import LocalStack, processes
from tests.api_client import ADMIN_TOKEN
from tests.conftest import StackFactory
from tests.script_runner import run_script

pytestmark = pytest.mark.stack

PNG = b"\x89PNG\r\n\x1a\n"


def test_abacus_check_breaks_the_stack_its_state_names(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    stack = make_stack(nodes=2)
    old = stack.processes["node-1"]
    history, picture = tmp_path / "history.jsonl", tmp_path / "timeline.png"
    done = run_script(
        "check_consistency.py",
        *("--stack-dir", str(stack.dir), "--nemesis", "kill-node", "--nemesis-interval", "0"),
        *("--duration", "1", "--concurrency", "16", "--reset", "--admin-token", ADMIN_TOKEN),
        *("--save-history", str(history), "--plot", str(picture), "--json"),
    )
    # The command restarted node-1 and wrote the stack's state: that is what runs now (and
    # what the fixture's `down` stops).
    now = LocalStack.load(stack.dir)
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(done.stdout)
    assert data["url"] == stack.config.url, "the URL came from the stack's state"
    (fault,) = data["faults"]
    assert fault["fault"] == "kill-node"
    assert fault["target"] == "node-1"
    assert fault["error"] is None
    assert f"(pid {old.pid})" in fault["detail"]
    assert now.processes["node-1"].pid != old.pid
    assert processes.is_alive(now.processes["node-1"])
    assert not processes.is_alive(old)
    assert data["verdict"] == "consistent"

    lines = [json.loads(line) for line in history.read_text().splitlines()]
    (saved,) = [line for line in lines if line["type"] == "fault"]
    assert saved["fault"] == "kill-node"
    # The load covered the fault: it went on until the stack was healthy again.
    assert max(line["complete"] for line in lines if line["type"] == "op") >= saved["end"]
    adds = [line for line in lines if line.get("kind") == "add"]
    assert adds, "the history holds the adds"
    assert all(line["key"] for line in adds), "with faults, adds carry keys by default"
    assert picture.read_bytes().startswith(PNG)

    again = run_script("check_consistency.py", "--judge", str(history), "--json")
    assert again.returncode == 0, again.stderr
    rejudged = json.loads(again.stdout)
    for key in ("verdict", "message", "adds", "reads", "sum", "checks", "faults"):
        assert rejudged[key] == data[key], key


def test_make_nemesis_runs_rejudges_and_draws(tmp_path: Path) -> None:
    history, picture = tmp_path / "h" / "history.jsonl", tmp_path / "timeline.png"
    done = run_script(
        "nemesis_stack.py",
        *("--duration", "1", "--interval", "0", "--faults", "cut-connections"),
        *("--history", str(history), "--plot", str(picture)),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verdict     CONSISTENT" in done.stdout
    assert "cut-connections redis" in done.stdout
    assert ": the same verdict" in done.stdout
    assert history.read_text().startswith('{"type": "run"')
    assert picture.read_bytes().startswith(PNG)
