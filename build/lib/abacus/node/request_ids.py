"""Request ids: the one an answer carries is the caller's (the balancer's) when well-formed.

Used by the app's middleware (request_context.py) and by the HTTP protocol for the answers it
gives itself (protocol_answers.py). Kept apart from the middleware, which brings the metrics
along: Gunicorn's master imports the protocol, and must not make metric files of its own.
"""

from __future__ import annotations

import re
import uuid

# nginx's $request_id is 32 hex digits; accept ids of that kind, make one for anything else.
_REQUEST_ID = re.compile(r"[0-9A-Za-z._-]{1,64}")


def request_id_for(incoming: str) -> str:
    return incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
