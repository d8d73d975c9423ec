"""Pure logic: the state table and the readiness decision (no database, no broker)."""

from __future__ import annotations

import pytest

from runs.rules.decisions import RUN, SKIP, UPSTREAM_FAILED, backoff_delay, decide
from runs.rules.states import (
    NODE_ACTIONS,
    NODE_FINISHED,
    NODE_TRANSITIONS,
    RUN_TRANSITIONS,
    InvalidTransition,
    check_node_transition,
    check_run_transition,
    legal_node_actions,
)
from runs.rules.states import NodeState as N
from runs.rules.states import RunState as R

pytestmark = pytest.mark.unit


def test_finished_node_states_only_leave_through_retry_or_a_node_action():
    by_hand = {(source, target) for sources, target in NODE_ACTIONS.values() for source in sources}
    for state in NODE_FINISHED:
        targets = {to for frm, to in NODE_TRANSITIONS if frm == state}
        assert targets - {N.PENDING} == {to for frm, to in by_hand if frm == state} - {N.PENDING}


def test_every_node_state_is_reachable_from_pending():
    reached, frontier = {N.PENDING}, [N.PENDING]
    while frontier:
        state = frontier.pop()
        for frm, to in NODE_TRANSITIONS:
            if frm == state and to not in reached:
                reached.add(to)
                frontier.append(to)
    assert reached == set(N)


@pytest.mark.parametrize(
    "frm,to",
    [
        (N.PENDING, N.RUNNING),
        (N.COMPLETED, N.RUNNING),
        (N.QUEUED, N.UPSTREAM_FAILED),
        (N.COMPLETED, N.FAILED),  # no node action un-completes a node
        (N.READY, N.RUNNING),
    ],
)
def test_illegal_node_transitions_raise(frm, to):
    with pytest.raises(InvalidTransition) as info:
        check_node_transition(frm, to)
    assert info.value.current == frm and info.value.target == to


@pytest.mark.parametrize(
    "frm,to,legal",
    [
        (R.PENDING, R.RUNNING, True),
        (R.RUNNING, R.PAUSED, True),
        (R.PAUSED, R.RUNNING, True),
        (R.FAILED, R.RUNNING, True),
        (R.COMPLETED, R.PAUSED, False),
        (R.COMPLETED, R.RUNNING, True),  # a node action reopens it
        (R.RUNNING, R.PENDING, False),
        (R.CANCELLED, R.PAUSED, False),
    ],
)
def test_run_transitions(frm, to, legal):
    assert ((frm, to) in RUN_TRANSITIONS) is legal
    if not legal:
        with pytest.raises(InvalidTransition):
            check_run_transition(frm, to)


@pytest.mark.parametrize(
    "rule,failed,skipped,expected",
    [
        ("all_success", 0, 0, RUN),
        ("all_success", 1, 0, UPSTREAM_FAILED),
        ("all_success", 0, 1, SKIP),
        ("all_success", 1, 1, UPSTREAM_FAILED),
        ("none_failed", 0, 2, RUN),
        ("none_failed", 1, 0, UPSTREAM_FAILED),
        ("all_done", 3, 2, RUN),
    ],
)
def test_readiness_decision(rule, failed, skipped, expected):
    assert decide(rule, failed, skipped) == expected


def test_backoff_grows_exponentially_within_jitter_and_cap():
    for attempt, base in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0)]:
        for _ in range(50):
            delay = backoff_delay(1.0, attempt, cap=100)
            assert base * 0.75 <= delay <= base * 1.25
    assert backoff_delay(1.0, 30, cap=10) <= 12.5
    assert backoff_delay(0.0, 5, cap=10) == 0.0


def test_every_run_control_is_an_edge_of_the_table():
    from runs.rules.states import RUN_CONTROLS

    for name, (sources, target) in RUN_CONTROLS.items():
        for source in sources:
            assert (source, target) in RUN_TRANSITIONS, (name, source, target)


def test_every_node_action_is_an_edge_of_the_table():
    for name, (sources, target) in NODE_ACTIONS.items():
        for source in sources:
            assert (source, target) in NODE_TRANSITIONS, (name, source, target)
    # a finished run that a node action reopens
    assert (R.COMPLETED, R.RUNNING) in RUN_TRANSITIONS and (R.FAILED, R.RUNNING) in RUN_TRANSITIONS


