"""What an answer says about an add: counted, not counted, not by this request, or open.

The one reading of the API's outcome table (docs/api.md, "What each answer about an add means")
that the client's retry rules and the consistency checker's judge both build on.
"""

from __future__ import annotations

from enum import StrEnum

from abacus.node.errors import ErrorCode


class AddOutcome(StrEnum):
    COUNTED = "counted"  # 200: exactly once (a replay: once, earlier)
    NOT_COUNTED = "not_counted"  # this request changed nothing, and says so for good
    NOT_BY_THIS_REQUEST = "not_by_this_request"  # the key budget: another carrier may have added
    OPEN = "open"  # it may or may not have counted: asking again with the same key settles it


# The key budget's answers say only that *this request* did not add: another request with the
# same key (the balancer passing it on after a node failed) may have.
KEY_BUDGET_REFUSALS = frozenset({ErrorCode.KEY_QUOTA_EXHAUSTED, ErrorCode.KEY_STORE_FULL})


def add_outcome(status: int, error: str | None) -> AddOutcome:
    """The outcome of an answered add (`error` is the body's code, if any)."""
    if status == 200:
        return AddOutcome.COUNTED
    if error in KEY_BUDGET_REFUSALS:
        return AddOutcome.NOT_BY_THIS_REQUEST
    if 400 <= status < 500:
        return AddOutcome.NOT_COUNTED
    if status == 503 and error == ErrorCode.UNAVAILABLE:
        return AddOutcome.NOT_COUNTED
    # 503 outcome_unknown, 502 and 504 from the balancer, 500, anything unexpected.
    return AddOutcome.OPEN
