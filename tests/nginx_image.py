"""The official nginx image's start, done here with the shared files, for the compose and the
Kubernetes balancer alike: the image's entrypoint sources the mounted .envsh scripts in order,
renders the template with the environment they leave, and starts nginx; here this machine's nginx
checks (`nginx -t`) or runs the result.

The image's own 15-local-resolvers.envsh is the one step not run: it exports the nameservers of
the container's /etc/resolv.conf as NGINX_LOCAL_RESOLVERS, which a test gives instead (Docker's
127.0.0.11, a cluster DNS address).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from abacus.local_stack import nginx_config, processes
from abacus.local_stack.processes import Process

# The open-source nginx release that added the `resolve` parameter of `server` in an upstream.
NGINX_RESOLVE_SINCE = (1, 27, 3)
# The image's own steps around ours, by the names `sort -V` orders /docker-entrypoint.d by.
LOCAL_RESOLVERS_STEP = "15-local-resolvers.envsh"
TEMPLATE_STEP = "20-envsubst-on-templates.sh"
ENTRYPOINT_DIR = "/docker-entrypoint.d"
# Where the balancer secret's script looks for the file unless told otherwise.
SECRET_PATH_VARIABLE = "ABACUS_BALANCER_SECRET_PATH"


def version_sort_key(name: str) -> list[tuple[int, str]]:
    """`sort -V` for the entrypoint's file names: digit runs compare as numbers."""
    return [(int(part), "") if part.isdigit() else (-1, part) for part in re.split(r"(\d+)", name)]


def entrypoint_environment(
    container_env: Mapping[str, str],
    scripts: Sequence[Path],
    *,
    nameserver: str,
    secret_file: Path,
) -> dict[str, str]:
    """The environment the image's template step sees: `container_env` (plus what its
    15-local-resolvers.envsh exports for `nameserver`) after sourcing `scripts` in this order, in
    one `sh` as the entrypoint does. The secret's script reads `secret_file`."""
    env = {
        "PATH": os.environ["PATH"],
        **container_env,
        "NGINX_LOCAL_RESOLVERS": nameserver,
        SECRET_PATH_VARIABLE: str(secret_file),
    }
    script = "".join(f'. "{path}"\n' for path in scripts) + "env -0\n"
    result = subprocess.run(
        ["sh", "-ec", script], env=env, capture_output=True, check=False, timeout=10
    )
    assert result.returncode == 0, result.stderr.decode()
    pairs = (item.split("=", 1) for item in result.stdout.decode().split("\0") if item)
    return {name: value for name, value in pairs if name != "PWD"}


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found is None and Path("/usr/sbin/nginx").is_file():
        found = "/usr/sbin/nginx"
    return found


def nginx_version(binary: str) -> tuple[int, ...]:
    result = subprocess.run([binary, "-v"], capture_output=True, text=True, check=True)
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", result.stderr)
    assert match, result.stderr
    return tuple(int(part) for part in match.groups())


def for_this_nginx(
    binary: str, env: Mapping[str, str], node_ports: Sequence[int]
) -> dict[str, str]:
    """The rendering environment as this machine's nginx can take it. Debian's nginx (1.22)
    predates the `resolve` server parameter and cannot resolve names that only Docker's or the
    cluster's DNS knows: the nodes' `server` lines get the local stack's form instead (literal
    addresses, here closed or test ports of 127.0.0.1). Everything else, the `resolver` directive
    among it, is exactly as the container renders it; a newer nginx takes it all unchanged."""
    if nginx_version(binary) >= NGINX_RESOLVE_SINCE:
        return dict(env)
    servers = nginx_config.upstream_servers([f"127.0.0.1:{port}" for port in node_ports])
    return {**env, "ABACUS_UPSTREAM_SERVERS": servers}


def without_comments(config: str) -> str:
    # The template's header comment names `${VARIABLES}` in prose; nginx and envsubst ignore it.
    return "\n".join(line for line in config.splitlines() if not line.lstrip().startswith("#"))


def render(env: Mapping[str, str], directory: Path) -> Path:
    """The rendered configuration in an nginx prefix under `directory`; its main file's path."""
    main_conf = nginx_config.write_prefix(directory / "nginx", env)
    rendered = (main_conf.parent / "conf.d" / "abacus.conf").read_text()
    assert "${" not in without_comments(rendered), "every template variable is set"
    return main_conf


def nginx_test(binary: str, main_conf: Path) -> subprocess.CompletedProcess[str]:
    prefix = main_conf.parent
    argv = [
        binary, "-t", "-p", f"{prefix}/", "-c", str(main_conf), "-e", "stderr",
        "-g", f"pid {prefix}/nginx.pid;",
    ]  # fmt: skip
    return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=30)


@contextmanager
def running_nginx(binary: str, main_conf: Path) -> Iterator[Process]:
    """nginx serving `main_conf` in the foreground, stopped (SIGQUIT, as the image's stop
    signal) afterwards."""
    prefix = main_conf.parent
    argv = [
        binary, "-p", f"{prefix}/", "-c", str(main_conf), "-e", "stderr",
        "-g", f"daemon off; pid {prefix}/nginx.pid;",
    ]  # fmt: skip
    process = processes.spawn("nginx", argv, prefix / "nginx.log", os.environ, prefix)
    try:
        yield process
    finally:
        processes.stop(process, signal.SIGQUIT, 15)
