"""The `stack` marker's guarantee: a test that starts real processes says so.

`pytest -m "not stack"` is the fast layer: no redis-server, Gunicorn or nginx. Every fixture that
starts one calls `require_stack_marker` first, so a test that uses it unmarked fails at once,
before anything starts, instead of quietly slowing the fast layer down.
"""

from __future__ import annotations

import pytest

MARKER = "stack"


def require_stack_marker(request: pytest.FixtureRequest, fixture: str) -> None:
    if request.node.get_closest_marker(MARKER) is None:
        pytest.fail(
            f"{request.node.nodeid} uses `{fixture}`, which starts real processes: mark it "
            f"`@pytest.mark.{MARKER}` (or its module `pytestmark = pytest.mark.{MARKER}`), so "
            f'that `pytest -m "not {MARKER}"` stays the fast layer',
            pytrace=False,
        )
