"""The node image's health check: exit 0 when this node's /health answers 200, 1 otherwise.

Docker runs it inside the container (Dockerfile HEALTHCHECK, compose `healthcheck`). The slim
Python image has no curl, and the standard library is all it needs.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

# /health answers within 1.5 s (docs/api.md), also when Redis is down; longer means it is stuck.
TIMEOUT_S = 2.0


def check(port: str) -> tuple[bool, str]:
    url = f"http://127.0.0.1:{port}/health"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return response.status == 200, f"{url}: {response.status}"
    except urllib.error.HTTPError as exc:
        exc.close()
        return False, f"{url}: {exc.code}"
    except (OSError, ValueError) as exc:
        return False, f"{url}: {exc}"


def main() -> int:
    healthy, detail = check(os.environ.get("PORT") or "8000")
    # Docker keeps this output in the container's health log (`docker inspect`).
    print(detail)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