@pytest.mark.parametrize(
    "run_status,node_state,actions",
    [
        (R.RUNNING, "PENDING", ["mark", "skip"]),
        (R.PAUSED, "READY", ["mark", "skip"]),
        (R.RUNNING, "QUEUED", ["mark", "skip"]),
        (R.RUNNING, "RUNNING", []),
        (R.RUNNING, "WAITING", []),
        (R.RUNNING, "RETRYING", ["mark"]),
        (R.FAILED, "FAILED", ["clear", "mark", "skip"]),
        (R.FAILED, "UPSTREAM_FAILED", ["clear", "mark"]),
        (R.COMPLETED, "COMPLETED", ["clear"]),
        (R.COMPLETED, "SKIPPED", ["clear"]),
        (R.CANCELLED, "FAILED", []),
        (R.PENDING, "PENDING", []),
    ],
)
def test_legal_node_actions_follow_the_table(run_status, node_state, actions):
    assert legal_node_actions(run_status, node_state) == actions


@pytest.mark.parametrize(
    "status,controls",
    [
        (R.PENDING, ["cancel"]),
        (R.RUNNING, ["pause", "cancel"]),
        (R.PAUSED, ["resume", "cancel"]),
        (R.FAILED, ["retry"]),
        (R.CANCELLED, ["retry"]),
        (R.COMPLETED, []),
    ],
)
def test_legal_controls_follow_the_status(status, controls):
    from runs.rules.states import legal_controls

    assert legal_controls(status) == controls


@pytest.mark.parametrize(
    "succeeded,retryable,attempt,max_attempts,outcome",
    [
        (True, False, 1, 1, N.COMPLETED),
        (True, True, 3, 3, N.COMPLETED),
        (False, True, 1, 3, N.RETRYING),
        (False, True, 3, 3, N.FAILED),
        (False, False, 1, 3, N.FAILED),
    ],
)
def test_attempt_outcome(succeeded, retryable, attempt, max_attempts, outcome):
    from runs.rules.decisions import attempt_outcome

    assert (
        attempt_outcome(succeeded, retryable=retryable, attempt=attempt, max_attempts=max_attempts)
        == outcome
    )


@pytest.mark.parametrize(
    "active,limit,allowed", [(0, None, True), (5, 0, True), (1, 2, True), (2, 2, False)]
)
def test_admission_and_queue_limits_allow_below_the_limit(active, limit, allowed):
    from runs.rules.decisions import may_start, queue_has_room

    assert may_start(active, limit) is allowed
    assert queue_has_room(active, limit) is allowed


def test_a_paused_run_holds_ready_nodes():
    from runs.rules.decisions import ready_state

    assert ready_state(R.PAUSED) == N.READY
    assert ready_state(R.RUNNING) == N.QUEUED


def test_waiting_reasons_name_the_limit_and_the_queue():
    from runs.rules.decisions import slot_wait_reason, unserved_queue_reason

    assert slot_wait_reason("nightly", 1) == (
        "waiting for a slot: workflow 'nightly' allows 1 concurrent run (max_concurrent_runs)"
    )
    assert "2 concurrent runs" in slot_wait_reason("nightly", 2)
    assert unserved_queue_reason("gpu") == (
        "waits in queue 'gpu', which no live worker serves "
        "(start one with: celery -A orchestration worker -Q gpu)"
    )


@pytest.mark.parametrize(
    "hops,elapsed,limits,timeout,allowed",
    [
        (0, 0.5, (360.0, 330.0), 300, True),  # a message sent with a 30 s window
        (0, 29.0, (360.0, 330.0), 300, True),
        (0, 31.0, (360.0, 330.0), 300, False),  # the node would be cut short by the task's limit
        (0, 1.0, (330.0, 300.0), 300, False),  # no window: the limits are the first node's own
        (0, 5.0, (360.0, 330.0), 10, True),  # a shorter node fits longer
        (0, 5.0, (300.0, None), 300, False),  # the hard limit needs the grace on top
        (0, 5.0, (None, None), 300, True),  # no limits at all
        (49, 1.0, (None, None), 300, True),
        (50, 1.0, (None, None), 300, False),  # the hop bound keeps workers fair
    ],
)
def test_a_task_continues_only_while_its_limits_leave_the_next_node_its_own(
    hops, elapsed, limits, timeout, allowed
):
    from runs.rules.decisions import may_continue

    assert (
        may_continue(
            hops=hops, max_hops=50, elapsed=elapsed, limits=limits, timeout=timeout, grace=30
        )
        is allowed
    )
