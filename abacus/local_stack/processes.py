"""Child processes of the stack: each in its own session, logging to a file, signalled by pid.

A terminal's Ctrl-C goes to its whole foreground process group, and SIGINT means a *quick* stop
to Gunicorn and nginx. In sessions of their own the children never see it; the stack sends each
the signal that stops it gracefully, in order.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Process:
    name: str
    pid: int
    # Start time in clock ticks since boot (Linux): tells a live child from a recycled pid.
    started: int | None

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "pid": self.pid, "started": self.started}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Process:
        started = data.get("started")
        return cls(str(data["name"]), int(str(data["pid"])), int(str(started)) if started else None)


def start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: fields resume after the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[19])


# The Popen objects of children this process started: kept so that they are reaped through
# Popen (which then does not warn that they outlived it) rather than left as zombies.
_children: dict[int, subprocess.Popen[bytes]] = {}


def spawn(
    name: str, argv: Sequence[str], log_path: Path, env: Mapping[str, str], cwd: Path
) -> Process:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        child = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
    _children[child.pid] = child
    return Process(name, child.pid, start_time(child.pid))


def running_children() -> list[subprocess.Popen[bytes]]:
    """The children this process started and has not yet seen exit."""
    return [child for child in _children.values() if child.poll() is None]


def _reap(pid: int) -> None:
    child = _children.get(pid)
    if child is not None:
        if child.poll() is not None:
            del _children[pid]
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def is_alive(process: Process) -> bool:
    _reap(process.pid)
    try:
        os.kill(process.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    current = start_time(process.pid)
    if process.started is not None and current is not None and current != process.started:
        return False  # the pid now belongs to another process
    with contextlib.suppress(OSError):
        if Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            _reap(process.pid)  # it died since the first look: collect it now
            # A thread group's leader shows Z while its other threads still finish (redis-server's
            # background threads closing its files): a child of ours is gone once it is reaped.
            return process.pid in _children
    return True


def signal_process(process: Process, signum: int) -> bool:
    if not is_alive(process):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signum)
    return True


def signal_group(process: Process, signum: int) -> bool:
    """Signal the child's whole process group (it leads its own session): master and workers."""
    if not is_alive(process):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)
    return True


def wait_gone(process: Process, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(process):
            return True
        time.sleep(0.05)
    return not is_alive(process)


def stop(process: Process, signum: int, timeout: float) -> None:
    """Ask gracefully with `signum`; after `timeout`, SIGKILL the whole group."""
    stop_all([process], signum, timeout)


def stop_all(group: Sequence[Process], signum: int, timeout: float) -> None:
    """Signal all at once (they stop in parallel), then wait; SIGKILL what outlives `timeout`."""
    signalled = [p for p in group if signal_process(p, signum)]
    deadline = time.monotonic() + timeout
    for process in signalled:
        if not wait_gone(process, max(0.0, deadline - time.monotonic())):
            signal_group(process, signal.SIGKILL)
            wait_gone(process, 5)
