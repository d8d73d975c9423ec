"""The state machine: every legal (from, to) pair, and the only code that writes a state.

Writes are compare-and-set: ``UPDATE … WHERE id = ? AND state IN (<expected>)``. A write that
changes no row means another process got there first; callers treat that as "not mine" and
return quietly. Every successful write appends a RunEvent row in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from .events import queue_publish
from .models import NodeRun, NodeState, Run, RunEvent, RunState

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
NODE_UNFINISHED = frozenset(set(N.values) - NODE_FINISHED)
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


def _as_set(states: str | Iterable[str]) -> tuple[str, ...]:
    return (states,) if isinstance(states, str) else tuple(states)


def move_node(
    node: NodeRun,
    expected: str | Iterable[str],
    target: str,
    *,
    token: str | None = None,
    run_status: str | None = None,
    data: dict[str, Any] | None = None,
    **fields: Any,
) -> bool:
    """Compare-and-set one node's state; True if this call made the change.

    ``run_status`` adds "and its run is in this status" to the same UPDATE.
    ``token``, when given, must match the node's current dispatch token (a stale or duplicate
    message cannot move the node). ``fields`` are written in the same UPDATE.
    """
    expected = _as_set(expected)
    for current in expected:
        check_node_transition(current, target)
    rows = NodeRun.objects.filter(pk=node.pk, state__in=expected)
    if token is not None:
        rows = rows.filter(dispatch_token=token)
    if run_status is not None:
        rows = rows.filter(_run_is(run_status))
    if rows.update(state=target, **fields) != 1:
        return False
    previous = node.state
    node.state = target
    for name, value in fields.items():
        if not hasattr(value, "resolve_expression"):
            setattr(node, name, value)
    event = {"state": target, "attempt": fields.get("attempt", node.attempt)}
    if previous in expected and previous != target:
        event["from"] = previous
    event.update(data or {})
    record_event(node.run_id, "node.status", event, node_id=node.node_id)
    return True


def move_run(
    run: Run,
    expected: str | Iterable[str],
    target: str,
    *,
    data: dict[str, Any] | None = None,
    **fields: Any,
) -> bool:
    """Compare-and-set a run's status; True if this call made the change."""
    expected = _as_set(expected)
    for current in expected:
        check_run_transition(current, target)
    if Run.objects.filter(pk=run.pk, status__in=expected).update(status=target, **fields) != 1:
        return False
    previous = run.status
    run.status = target
    for name, value in fields.items():
        setattr(run, name, value)
    event = {"status": target, "from": previous}
    event.update(data or {})
    record_event(run.pk, "run.status", event)
    return True


def _run_is(status: str) -> Exists:
    """A condition on the node's run as EXISTS, never a join: Django turns an UPDATE with a
    join into ``WHERE id IN (subquery)``, and PostgreSQL then re-checks only ``id IN`` when a
    concurrent writer changed the row, so two transactions could both claim it."""
    return Exists(Run.objects.filter(pk=OuterRef("run_id"), status=status))


def claim(node_pk: int, token: str, **fields: Any) -> NodeRun | None:
    """QUEUED → RUNNING for the holder of the current dispatch token, only while the run is
    RUNNING; the attempt counter goes up in the same UPDATE. Returns the node (with its run
    and the run's version loaded) or None when the claim failed."""
    check_node_transition(N.QUEUED, N.RUNNING)
    changed = (
        NodeRun.objects.filter(pk=node_pk, state=N.QUEUED, dispatch_token=token)
        .filter(_run_is(R.RUNNING))
        .update(state=N.RUNNING, attempt=F("attempt") + 1, finished_at=None, **fields)
    )
    if changed != 1:
        return None
    node = (
        NodeRun.objects.select_related("run__workflow_version")
        .defer("run__workflow_version__spec")
        .get(pk=node_pk)
    )
    record_event(
        node.run_id,
        "node.status",
        {"state": N.RUNNING, "from": N.QUEUED, "attempt": node.attempt, "worker": node.worker},
        node_id=node.node_id,
    )
    return node


def move_nodes(
    nodes: list[NodeRun],
    expected: str,
    target: str,
    *,
    data: dict[str, Any] | None = None,
    **fields: Any,
) -> list[NodeRun]:
    """Compare-and-set many nodes of one run at once (one UPDATE, one bulk INSERT of events).

    Returns the nodes this call moved. When another writer got some of them first, falls
    back to one compare-and-set per node so that exactly the moved ones are returned.
    """
    check_node_transition(expected, target)
    if not nodes:
        return []
    pks = [node.pk for node in nodes]
    changed = NodeRun.objects.filter(pk__in=pks, state=expected).update(state=target, **fields)
    if changed != len(nodes):
        # Undo nothing: rows that moved did so legitimately. Find out which ones were ours.
        mine = set(
            NodeRun.objects.filter(
                pk__in=pks,
                state=target,
                **{k: v for k, v in fields.items() if k == "dispatch_token"},
            ).values_list("pk", flat=True)
        )
        nodes = [node for node in nodes if node.pk in mine]
    for node in nodes:
        node.state = target
        for name, value in fields.items():
            setattr(node, name, value)
    record_events(
        [
            (
                node.run_id,
                "node.status",
                {"state": target, "from": expected, "attempt": node.attempt, **(data or {})},
                node.node_id,
            )
            for node in nodes
        ]
    )
    return nodes


def record_events(events: list[tuple[Any, str, Any, str]]) -> list[RunEvent]:
    """Append several events (run_id, kind, data, node_id) with one INSERT."""
    rows = RunEvent.objects.bulk_create(
        [
            RunEvent(run_id=run_id, kind=kind, data=data or {}, node_id=node_id)
            for run_id, kind, data, node_id in events
        ]
    )
    for row in rows:
        queue_publish(row)
    return rows


def record_event(run_id: Any, kind: str, data: Any, *, node_id: str = "") -> RunEvent:
    """Append one event row (callers are inside the transaction that caused it)."""
    event = RunEvent.objects.create(run_id=run_id, kind=kind, node_id=node_id, data=data or {})
    queue_publish(event)
    return event


def now():
    return timezone.now()
