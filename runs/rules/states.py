"""Run and node states and every legal (from, to) pair between them.

Pure: the store (runs.store) consults this table before every compare-and-set, the services
and the dashboard ask it which controls are legal; nothing here touches the database.
"""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class NodeState(StrEnum):
    PENDING = "PENDING"
    READY = "READY"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    RETRYING = "RETRYING"
    WAITING = "WAITING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    UPSTREAM_FAILED = "UPSTREAM_FAILED"
    CANCELLED = "CANCELLED"


RUN_STATES: tuple[str, ...] = tuple(RunState)
NODE_STATES: tuple[str, ...] = tuple(NodeState)


def choices(states: type[StrEnum]) -> list[tuple[str, str]]:
    """Django field choices, labelled as ``models.TextChoices`` labels them."""
    return [(state.value, state.name.replace("_", " ").title()) for state in states]


N, R = NodeState, RunState

NODE_TRANSITIONS: frozenset[tuple[str, str]] = frozenset(
    {
        (N.PENDING, N.QUEUED),  # parents done (or a root at trigger), run RUNNING
        (N.PENDING, N.READY),  # parents done while the run is PAUSED
        (N.PENDING, N.SKIPPED),  # `when` false, or an all_success child of a skipped parent
        (N.PENDING, N.UPSTREAM_FAILED),  # trigger rule cannot be met
        (N.PENDING, N.CANCELLED),
        (N.PENDING, N.COMPLETED),  # mark node COMPLETED by a person (NODE_ACTIONS)
        (N.PENDING, N.FAILED),  # mark node FAILED; a `when` that cannot be evaluated
        (N.READY, N.QUEUED),  # resume
        (N.READY, N.CANCELLED),
        (N.READY, N.COMPLETED),  # mark node (run paused, the node not sent yet)
        (N.READY, N.FAILED),  # mark node
        (N.READY, N.SKIPPED),  # skip node
        (N.QUEUED, N.COMPLETED),  # mark node: its message is revoked, a late claim fails
        (N.QUEUED, N.FAILED),  # mark node
        (N.QUEUED, N.SKIPPED),  # skip node
        (N.QUEUED, N.QUEUED),  # re-sent with a new dispatch token (reconciler)
        (N.QUEUED, N.RUNNING),  # claimed by a worker
        (N.QUEUED, N.READY),  # claimed while the run is PAUSED: wait for resume
        (N.QUEUED, N.CANCELLED),
        (N.RUNNING, N.COMPLETED),
        (N.RUNNING, N.FAILED),
        (N.RUNNING, N.RETRYING),  # failed attempt, another is due after a backoff
        (N.RUNNING, N.WAITING),  # waits for an event or a child run
        (N.RUNNING, N.QUEUED),  # its worker died: sent again
        (N.RUNNING, N.CANCELLED),
        (N.RETRYING, N.QUEUED),
        (N.RETRYING, N.CANCELLED),
        (N.RETRYING, N.COMPLETED),  # mark node: the backoff timer finds it no longer RETRYING
        (N.RETRYING, N.FAILED),  # mark node: give up the remaining attempts
        (N.WAITING, N.COMPLETED),
        (N.WAITING, N.FAILED),
        (N.WAITING, N.CANCELLED),
        (N.FAILED, N.PENDING),  # run retry; clear node
        (N.UPSTREAM_FAILED, N.PENDING),  # run retry; clear node
        (N.CANCELLED, N.PENDING),  # run retry
        (N.SKIPPED, N.PENDING),  # run retry; clear node
        (N.COMPLETED, N.PENDING),  # run retry (a descendant of a failed node); clear node
        (N.FAILED, N.COMPLETED),  # mark node: a person says it succeeded, downstream decided again
        (N.UPSTREAM_FAILED, N.COMPLETED),  # mark node: done by hand, downstream decided again
        (N.FAILED, N.SKIPPED),  # skip node: downstream decided again by its trigger rules
    }
)

RUN_TRANSITIONS: frozenset[tuple[str, str]] = frozenset(
    {
        (R.PENDING, R.RUNNING),  # trigger
        (R.PENDING, R.CANCELLED),
        (R.RUNNING, R.PAUSED),
        (R.PAUSED, R.RUNNING),
        (R.RUNNING, R.COMPLETED),
        (R.RUNNING, R.FAILED),
        (R.PAUSED, R.COMPLETED),  # the nodes still running when paused were the last ones
        (R.PAUSED, R.FAILED),
        (R.RUNNING, R.CANCELLED),
        (R.PAUSED, R.CANCELLED),
        (R.FAILED, R.RUNNING),  # retry
        (R.CANCELLED, R.RUNNING),
        (R.COMPLETED, R.RUNNING),  # clear / mark / skip node: work is pending again
    }
)

