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
        (N.READY, N.QUEUED),  # resume
        (N.READY, N.CANCELLED),
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
        (N.WAITING, N.COMPLETED),
        (N.WAITING, N.FAILED),
        (N.WAITING, N.CANCELLED),
        (N.FAILED, N.PENDING),  # run retry
        (N.UPSTREAM_FAILED, N.PENDING),
        (N.CANCELLED, N.PENDING),
        (N.SKIPPED, N.PENDING),
        (N.COMPLETED, N.PENDING),  # run retry: a descendant of a failed node runs again
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
    }
)

NODE_FINISHED = frozenset({N.COMPLETED, N.FAILED, N.SKIPPED, N.UPSTREAM_FAILED, N.CANCELLED})
NODE_UNFINISHED = frozenset(set(N) - NODE_FINISHED)
RUN_FINISHED = frozenset({R.COMPLETED, R.FAILED, R.CANCELLED})


class InvalidTransition(Exception):
    """An illegal state change; the API answers it with 409 and the current state."""

    def __init__(self, subject: str, current: str, target: str) -> None:
        super().__init__(f"cannot move {subject} from {current} to {target}")
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
