"""`stack.py up` in the foreground and a node's start, as a person runs them: signals and bad
settings end in a clean stop and a one-line message, never a traceback or leftover processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from abacus.local_stack import StackConfig, processes
from abacus.local_stack.processes import Process
from abacus.local_stack.stack import GUNICORN_CONF
from tests.waiting import wait_until

# The repository: the working directory of what a test starts, so that `tests.*` imports.
ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.stack


def test_more_signals_while_stopping_do_not_cut_the_stop_short(tmp_path: Path) -> None:
    config = StackConfig.on_free_ports(tmp_path / "stack", nodes=2)
    up = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "scripts" / "stack.py"),
            "up",
            "--nodes",
            "2",
            "--port",
            str(config.port),
            "--node-port",
            str(config.node_port),
            "--redis-port",
            str(config.redis_port),
            "--dir",
            str(config.dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    state = config.dir / "state.json"
    started: list[Process] = []
    left: list[Process] = []
    try:
        assert up.stdout is not None
        assert "Abacus is up" in up.stdout.readline(), "the stack started"
        started += [
            Process.from_json(p) for p in json.loads(state.read_text())["processes"].values()
        ]
        assert len(started) == 4, "Redis, two nodes, nginx"
        up.send_signal(signal.SIGINT)
        # The stop is under way (nginx goes first); these must not interrupt it.
        assert wait_until(lambda: not processes.is_alive(started[-1])), "nginx stopped"
        for extra in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            up.send_signal(extra)
        _, stderr = up.communicate(timeout=120)
    finally:
        if up.poll() is None:
            up.kill()
            up.communicate()
        left = [p for p in started if processes.is_alive(p)]
        processes.stop_all(left, signal.SIGKILL, 10)
    assert up.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert left == [], "everything was stopped"
    assert not state.exists()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PORT", "eighty", "abacus: PORT must be a whole number, got 'eighty'"),
        ("WEB_CONCURRENCY", "0", "abacus: WEB_CONCURRENCY must be at least 1, got 0"),
        ("ABACUS_ADMIN_TOKEN", "clé", "abacus: ABACUS_ADMIN_TOKEN must be visible ASCII"),
    ],
)
def test_a_bad_setting_stops_a_node_with_one_line(name: str, value: str, message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONF],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", name: value},
    )
    assert done.returncode == 1
    assert done.stderr.strip().startswith(message), done.stderr
    assert "Traceback" not in done.stderr
