"""Request ids: the caller's when it looks like nginx's $request_id, else a fresh one."""

from __future__ import annotations

import re

import pytest

from abacus.node.request_ids import request_id_for


@pytest.mark.parametrize("incoming", ["0123456789abcdef0123456789abcdef", "abc.DEF_1-2", "x" * 64])
def test_a_well_formed_id_is_kept(incoming: str) -> None:
    assert request_id_for(incoming) == incoming


@pytest.mark.parametrize("incoming", ["", "x" * 65, "has space", "a\x01b", "caf\xe9", "a\r\nb"])
def test_anything_else_is_replaced_by_a_fresh_id(incoming: str) -> None:
    made = request_id_for(incoming)
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert made != request_id_for(incoming), "fresh each time"