NODE_FINISHED = frozenset({N.COMPLETED, N.FAILED, N.SKIPPED, N.UPSTREAM_FAILED, N.CANCELLED})
NODE_UNFINISHED = frozenset(set(N) - NODE_FINISHED)
RUN_FINISHED = frozenset({R.COMPLETED, R.FAILED, R.CANCELLED})


class InvalidTransition(Exception):
    """An illegal state change; the API answers it with 409 and the current state."""

    def __init__(self, subject: str, current: str, target: str, message: str = "") -> None:
        super().__init__(message or f"cannot move {subject} from {current} to {target}")
        self.subject = subject
        self.current = current
        self.target = target


def check_node_transition(current: str, target: str) -> None:
    if (current, target) not in NODE_TRANSITIONS:
        raise InvalidTransition("node", current, target)


def check_run_transition(current: str, target: str) -> None:
    if (current, target) not in RUN_TRANSITIONS:
        raise InvalidTransition("run", current, target)


# The run controls (API, dashboard, admin, commands): which statuses each accepts and where it
# leads. Every pair is an edge of RUN_TRANSITIONS (tests/test_transitions.py checks).
RUN_CONTROLS: dict[str, tuple[frozenset[str], str]] = {
    "pause": (frozenset({R.RUNNING}), R.PAUSED),
    "resume": (frozenset({R.PAUSED}), R.RUNNING),
    "cancel": (frozenset({R.PENDING, R.RUNNING, R.PAUSED}), R.CANCELLED),
    "retry": (frozenset({R.FAILED, R.CANCELLED}), R.RUNNING),
}


def legal_controls(status: str) -> list[str]:
    """The controls a run in ``status`` accepts now, in RUN_CONTROLS order."""
    return [name for name, (sources, _target) in RUN_CONTROLS.items() if status in sources]


# The node actions (DESIGN §7): which node states each accepts and where it leads. Every pair
# is an edge of NODE_TRANSITIONS (tests/test_transitions.py checks). Why these and no others:
# - RUNNING is refused by all three: a handler holds the node, and its own result would race
#   the person's (cancel the run, or wait for the attempt to end).
# - WAITING is refused too: its event (send event, checked against the node's schema) or its
#   child run settles it; marking it would bypass the schema or orphan the child run.
# - clear takes finished nodes only. CANCELLED ones exist only in cancelled runs, which the
#   node actions refuse (retry the run instead).
# - mark on a finished node (FAILED, UPSTREAM_FAILED) and skip of a FAILED node decide its
#   downstream again: descendants go back to PENDING with recomputed counters first.
# - Downstream nodes that a clear (or a re-decision) would reset must be finished or PENDING:
#   one that is READY, QUEUED, RUNNING, RETRYING or WAITING makes the action a 409.
NODE_ACTIONS: dict[str, tuple[frozenset[str], str]] = {
    "clear": (frozenset({N.COMPLETED, N.FAILED, N.SKIPPED, N.UPSTREAM_FAILED}), N.PENDING),
    "mark_completed": (
        frozenset({N.PENDING, N.READY, N.QUEUED, N.RETRYING, N.FAILED, N.UPSTREAM_FAILED}),
        N.COMPLETED,
    ),
    "mark_failed": (frozenset({N.PENDING, N.READY, N.QUEUED, N.RETRYING}), N.FAILED),
    "skip": (frozenset({N.PENDING, N.READY, N.QUEUED, N.FAILED}), N.SKIPPED),
}

# The run statuses in which a node action is legal. A PENDING run has not started (its roots
# are queued when it does); a CANCELLED one is retried, not patched node by node. A finished
# run goes back to RUNNING.
NODE_ACTION_RUN_STATUSES = frozenset({R.RUNNING, R.PAUSED, R.COMPLETED, R.FAILED})


def node_action_target(action: str, state: str | None = None) -> str:
    """The node state an action leads to (``mark`` takes COMPLETED or FAILED)."""
    if action == "mark":
        return state or N.COMPLETED
    return NODE_ACTIONS[action][1]


def legal_node_actions(run_status: str, node_state: str) -> list[str]:
    """The node actions (``clear``, ``mark``, ``skip``) a node in ``node_state`` of a run in
    ``run_status`` accepts now, by the table (a busy descendant may still refuse one)."""
    if run_status not in NODE_ACTION_RUN_STATUSES:
        return []
    legal = {name for name, (sources, _target) in NODE_ACTIONS.items() if node_state in sources}
    found = []
    for action in ("clear", "mark", "skip"):
        if action in legal or (action == "mark" and legal & {"mark_completed", "mark_failed"}):
            found.append(action)
    return found
