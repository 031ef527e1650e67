"""Whether a request that got no answer may have reached the service, for both HTTP libraries.

Only a connection that could not be opened (refused, unresolvable, timed out, or, for httpx2, no
free connection in the pool in time) proves that nothing was sent; anything later (a read timeout,
a connection reset, a response cut off) may have followed an add that counted.
"""

from __future__ import annotations

import httpx2
import requests
from urllib3.exceptions import ConnectTimeoutError


def requests_never_sent(exc: requests.RequestException) -> bool:
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        # urllib3's NewConnectionError (refused, unresolvable) is a ConnectTimeoutError.
        return isinstance(reason, ConnectTimeoutError)
    return False


def httpx_never_sent(exc: httpx2.RequestError) -> bool:
    return isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout | httpx2.PoolTimeout)
