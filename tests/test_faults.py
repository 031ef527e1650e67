"""The fault kinds, their durations and why, and the command line that asks for them: no stack.

The faults themselves, injected into a real stack, are tests/test_nemesis.py's.
"""

from __future__ import annotations

import pytest

from abacus.harness.faults import FaultKind, FaultTimings, parse_kinds
from abacus.harness.nemesis import Nemesis
from abacus.local_stack import LocalStack, StackConfig, StackError
from abacus.node.settings import RESOLVE_GRACE_S
from tests.script_runner import run_script

# The local stack's defaults: nginx leaves a failed node out for 2 s and waits 8 s for an
# answer; a node gives an add 3 s.
DEFAULTS = FaultTimings.of(fail_timeout_s=2.0, read_timeout_s=8.0, deadline_s=3.0)


def test_all_is_every_kind_a_node_pause_first() -> None:
    kinds = parse_kinds("all")
    assert set(kinds) == set(FaultKind)
    assert len(kinds) == 6
    assert kinds[0] is FaultKind.PAUSE_NODE, "a second round starts with the short pause"


def test_a_list_keeps_its_order_once_each() -> None:
    assert parse_kinds("kill-redis, pause-node,kill-redis") == (
        FaultKind.KILL_REDIS,
        FaultKind.PAUSE_NODE,
    )


@pytest.mark.parametrize("text", ["", "kill-node,reboot", "all,kill-node"])
def test_an_unknown_fault_is_refused_with_the_choices(text: str) -> None:
    with pytest.raises(ValueError, match="fault"):
        parse_kinds(text)


def test_which_faults_act_on_redis() -> None:
    on_redis = {kind for kind in FaultKind if kind.on_redis}
    assert on_redis == {FaultKind.KILL_REDIS, FaultKind.PAUSE_REDIS, FaultKind.CUT_CONNECTIONS}


def test_each_duration_has_its_reason() -> None:
    # Dead past nginx's fail_timeout: nginx tries it again, is refused, passes the request on.
    assert DEFAULTS.kill_node_down_s > 2.0
    # A long pause outlasts nginx's read timeout: the balancer's retry.
    assert DEFAULTS.pause_node_long_s > 8.0
    # A short one stays inside the add deadline and the read timeout: the late commit.
    assert DEFAULTS.pause_node_short_s < 3.0
    # Redis stopped past an add's deadline and grace: the nodes must answer while it is.
    assert DEFAULTS.pause_redis_s > 3.0 + RESOLVE_GRACE_S
    # Down longer than the nodes take to notice (about a second).
    assert DEFAULTS.kill_redis_down_s > 1.0
    # Many cuts, each a chance to land between an EXEC and its reply.
    assert DEFAULTS.cut_for_s / DEFAULTS.cut_every_s >= 20


def test_node_pauses_alternate_long_and_short() -> None:
    held = [DEFAULTS.pause_node_s(i) for i in range(4)]
    assert held == [9.0, 1.5, 9.0, 1.5]


def test_durations_follow_the_stacks_own_settings() -> None:
    tight = FaultTimings.of(fail_timeout_s=2.0, read_timeout_s=4.0, deadline_s=1.5)
    assert tight.pause_node_long_s == 5.0
    assert tight.pause_redis_s == pytest.approx(1.5 + RESOLVE_GRACE_S + 1.0)


def test_the_nemesis_never_breaks_a_redis_that_is_not_the_stacks() -> None:
    stack = LocalStack(StackConfig(redis_url="redis://127.0.0.1:1/0"))
    with pytest.raises(StackError, match="external Redis"):
        Nemesis(stack, (FaultKind.KILL_NODE, FaultKind.CUT_CONNECTIONS), interval=1)
    # Node faults alone are fine: the nodes are the stack's.
    Nemesis(stack, (FaultKind.KILL_NODE,), interval=1, timings=DEFAULTS)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nemesis", "reboot"], "unknown fault reboot"),
        (["--nemesis", "all", "--stack-dir", "s"], "--nemesis needs --duration"),
        (["--nemesis", "all", "--duration", "5"], "--nemesis needs --stack-dir"),
        (["--duration", "5"], "--url is required"),
    ],
)
def test_cli_refuses_a_nemesis_it_cannot_run(args: list[str], message: str) -> None:
    done = run_script("check_consistency.py", *args)
    assert done.returncode == 2
    assert message in done.stderr
