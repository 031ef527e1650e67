"""Replicated Redis short of a failover: what the nodes answer when the primary is demoted, lacks
replicas, or its replicas do not confirm, against real redis-server processes and Sentinels.

- A READONLY reply (the server the Sentinels name was demoted) means the transaction was refused:
  the add is tried again until its deadline and answered "nothing changed" when nothing can carry
  it, never "may have counted".
- NOREPLICAS (fewer replicas than min-replicas-to-write) likewise; the same nodes serve again
  once replicas are back.
- With ABACUS_MIN_REPLICA_ACKS=1, an add the primary took but no replica confirmed is never a
  200, and neither is a replay: both are outcome_unknown until a replica has them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from abacus.local_stack import LocalStack, binaries, processes, redis_ha
from abacus.local_stack.ports import free_ports
from abacus.node import redis_pool
from abacus.node.settings import Settings
from tests.api_client import Api, timed_add
from tests.bounds import RESOLVE_GRACE_S, SLACK_S
from tests.conftest import StackFactory
from tests.metrics_text import scrape, value
from tests.single_node import single_node
from tests.stack_marker import require_stack_marker
from tests.waiting import PATIENCE_S, wait_all_healthy, wait_for_pending_adds, wait_until

pytestmark = pytest.mark.stack

DEADLINE_MS = 1500
# Answered by its deadline plus the grace, counted at the node; clients measure from before they
# send, through nginx, hence the slack.
ANSWER_BOUND_S = DEADLINE_MS / 1000 + RESOLVE_GRACE_S + SLACK_S


def fresh_key() -> str:
    return f"replication-{uuid.uuid4()}"


def client(port: int) -> redis.Redis:
    return redis.Redis(port=port, socket_timeout=5, socket_connect_timeout=5)


def metric(stack: LocalStack, name: str, **labels: str) -> float:
    return sum(value(scrape(port), name, **labels) for port in stack.config.node_ports)


def primary_port(stack: LocalStack) -> int:
    group = stack.config.redis_group
    return group.port_of(redis_ha.primary_name(group))


@pytest.fixture
def ha_stack(make_stack: StackFactory) -> LocalStack:
    return make_stack(
        redis_ha=True, ABACUS_MIN_REPLICA_ACKS="1", ABACUS_ADD_DEADLINE_MS=str(DEADLINE_MS)
    )


def test_every_instance_runs_the_shared_config_and_status_names_the_primary(
    ha_stack: LocalStack,
) -> None:
    group = ha_stack.config.redis_group
    for name in redis_ha.instance_names():
        with contextlib.closing(client(group.port_of(name))) as instance:
            settings = {
                key: instance.config_get(key)[key]
                for key in ("appendfsync", "maxmemory-policy", "min-replicas-to-write")
            }
        # Set on every instance: Sentinel copies no configuration to the replica it promotes.
        assert settings == {
            "appendfsync": "always",
            "maxmemory-policy": "noeviction",
            "min-replicas-to-write": str(redis_ha.MIN_REPLICAS_TO_WRITE),
        }, name
    roles = {name: entry.get("role") for name, entry in ha_stack.status().items()}
    assert roles["redis-1"] == "primary"
    assert roles["redis-2"] == roles["redis-3"] == "replica"
    assert redis_ha.primary_name(group) == "redis-1"


def test_an_add_no_replica_confirmed_is_never_a_200(ha_stack: LocalStack) -> None:
    """Both replicas stopped (SIGSTOP): the primary still takes writes (its lag allowance raised
    for this test), but no WAIT is answered by a replica. Every add and every replay is then
    outcome_unknown; once the replicas are back, each key replays its add, now confirmed."""
    api = Api(ha_stack.config.url)
    confirmed_key = fresh_key()
    assert api.add(1, key=confirmed_key).status == 200
    replicas = [ha_stack.processes[name] for name in ("redis-2", "redis-3")]
    primary = client(primary_port(ha_stack))
    lag = str(primary.config_get("min-replicas-max-lag")["min-replicas-max-lag"])
    keyless = [2, 4, 8]
    keyed = {n: fresh_key() for n in (16, 32, 64)}
    try:
        # The primary counts a stopped replica as good for this long: the WAIT is what is tested.
        primary.config_set("min-replicas-max-lag", 3600)
        for replica in replicas:
            assert processes.signal_process(replica, signal.SIGSTOP)
        with ThreadPoolExecutor(max_workers=8) as pool:
            sent = [pool.submit(timed_add, ha_stack.config.url, n, None) for n in keyless]
            sent += [pool.submit(timed_add, ha_stack.config.url, n, k) for n, k in keyed.items()]
            sent.append(pool.submit(timed_add, ha_stack.config.url, 1, confirmed_key))
            adds = [future.result() for future in sent]
    finally:
        for replica in replicas:
            processes.signal_process(replica, signal.SIGCONT)
        primary.config_set("min-replicas-max-lag", lag)
        primary.close()

    for add in adds:
        assert add.reply.status == 503, add.reply.text
        # Applied on the primary, keyless first tries included: not "nothing changed" either.
        assert add.error == "outcome_unknown", add.reply.text
        assert add.seconds < ANSWER_BOUND_S, f"{add.number}: {add.seconds:.2f} s"
    assert metric(ha_stack, "abacus_replica_acks_short_total") > 0
    wait_all_healthy(ha_stack)
    for number, key in [(1, confirmed_key), *keyed.items()]:
        again = api.add(number, key=key)
        assert again.status == 200, again.text
        assert again.headers.get("Idempotent-Replayed") == "true", "the primary had it all along"
    assert api.sum() == 1 + sum(keyless) + sum(keyed)


def test_too_few_replicas_refuses_adds_truthfully_then_the_same_nodes_serve(
    ha_stack: LocalStack,
) -> None:
    """The primary asks for more replicas than exist (NOREPLICAS): keyless adds are `unavailable`
    (nothing was applied), keyed ones `outcome_unknown` (no fence can be written), each by its
    deadline; once it asks for one again, the same nodes commit."""
    api = Api(ha_stack.config.url)
    assert api.add(1).status == 200
    primary = client(primary_port(ha_stack))
    keyed = {4: fresh_key(), 8: fresh_key()}
    try:
        primary.config_set("min-replicas-to-write", redis_ha.INSTANCES)
        with ThreadPoolExecutor(max_workers=4) as pool:
            sent = [pool.submit(timed_add, ha_stack.config.url, 2, None)]
            sent += [pool.submit(timed_add, ha_stack.config.url, n, k) for n, k in keyed.items()]
            adds = [future.result() for future in sent]
        assert api.sum() == 1, "nothing was applied"
    finally:
        primary.config_set("min-replicas-to-write", redis_ha.MIN_REPLICAS_TO_WRITE)
        primary.close()

    for add in adds:
        assert add.reply.status == 503, add.reply.text
        expected = "unavailable" if add.key is None else "outcome_unknown"
        assert add.error == expected, add.reply.text
        assert add.seconds < ANSWER_BOUND_S, f"{add.number}: {add.seconds:.2f} s"
    assert metric(ha_stack, "abacus_primary_refusals_total", reason="noreplicas") > 0
    for number, key in keyed.items():
        again = api.add(number, key=key)
        assert again.status == 200, again.text
        assert again.headers.get("Idempotent-Replayed") is None, "it had not counted"
    assert api.sum() == 1 + sum(keyed)


def test_an_add_waits_out_a_primary_short_of_replicas(make_stack: StackFactory) -> None:
    """NOREPLICAS is a failover's aftermath (the new primary has no replica in sync yet): the add
    is tried again on a fresh connection until its deadline, so replicas back in time make it a
    200. The test stack's 10 s deadline leaves any machine time to give them back."""
    stack = make_stack(redis_ha=True, ABACUS_MIN_REPLICA_ACKS="1")
    primary = client(primary_port(stack))
    try:
        primary.config_set("min-replicas-to-write", redis_ha.INSTANCES)
        with ThreadPoolExecutor(max_workers=1) as pool:
            adding = pool.submit(timed_add, stack.config.url, 2, fresh_key())
            assert wait_for_pending_adds(stack.config.node_ports, 1, give_up=adding.done), (
                "the add waits at a node while the primary refuses it"
            )
            assert wait_until(
                lambda: metric(stack, "abacus_primary_refusals_total", reason="noreplicas") > 0
            )
            primary.config_set("min-replicas-to-write", redis_ha.MIN_REPLICAS_TO_WRITE)
            add = adding.result()
    finally:
        primary.config_set("min-replicas-to-write", redis_ha.MIN_REPLICAS_TO_WRITE)
        primary.close()
    assert add.reply.status == 200, add.reply.text
    assert Api(stack.config.url).sum() == 2


