"""The Redis key layout, in one place: every key Abacus writes lives next to the sum it serves.

    <sum>                     the sum, a decimal string
    <sum>:idem:<key>          the commit record of a client's Idempotency-Key (its first response)
                              or its fence ("refused for good"); ABACUS_IDEMPOTENCY_TTL_S
    <sum>:retry:<request id>  the same for the balancer's implicit retry key; ABACUS_RETRY_KEY_TTL_S
    <sum>:op:<commit id>      the record of a keyless add nobody else carries, kept only to learn
                              the outcome of a lost EXEC (deadline + grace + a minute)
    <sum>:quota:<client>      how many new Idempotency-Key records a client made in its window
    <sum>:health:<node id>    each node's health probe write (60 s)
    <sum>:ack:<node id>       a write each node makes before a WAIT when what it answers was read,
                              not written, by it (ABACUS_MIN_REPLICA_ACKS; replica_acks.py; 60 s)
    <sum>:turn                a list holding the commit lanes' token: whose turn it is to commit
                              (commit_turn.py); one element, no expiry

A fence is not a key of its own: it is written under the add's record key (records.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KeyLayout:
    sum: str

    def idempotency(self, key: str) -> str:
        return f"{self.sum}:idem:{key}"

    def retry(self, request_id: str) -> str:
        return f"{self.sum}:retry:{request_id}"

    def own_record(self, commit_id: str) -> str:
        return f"{self.sum}:op:{commit_id}"

    def quota(self, client: str) -> str:
        return f"{self.sum}:quota:{client}"

    def health(self, node_id: str) -> str:
        return f"{self.sum}:health:{node_id}"

    @property
    def turn(self) -> str:
        return f"{self.sum}:turn"

    def ack_probe(self, node_id: str) -> str:
        return f"{self.sum}:ack:{node_id}"
