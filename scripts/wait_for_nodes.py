"""Wait until exactly N distinct nodes answer through the balancer: exit 0 then, 1 when they do not
within the timeout.

    python scripts/wait_for_nodes.py --url URL --nodes N [--timeout SECONDS]

The smoke scripts (compose_smoke.sh, kind_smoke.sh) run it after scaling the nodes up or down, to
see that the balancer follows the replicas that come and go: it re-resolves their name every few
seconds, without a reload. Each round reads the sum a few times per expected node and collects the
`X-Node-Id` headers (round robin reaches every node it knows within a round); exactly N ids in one
round is success. Standard library only, like healthcheck.py.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request

REQUESTS_PER_NODE = 4
REQUEST_TIMEOUT_S = 10.0
PAUSE_S = 1.0


def node_of(url: str) -> str | None:
    """The node that answered GET /abacus/sum, also when it answered with an error."""
    try:
        # The URL's scheme is http or https (http_url below).
        request = f"{url}/abacus/sum"
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:  # noqa: S310
            node: str | None = response.headers.get("X-Node-Id")
    except urllib.error.HTTPError as exc:
        exc.close()
        node = exc.headers.get("X-Node-Id")
    except OSError:
        return None
    return node


def one_round(url: str, nodes: int) -> set[str]:
    answered = (node_of(url) for _ in range(REQUESTS_PER_NODE * nodes))
    return {node for node in answered if node}


def wait_for_nodes(url: str, nodes: int, timeout_s: float) -> tuple[bool, set[str]]:
    deadline = time.monotonic() + timeout_s
    while True:
        seen = one_round(url, nodes)
        if len(seen) == nodes:
            return True, seen
        if time.monotonic() >= deadline:
            return False, seen
        time.sleep(PAUSE_S)


def http_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"must be an http:// or https:// URL, not {text}")
    return text.rstrip("/")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url", type=http_url, required=True, help="the balancer, e.g. http://127.0.0.1:8080"
    )
    parser.add_argument("--nodes", type=positive_int, required=True, help="how many to expect")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds (default 120)")
    args = parser.parse_args(argv)
    url: str = args.url
    done, seen = wait_for_nodes(url, args.nodes, args.timeout)
    listed = ", ".join(sorted(seen)) or "none"
    if done:
        print(f"wait_for_nodes: {len(seen)} nodes answer through {url}: {listed}")
        return 0
    print(
        f"wait_for_nodes: expected {args.nodes} nodes through {url} within {args.timeout:g} s; "
        f"the last round saw {len(seen)}: {listed}",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