def test_a_connection_kept_across_a_failover_reconnects_to_the_new_primary(
    ha_stack: LocalStack,
) -> None:
    """The commit lane keeps its connection while it has work, and redis-py reconnects it inside
    its next send: that reconnect must ask the Sentinels, or under steady load the lane dials the
    dead primary until its queue runs dry (seen: 45 s)."""
    group = ha_stack.config.redis_group
    settings = Settings.from_env({"REDIS_SENTINELS": group.sentinels_setting()})

    async def across_the_failover() -> tuple[int, int, bytes]:
        pool = redis_pool.make_pool(settings, socket_timeout=None)
        try:
            connection = await pool.get_connection()  # type: ignore[no-untyped-call]
            before = int(connection.port)
            await connection.send_command("PING")
            assert await connection.read_response() == b"PONG"
            await asyncio.to_thread(ha_stack.redis, "kill")
            promoted = await asyncio.to_thread(
                wait_until, lambda: redis_ha.primary_port(group) not in (None, before)
            )
            assert promoted, "the Sentinels promoted a replica"
            # The first send meets the dead primary's closed socket; each next one reconnects, as
            # the lane's next attempt does, until the Sentinels agree on the new primary.
            loop = asyncio.get_running_loop()
            give_up_at = loop.time() + PATIENCE_S
            while True:
                try:
                    await connection.send_command("PING")
                    reply = await connection.read_response()
                except redis.RedisError:
                    if loop.time() > give_up_at:
                        raise
                    await asyncio.sleep(0.05)
                else:
                    return before, int(connection.port), reply
        finally:
            await redis_pool.close_pool(pool)

    before, after, reply = asyncio.run(across_the_failover())
    assert reply == b"PONG"
    assert after != before
    assert after == redis_ha.primary_port(group)


