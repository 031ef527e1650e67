"""`make calibrate` as a user runs it: a redis-server of its own on a free port, the figures the
simulation reads written as JSON. The node's figures are kept from the committed file
(--no-node), which keeps this to seconds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from abacus.harness.sim_params import DEFAULT_PATH, Calibration
from tests.script_runner import run_script

pytestmark = pytest.mark.stack

LINES = ("redis_read", "redis_commit", "redis_discarded", "fsync")


def test_calibration_writes_every_figure(tmp_path: Path) -> None:
    output = tmp_path / "calibration.json"
    shutil.copy(DEFAULT_PATH, output)
    done = run_script("calibrate.py", "--output", str(output), "--reps", "20", "--no-node")
    assert done.returncode == 0, done.stderr
    data = json.loads(output.read_text())
    for name in LINES:
        assert set(data[name]) == {"fixed", "per_add"}
        assert data[name]["fixed"] >= 0
        assert data[name]["per_add"] >= 0
    assert 0 < data["rtt_s"] < 0.01
    assert data["redis_commit"]["per_add"] > 0
    assert data["fsync"]["fixed"] > 0
    assert data["provenance"]["command"] == "make calibrate"
    assert [row["k"] for row in data["provenance"]["redis_table"]][:2] == [1, 2]
    calibration = Calibration.load(output)
    assert calibration.node_request_s == Calibration.load(DEFAULT_PATH).node_request_s
    assert "loopback round trip" in done.stdout
