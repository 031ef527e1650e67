"""Every answer about an add is true, when Redis stalls and the balancer passes adds on.

"Nothing changed" (503 `unavailable`) must stay true forever; when a node cannot make it so, it
answers `outcome_unknown`. Each test provokes the late commit that would make a wrong answer a
lie (an EXEC delivered after the stall), and checks the answers against the final sum.
"""

from __future__ import annotations

import signal
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from abacus.local_stack import LocalStack, processes
from tests.api_client import Api, TimedAdd, timed_add
from tests.bounds import RESOLVE_GRACE_S, SLACK_S
from tests.conftest import StackFactory
from tests.metrics_text import adds_pending
from tests.stalling_proxy import stalling_proxy
from tests.waiting import PATIENCE_S, wait_for_pending_adds, wait_until

pytestmark = pytest.mark.stack

DEADLINE_MS = 1500
# A node answers an add by its deadline plus the resolve grace, counted from the request's
# arrival there; clients measure from before they send, through nginx, hence the slack. A node
# that ignored the bound would be cut off by nginx's read timeout (8 s), far beyond it.
ANSWER_BOUND_S = DEADLINE_MS / 1000 + RESOLVE_GRACE_S + SLACK_S


def small_stack(make_stack: StackFactory, nodes: int, redis_url: str | None = None) -> LocalStack:
    """Nodes of one worker each (so it is known which worker holds an add), a short deadline."""
    return make_stack(
        nodes=nodes,
        redis_url=redis_url,
        WEB_CONCURRENCY="1",
        ABACUS_ADD_DEADLINE_MS=str(DEADLINE_MS),
    )


def node_url(stack: LocalStack, index: int) -> str:
    return f"http://127.0.0.1:{stack.config.node_ports[index]}"


def fresh_key() -> str:
    return f"truth-{uuid.uuid4()}"


