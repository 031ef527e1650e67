"""Commit records: what Redis keeps under an add's record key, written in the same transaction as
the sum.

A record is either the add's first response (it counted) or a fence (it was refused and never
will count). Both start with the commit id of the attempt that wrote them, so the writer can tell
its own record from another carrier's after a lost EXEC reply:

    <commit id>\\n{"new_sum": ..., "added": ..., ...}     counted; the stored first response
    <commit id>\\nfence <number>                          refused for good
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from abacus.node.json_body import parse

_FENCE = "fence "


@dataclass(frozen=True)
class Record:
    commit_id: str
    # The stored first response when the add counted; None for a fence.
    body: str | None
    # The number the add carried (compared with a repeated key's number).
    number: Decimal


def committed(commit_id: str, body: str) -> str:
    return f"{commit_id}\n{body}"


def fence(commit_id: str, added: str) -> str:
    return f"{commit_id}\n{_FENCE}{added}"


def read(raw: bytes) -> Record:
    commit_id, _, value = raw.decode("utf-8").partition("\n")
    if value.startswith(_FENCE):
        return Record(commit_id, None, Decimal(value.removeprefix(_FENCE)))
    return Record(commit_id, value, added_in(value))


def added_in(body: str) -> Decimal:
    """The number a stored first response says was added."""
    return Decimal(parse(body.encode("utf-8"))["added"])