# --- READONLY: a primary demoted under a node's feet --------------------------------------------


@contextlib.contextmanager
def redis_instance(directory: Path, name: str) -> Iterator[int]:
    """A redis-server with the shared configuration (through a file of its own, as the stack
    runs them), on a free port; stopped at the end."""
    (port,) = free_ports(1)
    data = directory / name
    data.mkdir()
    path = data / "redis.conf"
    path.write_text(redis_ha.instance_config(port, data, None))
    argv = [binaries.require("redis-server"), str(path)]
    process = processes.spawn(name, argv, directory / f"{name}.log", {}, directory)
    try:
        assert wait_until(lambda: _answers(port)), f"{name} did not start"
        with contextlib.closing(client(port)) as instance:
            # No replicas here: what is tested is READONLY, not NOREPLICAS.
            instance.config_set("min-replicas-to-write", 0)
        yield port
    finally:
        processes.stop(process, signal.SIGTERM, 10)


@contextlib.contextmanager
def sentinel_of(directory: Path, primary: int) -> Iterator[int]:
    """One Sentinel watching `primary`, that never fails it over (one Sentinel is short of the
    quorum of 2) and does not call it down for a minute."""
    (port,) = free_ports(1)
    data = directory / "sentinel"
    data.mkdir()
    path = data / "sentinel.conf"
    path.write_text(redis_ha.sentinel_config(port, data, primary))
    argv = [binaries.require("redis-server"), str(path), "--sentinel"]
    process = processes.spawn("sentinel", argv, directory / "sentinel.log", {}, directory)
    try:
        assert wait_until(lambda: _answers(port)), "the Sentinel did not start"
        with contextlib.closing(client(port)) as sentinel:
            sentinel.sentinel_set(redis_ha.MASTER, "down-after-milliseconds", 60_000)
        yield port
    finally:
        processes.stop(process, signal.SIGTERM, 10)


def _answers(port: int) -> bool:
    try:
        with contextlib.closing(client(port)) as instance:
            return bool(instance.ping())
    except redis.RedisError:
        return False


@pytest.fixture
def demotable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[int, int, int]]:
    """(primary, other, sentinel): a primary a Sentinel names, and another Redis to demote it to
    a replica of."""
    require_stack_marker(request, "demotable")
    with (
        redis_instance(tmp_path, "primary") as primary,
        redis_instance(tmp_path, "other") as other,
        sentinel_of(tmp_path, primary) as sentinel,
    ):
        yield primary, other, sentinel


def test_a_demoted_primary_s_readonly_is_a_refusal_not_a_lost_reply(
    demotable: tuple[int, int, int], tmp_path: Path
) -> None:
    """A node holds its commit connection to the primary; the primary becomes a replica (as a
    failover leaves it) while the Sentinel still names it. Its READONLY means the transaction was
    refused: a keyless add is `unavailable` by its deadline, not `outcome_unknown` (which
    redis-py's Sentinel connection, turning READONLY into a lost connection, would force). Once
    it is a primary again the same node commits."""
    primary, other, sentinel = demotable
    env = {
        "REDIS_URL": "",
        "REDIS_SENTINELS": f"127.0.0.1:{sentinel}",
        "ABACUS_ADD_DEADLINE_MS": str(DEADLINE_MS),
    }
    with single_node(tmp_path, **env) as node, contextlib.closing(client(primary)) as admin:
        api = Api(f"http://127.0.0.1:{node.port}")
        assert api.add(1).status == 200, "the node holds a commit connection to the primary"
        admin.replicaof("127.0.0.1", other)
        assert wait_until(lambda: admin.info("replication").get("master_link_status") == "up"), (
            "the demoted primary is in sync with its new primary"
        )
        keyless = timed_add(api.url, 2, None)
        keyed = timed_add(api.url, 4, fresh_key())
        refusals = value(scrape(node.port), "abacus_primary_refusals_total", reason="readonly")
        admin.replicaof("NO", "ONE")
        after = api.add(8)

    assert keyless.reply.status == 503, keyless.reply.text
    assert keyless.error == "unavailable", keyless.reply.text
    assert keyed.error == "outcome_unknown", "no fence could be written: " + keyed.reply.text
    for add in (keyless, keyed):
        assert add.seconds < ANSWER_BOUND_S, f"{add.number}: {add.seconds:.2f} s"
    assert refusals > 0
    assert after.status == 200, after.text