def test_redis_stall_every_add_answered_by_its_deadline_and_truthfully(
    make_stack: StackFactory,
) -> None:
    """Redis stopped (SIGSTOP) with one node holding a commit connection and one that must open
    one: every add is answered by deadline + grace, keyless ones `unavailable` (their first try,
    nothing sent), keyed ones `outcome_unknown` (no fence can be written), and nothing that was
    answered counts once Redis resumes."""
    stack = small_stack(make_stack, 2)
    warm = Api(node_url(stack, 1))
    assert warm.add(1, key=fresh_key()).status == 200, "node-2 holds a commit connection"
    api = Api(stack.config.url, timeout=PATIENCE_S)
    redis = stack.processes["redis"]
    keyless = [2, 4, 8, 16]
    keyed = [32, 64, 128, 256]

    assert processes.signal_process(redis, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            sent = [pool.submit(timed_add, stack.config.url, n, None) for n in keyless]
            sent += [pool.submit(timed_add, stack.config.url, n, fresh_key()) for n in keyed]
            adds = [future.result() for future in sent]
    finally:
        processes.signal_process(redis, signal.SIGCONT)

    assert {add.reply.headers["X-Node-Id"] for add in adds} == {"node-1", "node-2"}, (
        "both nodes had adds: the one with a connection and the one without"
    )
    for add in adds:
        assert add.seconds < ANSWER_BOUND_S, f"{add.number}: {add.seconds:.2f} s"
        assert add.reply.status == 503, add.reply.text
        assert add.reply.headers.get("Retry-After"), add.reply.headers
        expected = "unavailable" if add.key is None else "outcome_unknown"
        assert add.error == expected, add.reply.text

    # Whatever the nodes still had queued when Redis resumed is done with: no late EXEC is left.
    assert wait_for_pending_adds(stack.config.node_ports, 0), "the nodes answered everything"
    assert api.sum() == 1, "no add answered during the stall counted afterwards"
    for add in adds:
        if add.key is not None:
            again = api.add(add.number, key=add.key)
            assert again.status == 200, again.text
            assert again.headers.get("Idempotent-Replayed") is None, "it had not counted"
    assert api.sum() == 1 + sum(keyed)


def test_duplicate_queued_behind_its_leader_is_not_told_nothing_changed(
    make_stack: StackFactory, standalone_redis: tuple[int, processes.Process]
) -> None:
    """Two requests with one Idempotency-Key in one worker; Redis stalls with the first one's EXEC
    in its buffer. Neither may say "nothing changed": that EXEC commits after the stall."""
    redis_port, _ = standalone_redis
    with stalling_proxy(redis_port) as proxy:
        stack = small_stack(make_stack, 1, f"redis://127.0.0.1:{proxy.port}/0")
        node = node_url(stack, 0)
        key = fresh_key()
        proxy.arm()
        with ThreadPoolExecutor(max_workers=2) as pool:
            first = pool.submit(timed_add, node, 7, key)
            assert proxy.stalled.wait(PATIENCE_S), "the first add's EXEC reached the stall"
            second = pool.submit(timed_add, node, 7, key)
            answers = [first.result(), second.result()]
        proxy.release()

        for add in answers:
            assert add.seconds < ANSWER_BOUND_S, f"{add.seconds:.2f} s"
            assert add.error == "outcome_unknown", add.reply.text
        # After the stall: the held EXEC (or a fence written for the key) took effect, or
        # neither did; the key now says which, and the sum agrees with it.
        api = Api(stack.config.url, timeout=PATIENCE_S)
        third = api.add(7, key=key)
        total = api.sum()
        if third.status == 200 and third.headers.get("Idempotent-Replayed") == "true":
            assert total == 7, "counted once, by the first request"
        elif third.status == 200:
            assert total == 7, "nothing had counted; the third request did"
        else:
            assert third.status == 409, third.text
            assert third.body["error"] == "idempotency_key_refused", third.text
            assert third.headers.get("Retry-After") is None
            assert total == 0, "the key was fenced: its add never counted"


def test_node_killed_after_its_exec_entered_a_stall_the_retry_says_unknown(
    make_stack: StackFactory, standalone_redis: tuple[int, processes.Process]
) -> None:
    """A node SIGKILLed right after it sent an EXEC into a stalled Redis: nginx passes the add to
    the other node, which cannot fence it while Redis stalls, so it must answer
    `outcome_unknown`; after the stall the first node's EXEC counts, once."""
    redis_port, _ = standalone_redis
    with stalling_proxy(redis_port) as proxy:
        stack = small_stack(make_stack, 2, f"redis://127.0.0.1:{proxy.port}/0")
        proxy.arm()
        with ThreadPoolExecutor(max_workers=1) as pool:
            future: Future[TimedAdd] = pool.submit(timed_add, stack.config.url, 7, None)
            assert proxy.stalled.wait(PATIENCE_S), "the add's EXEC reached the stall"
            carriers: list[int] = []

            def carrier_found() -> bool:
                ports = stack.config.node_ports
                carriers[:] = [i for i, port in enumerate(ports) if adds_pending(port) == 1]
                return len(carriers) == 1

            assert wait_until(carrier_found), "one node carries the add"
            victim = stack.processes[stack.node_names()[carriers[0]]]
            assert processes.signal_group(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            assert processes.wait_gone(victim, 5)
            answer = future.result()
            answered_in = time.monotonic() - killed_at
        other = stack.node_names()[1 - carriers[0]]
        assert answer.reply.status == 503, answer.reply.text
        assert answer.error == "outcome_unknown", answer.reply.text
        assert answer.reply.headers["X-Node-Id"] == other, "nginx passed the add on"
        assert answered_in < ANSWER_BOUND_S, f"{answered_in:.2f} s after the kill"

        proxy.release()
        api = Api(stack.config.url, timeout=PATIENCE_S)
        assert wait_until(lambda: api.sum() == 7), "the killed node's EXEC counted after the stall"
        other_port = stack.config.node_ports[1 - carriers[0]]
        assert wait_for_pending_adds([other_port], 0), "the other node answered everything"
        assert api.sum() == 7, "counted once: the node that answered never applied it"
