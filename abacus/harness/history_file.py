"""Histories as files: JSON lines, one operation or fault a line, re-judged without any server.

The first line says what the run was (`"type": "run"`): the URL, when it began, the sums before
and after, the concurrency, how long it fired, its notes. Each further line is an operation
(`"type": "op"`) or a fault the nemesis injected (`"type": "fault"`), in the order they began.
Times are seconds since the run began, at full precision, so a history read back is judged
exactly as it was. Numbers are exact decimal strings, never floats (docs/checker.md,
"Histories as files", has the fields).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from abacus.harness.decimals import render
from abacus.harness.faults import FaultEvent, FaultKind
from abacus.harness.history import History, Kind, Operation, Outcome

FORMAT = 1


class HistoryFileError(ValueError):
    """The file is not a history this version can read; the message says where and why."""


@dataclass
class RunInfo:
    """What a history file says about the run besides its operations."""

    url: str
    concurrency: int
    elapsed: float  # seconds the firing took
    reset: bool
    started_at: str | None = None  # wall clock, ISO 8601, when the firing began
    notes: list[str] = field(default_factory=list)


def save(path: Path, history: History, run: RunInfo) -> None:
    """Write `history` to `path` (replacing it), one JSON object a line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for line in _lines(history, run):
            out.write(json.dumps(line, ensure_ascii=False) + "\n")


def load(path: Path) -> tuple[History, RunInfo]:
    """Read a history written by `save`; HistoryFileError names the first bad line."""
    with path.open(encoding="utf-8") as source:
        rows = [(number, text) for number, text in enumerate(source, start=1) if text.strip()]
    if not rows:
        raise HistoryFileError(f"{path}: empty, not a history")
    try:
        header = json.loads(rows[0][1])
        history, run = _header(header)
    except (ValueError, KeyError, TypeError, InvalidOperation) as exc:
        raise HistoryFileError(f"{path}:{rows[0][0]}: not a history's first line: {exc}") from None
    for number, text in rows[1:]:
        try:
            entry = json.loads(text)
            kind = entry["type"]
            if kind == "op":
                history.operations.append(_operation(entry))
            elif kind == "fault":
                history.faults.append(_fault(entry))
            else:
                raise ValueError(f"unknown type {kind!r}")
        except (ValueError, KeyError, TypeError, InvalidOperation) as exc:
            raise HistoryFileError(f"{path}:{number}: {exc}") from None
    history.operations.sort(key=lambda op: op.op_id)
    return history, run


# -- writing --------------------------------------------------------------------------------


def _lines(history: History, run: RunInfo) -> Iterator[dict[str, Any]]:
    origin = history.origin
    yield {
        "type": "run",
        "format": FORMAT,
        "url": run.url,
        "started_at": run.started_at,
        "start_sum": render(history.start_sum),
        "final_sum": _number(history.final_sum),
        "concurrency": run.concurrency,
        "elapsed_s": run.elapsed,
        "reset": run.reset,
        "notes": run.notes,
    }
    timed: list[tuple[float, int, dict[str, Any]]] = [
        (_time(op.start, origin) or 0.0, 0, _op_line(op, origin)) for op in history.operations
    ]
    timed += [(event.start - origin, 1, _fault_line(event, origin)) for event in history.faults]
    timed.sort(key=lambda entry: (entry[0], entry[1]))
    for _, _, line in timed:
        yield line


def _op_line(op: Operation, origin: float) -> dict[str, Any]:
    return {
        "type": "op",
        "id": op.op_id,
        "kind": op.kind.value,
        "invoke": _time(op.start, origin),
        "complete": _time(op.end, origin),
        "outcome": op.outcome.value,
        "number": _number(op.number),
        "key": op.key,
        "result": _number(op.result),
        "status": op.status,
        "error": op.error,
        "node": op.node_id,
        "request_id": op.request_id,
        "replayed": op.replayed,
        "resolved": op.resolved,
        "first_outcome": None if op.first_outcome is None else op.first_outcome.value,
        "first_complete": None if op.first_end is None else _time(op.first_end, origin),
        "body": op.body,
    }


def _fault_line(event: FaultEvent, origin: float) -> dict[str, Any]:
    return {
        "type": "fault",
        "fault": event.kind.value,
        "target": event.target,
        "start": event.start - origin,
        "recover": event.recover - origin,
        "end": event.end - origin,
        "detail": event.detail,
        "error": event.error,
    }


def _time(moment: float, origin: float) -> float | None:
    return None if math.isnan(moment) else moment - origin


def _number(value: Decimal | None) -> str | None:
    return None if value is None else render(value)


# -- reading --------------------------------------------------------------------------------


def _header(entry: dict[str, Any]) -> tuple[History, RunInfo]:
    if entry.get("type") != "run":
        raise ValueError('the first line must be {"type": "run", ...}')
    if entry.get("format") != FORMAT:
        raise ValueError(f"format {entry.get('format')!r}; this version reads format {FORMAT}")
    final = entry["final_sum"]
    history = History(
        start_sum=_decimal(entry["start_sum"]),
        final_sum=None if final is None else _decimal(final),
    )
    run = RunInfo(
        url=str(entry["url"]),
        concurrency=int(entry["concurrency"]),
        elapsed=float(entry["elapsed_s"]),
        reset=bool(entry["reset"]),
        started_at=entry.get("started_at"),
        notes=[str(note) for note in entry.get("notes", [])],
    )
    return history, run


def _operation(entry: dict[str, Any]) -> Operation:
    first = entry.get("first_outcome")
    return Operation(
        op_id=int(entry["id"]),
        kind=Kind(entry["kind"]),
        number=_optional_decimal(entry.get("number")),
        key=entry.get("key"),
        outcome=Outcome(entry["outcome"]),
        start=_float(entry["invoke"]),
        end=_float(entry["complete"]),
        result=_optional_decimal(entry.get("result")),
        node_id=entry.get("node"),
        status=entry.get("status"),
        error=entry.get("error"),
        replayed=bool(entry.get("replayed", False)),
        resolved=bool(entry.get("resolved", False)),
        request_id=entry.get("request_id"),
        body=entry.get("body"),
        first_outcome=None if first is None else Outcome(first),
        first_end=None if entry.get("first_complete") is None else float(entry["first_complete"]),
    )


def _fault(entry: dict[str, Any]) -> FaultEvent:
    return FaultEvent(
        kind=FaultKind(entry["fault"]),
        target=str(entry["target"]),
        start=float(entry["start"]),
        recover=float(entry["recover"]),
        end=float(entry["end"]),
        detail=str(entry["detail"]),
        error=entry.get("error"),
    )


def _float(value: object) -> float:
    return math.nan if value is None else float(str(value))


def _decimal(value: object) -> Decimal:
    if not isinstance(value, str):
        raise ValueError(f"a number must be written as a decimal string, not {value!r}")
    return Decimal(value)


def _optional_decimal(value: object) -> Decimal | None:
    return None if value is None else _decimal(value)
