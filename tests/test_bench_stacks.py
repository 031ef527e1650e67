"""`make bench`'s ceiling and baseline comparisons: the ceiling app on a real stack, the baseline
stack's nodes importing the other tree, and both comparisons end to end, briefly; no timing
asserted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from abacus.harness import baseline_tree
from abacus.harness.ceiling_app import CEILING_APP
from abacus.harness.client import AbacusClient
from abacus.harness.history import Outcome
from abacus.local_stack import LocalStack, StackConfig
from tests.script_runner import run_script

SPREAD_KEYS = {"min", "median", "max"}


@contextmanager
def running(directory: Path, **options: Any) -> Iterator[LocalStack]:
    """A small stack (one node, one worker) with these StackConfig options, stopped afterwards."""
    stack = LocalStack(StackConfig.on_free_ports(directory, nodes=1, workers=1, **options))
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


@pytest.mark.stack
def test_ceiling_app_answers_the_api_shape(tmp_path: Path) -> None:
    with running(tmp_path, app=CEILING_APP) as stack, AbacusClient(stack.config.url) as client:
        before = client.read()
        added = client.add(Decimal("2.5"))
        after = client.read()
    assert before.outcome is Outcome.OK
    assert before.value == 0
    assert added.outcome is Outcome.OK
    assert added.value == Decimal("2.5")
    assert after.outcome is Outcome.OK
    assert after.value == Decimal("2.5")


@pytest.mark.stack
def test_baseline_nodes_import_the_other_tree(tmp_path: Path) -> None:
    with baseline_tree.checked_out("HEAD") as tree:
        # Only a process that imports the tree's node app leaves this file there.
        marker = tree.path / "abacus" / "node" / "imported-here"
        main = tree.path / "abacus" / "node" / "main.py"
        main.write_text(
            main.read_text() + "\nimport pathlib\npathlib.Path(__file__).with_name('imported-here')"
            ".touch()\n"
        )
        assert baseline_tree.imported_from(tree.node_env()).is_relative_to(tree.path)
        with running(tmp_path, node_env=tree.node_env()) as stack:
            assert marker.exists()
            with AbacusClient(stack.config.url) as client:
                assert client.read().outcome is Outcome.OK
        kept = tree.path
    assert not kept.exists()  # removed afterwards


def test_an_unknown_ref_is_refused() -> None:
    with (
        pytest.raises(baseline_tree.BaselineError, match="names no commit"),
        baseline_tree.checked_out("no-such-ref-anywhere"),
    ):
        pass


def test_baseline_ref_goes_with_compare_baseline() -> None:
    done = run_script("bench_stacks.py", "--compare", "ceiling", "--baseline-ref", "HEAD")
    assert done.returncode == 2
    assert "--baseline-ref goes with --compare baseline" in done.stderr


def bench_stacks_json(*args: str) -> dict[str, Any]:
    done = run_script(
        "bench_stacks.py", *args, "--duration", "1", "--rounds", "1", "--concurrency", "4", "--json"
    )
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    assert data["rounds"] == 1
    for target in data["targets"]:
        (point,) = target["points"]
        for mode in ("add", "read"):
            assert set(point[mode]["per_s_spread"]) == SPREAD_KEYS
            assert set(point[mode]["p99_ms_spread"]) == SPREAD_KEYS
            assert point[mode]["per_s_spread"]["median"] == point[mode]["per_s"]
        assert target["sum"]["after"] > target["sum"]["before"]
    (row,) = data["comparison"]
    assert row["adds_per_s_ratio"] > 0
    assert {"non_2xx_a", "non_2xx_b"} <= set(row)
    return data


@pytest.mark.stack
def test_compare_ceiling_end_to_end() -> None:
    data = bench_stacks_json("--compare", "ceiling")
    assert "ceiling" in data["b"]


@pytest.mark.stack
def test_compare_baseline_end_to_end() -> None:
    data = bench_stacks_json("--compare", "baseline", "--baseline-ref", "HEAD")
    assert "the nodes of HEAD" in data["b"]
