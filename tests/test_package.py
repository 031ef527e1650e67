"""`pip install .` gives working commands and the client library: the wheel holds both packages
(abacus with its configuration files, abacus_client) and their dependencies, and `abacus-stack up`
run from another directory starts a stack from the installed copy.

The fresh environment borrows the development environment's dependencies (a .pth file) instead
of downloading them: what is tested is the project's own packaging, not PyPI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from abacus.local_stack import LocalStack
from abacus.local_stack.ports import free_port_block, free_ports
from abacus.local_stack.stack import health_status

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("abacus-stack", "abacus-check", "abacus-bench")
CONFIGURATION = (
    "abacus/conf/redis.conf",
    "abacus/conf/sentinel.conf",
    "abacus/conf/nginx/nginx.conf",
    "abacus/conf/nginx/templates/abacus.conf.template",
    "abacus/conf/nginx/abacus-balancer-secret.envsh",
    "abacus/conf/nginx/abacus-resolver.envsh",
    "abacus/conf/redis-container.sh",
    "abacus/conf/prometheus/prometheus.yml",
    "abacus/conf/prometheus/abacus-rules.yml",
    "abacus/conf/grafana/dashboards/abacus.json",
    "abacus/conf/grafana/provisioning/datasources/prometheus.yml",
    "abacus/conf/grafana/provisioning/dashboards/abacus.yml",
    "abacus/node/gunicorn_conf.py",
)


def run(argv: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a copy of the tracked files: setuptools builds in place (build/), where files of
    # an earlier build, or untracked ones, could slip into the wheel; and the tree stays as it is.
    source = tmp_path_factory.mktemp("source")
    tracked = run(["git", "ls-files", "-z"], ROOT).stdout.split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(source)],
        out,
    )
    (built,) = out.glob("abacus-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed; its bin directory."""
    venv = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", str(venv)], venv)
    python = venv / "bin" / "python"
    site = run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], venv
    ).stdout.strip()
    Path(site, "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([str(python), "-m", "pip", "install", "--no-deps", "--quiet", str(wheel)], venv)
    where = run([str(python), "-c", "import abacus; print(abacus.__file__)"], venv).stdout
    assert where.startswith(site), f"the installed copy is imported, not this tree: {where}"
    return venv / "bin"


def test_the_wheel_holds_the_configuration_and_the_commands(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = archive.read(entry_points).decode()
    assert set(CONFIGURATION) <= names
    client = {f"abacus_client/{path.name}" for path in (ROOT / "abacus_client").glob("*.py")}
    assert "abacus_client/__init__.py" in client
    assert client <= names, f"the client library is not all in the wheel: {client - names}"
    (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    requires = {
        line.removeprefix("Requires-Dist: ")
        for line in archive_text(wheel, metadata).splitlines()
        if line.startswith("Requires-Dist: ")
    }
    tools = (ROOT / "requirements-tools.txt").read_text().splitlines()
    pins = {line.strip() for line in tools if line.strip() and not line.startswith("#")}
    assert "httpx2" in " ".join(pins)
    assert pins <= requires, "the client's and the commands' dependencies"
    for command in COMMANDS:
        assert f"{command} = abacus.cli." in scripts
    assert not any(name.startswith(("tests/", "app/", "harness/")) for name in names)


def archive_text(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(name).decode()


def test_the_client_library_is_installed(installed: Path, tmp_path: Path) -> None:
    code = "import abacus_client; print(abacus_client.__file__, abacus_client.Client.__name__)"
    where = run([str(installed / "python"), "-c", code], tmp_path).stdout
    assert where.startswith(str(installed.parent)), f"not the installed copy: {where}"
    assert where.split()[1] == "Client"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_answers_help(installed: Path, tmp_path: Path, command: str) -> None:
    result = run([str(installed / command), "--help"], tmp_path)
    assert "usage:" in result.stdout
    assert command in result.stdout


def test_abacus_stack_up_from_another_directory_starts_a_stack(
    installed: Path, tmp_path: Path
) -> None:
    # Far from the repository: the stack finds its configuration in the installed package.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    node_port = free_port_block(1)
    port, redis_port = [p for p in free_ports(3) if p != node_port][:2]
    stack_dir = elsewhere / "stack"
    options = [
        "--dir", str(stack_dir), "--port", str(port), "--node-port", str(node_port),
        "--redis-port", str(redis_port), "--nodes", "1", "--workers", "1",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    try:
        subprocess.run(
            [str(installed / "abacus-stack"), "up", "--detach", *options],
            cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        assert health_status(port) == 200
        stack = LocalStack.load(stack_dir)
        node_pid = stack.processes["node-1"].pid
        # The node runs the installed environment's Python (which imports the installed copy).
        command_line = Path(f"/proc/{node_pid}/cmdline").read_bytes().split(b"\0")
        assert command_line[0].decode().startswith(str(installed.parent))
    finally:
        subprocess.run(
            [str(installed / "abacus-stack"), "down", "--dir", str(stack_dir)],
            cwd=elsewhere, env=env, capture_output=True, timeout=120, check=False,
        )  # fmt: skip
    assert health_status(port) is None
