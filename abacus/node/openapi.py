"""The OpenAPI 3.1 description of the API, served at /openapi.json.

Written out by hand rather than generated: the contract (the README's API section) is the source,
and every status, header and error code it names is here, so the fuzz tests can hold responses to
it.
"""

from __future__ import annotations

from typing import Any

from abacus.node.errors import ErrorCode

NUMBER = {
    "type": "number",
    "description": "An exact decimal: at most 18 digits after the point, absolute value below "
    "10^30. Integral values are JSON integers, others plain decimals with no exponent.",
}
TIMESTAMP = {"type": "string", "format": "date-time", "description": "ISO 8601 with UTC offset"}
NODE_ID = {"type": "string", "description": "The node that served (or, in a replay, applied) it"}

ERROR_CODES = [code.value for code in ErrorCode]

ID_HEADERS = {
    "X-Node-Id": {"description": "The node that served the request", "schema": {"type": "string"}},
    "X-Request-ID": {
        "description": "The balancer's request id, or one the node made",
        "schema": {"type": "string"},
    },
}
RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "string"}}
}


def _error(description: str, *, retry: bool = False) -> dict[str, Any]:
    headers = {**ID_HEADERS, **(RETRY_AFTER if retry else {})}
    return {
        "description": description,
        "headers": headers,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _ok(description: str, schema: str, **headers: Any) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {**ID_HEADERS, **headers},
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


COMMON_ERRORS = {
    "404": _error("Unknown path (not_found)"),
    "405": _error("Wrong method (method_not_allowed)"),
    "421": _error("Host names a server this service does not serve (misdirected_request)"),
    "429": _error("Rate limit of the balancer exceeded (rate_limited)", retry=True),
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Abacus",
        "version": "1.0.0",
        "description": "A distributed running sum: every acknowledged add counted exactly once, "
        "every new_sum consistent with one order of all adds.",
    },
    "paths": {
        "/abacus/number": {
            "post": {
                "summary": "Add a number to the sum",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": "1 to 255 visible ASCII characters; a repeat (kept 24 h) "
                        "returns the first response and adds nothing",
                        "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/AddRequest"}}
                    },
                },
                "responses": {
                    "200": _ok(
                        "Added (or, with Idempotent-Replayed: true, the stored first response)",
                        "AddResponse",
                        **{
                            "Idempotent-Replayed": {
                                "description": "true when this is a replay",
                                "schema": {"type": "string", "enum": ["true"]},
                            }
                        },
                    ),
                    "400": _error("Invalid JSON (invalid_json) or Idempotency-Key"),
                    "413": _error("Body over 1 KiB (body_too_large)"),
                    "409": _error(
                        "This Idempotency-Key's add was refused for good (idempotency_key_refused):"
                        " it did not count and never will; send the add again with a new key"
                    ),
                    "415": _error("Content-Type is not application/json"),
                    "422": _error(
                        "Not an object with exactly a valid number, a sum out of range, or an "
                        "Idempotency-Key reused with another number"
                    ),
                    "503": _error(
                        "unavailable (nothing changed, and it never will), outcome_unknown "
                        "(it may have counted: retry with the same Idempotency-Key to learn) or "
                        "key_store_full (Redis memory is nearly full, new Idempotency-Keys are "
                        "paused: this request did not add; ask again with the same key later, "
                        "or send the add without one)",
                        retry=True,
                    ),
                    **COMMON_ERRORS,
                    "429": _error(
                        "Rate limit of the balancer exceeded (rate_limited), or this client's "
                        "quota of new Idempotency-Keys is used up (key_quota_exhausted: this "
                        "request did not add; ask again with the same key after Retry-After, or "
                        "send the add without one)",
                        retry=True,
                    ),
                },
            }
        },
        "/abacus/sum": {
            "get": {
                "summary": "Read the sum (linearizable)",
                "responses": {
                    "200": _ok("The sum", "SumResponse"),
                    "503": _error("Redis unavailable", retry=True),
                    **COMMON_ERRORS,
                },
            },
            "delete": {
                "summary": "Reset the sum to 0",
                "security": [{"bearer": []}],
                "responses": {
                    "200": _ok("Reset", "ResetResponse"),
                    "401": _error("No token (unauthorized)"),
                    "403": _error("Wrong token (forbidden)"),
                    "503": _error("Redis unavailable", retry=True),
                    **COMMON_ERRORS,
                },
            },
        },
        "/health": {
            "get": {
                "summary": "Whether this node can commit to Redis",
                "responses": {
                    "200": _ok("Healthy", "Health"),
                    "503": _ok("Unhealthy", "Health", **RETRY_AFTER),
                    **COMMON_ERRORS,
                },
            }
        },
        "/livez": {
            "get": {
                "summary": "Whether the process that answers is alive; it never asks Redis. "
                "Through the balancer nginx answers it itself, without node_id (the balancer "
                "is alive); on a node the node answers, with its node_id",
                "responses": {
                    "200": _ok("Alive", "Livez"),
                    **COMMON_ERRORS,
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics of one node (not served by the balancer)",
                "responses": {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "404": _error("Through the balancer"),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "AddRequest": {
                "type": "object",
                "properties": {"number": NUMBER},
                "required": ["number"],
                "additionalProperties": False,
            },
            "AddResponse": {
                "type": "object",
                "properties": {
                    "new_sum": NUMBER,
                    "added": NUMBER,
                    "timestamp": TIMESTAMP,
                    "node_id": NODE_ID,
                },
                "required": ["new_sum", "added", "timestamp", "node_id"],
                "additionalProperties": False,
            },
            "SumResponse": {
                "type": "object",
                "properties": {"sum": NUMBER, "timestamp": TIMESTAMP, "node_id": NODE_ID},
                "required": ["sum", "timestamp", "node_id"],
                "additionalProperties": False,
            },
            "ResetResponse": {
                "type": "object",
                "properties": {
                    "message": {"const": "Sum successfully reset to 0"},
                    "timestamp": TIMESTAMP,
                    "node_id": NODE_ID,
                },
                "required": ["message", "timestamp", "node_id"],
                "additionalProperties": False,
            },
            "Health": {
                "type": "object",
                "properties": {
                    "status": {"enum": ["healthy", "unhealthy"]},
                    "node_id": NODE_ID,
                    "redis_connected": {"type": "boolean"},
                    "current_sum": {"anyOf": [NUMBER, {"type": "null"}]},
                    "stats": {
                        "anyOf": [
                            {
                                "type": "object",
                                "properties": {
                                    "connected_clients": {"type": "integer"},
                                    "total_commands_processed": {"type": "integer"},
                                    "used_memory_human": {"type": "string"},
                                },
                                "required": [
                                    "connected_clients",
                                    "total_commands_processed",
                                    "used_memory_human",
                                ],
                            },
                            {"type": "null"},
                        ]
                    },
                    "memory_used_ratio": {
                        "description": "Redis used_memory / maxmemory; null when unknown or "
                        "when Redis has no maxmemory",
                        "anyOf": [{"type": "number", "minimum": 0}, {"type": "null"}],
                    },
                    "keyed_adds": {
                        "description": "Whether this node takes new Idempotency-Keys, or pauses "
                        "them (key_store_full) while Redis memory is nearly full",
                        "enum": ["accepted", "paused"],
                    },
                },
                "required": [
                    "status",
                    "node_id",
                    "redis_connected",
                    "current_sum",
                    "stats",
                    "memory_used_ratio",
                    "keyed_adds",
                ],
                "additionalProperties": False,
            },
            "Livez": {
                "type": "object",
                "properties": {
                    "status": {"const": "alive"},
                    "node_id": {
                        **NODE_ID,
                        "description": "The node that answered; absent when the balancer did",
                    },
                },
                "required": ["status"],
                "additionalProperties": False,
            },
            "Error": {
                "type": "object",
                "properties": {
                    "error": {"enum": ERROR_CODES},
                    "message": {"type": "string", "minLength": 1},
                },
                "required": ["error", "message"],
                "additionalProperties": False,
            },
        },
    },
}
