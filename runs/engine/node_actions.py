"""Node actions (DESIGN §7): clear, mark or skip one node of a run by hand.

Each action is one transaction inside the caller's (``runs.services.control`` holds the run
lock): it locks the run's nodes, moves them through the state table (``NODE_ACTIONS`` in
``runs.rules.states`` says which states each action takes), recomputes the parent counters
of the nodes it makes pending again, reopens a finished run, and lets the ``Outbox`` decide
what follows: nodes left with no pending parent are queued (sent after commit), finished ones
are propagated to their children, and the run ends through the usual finish logic when
nothing is left unfinished.

Counters: a node's ``pending_parents`` counts its unfinished parents, ``failed_parents`` its
FAILED / UPSTREAM_FAILED / CANCELLED ones and ``skipped_parents`` its SKIPPED ones. A node an
action touches is counted as pending by its children until the Outbox finishes it again.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from ..models import NodeRun, Run
from ..rules.spec import WorkflowSpec
from ..rules.states import (
    NODE_ACTION_RUN_STATUSES,
    NODE_ACTIONS,
    NODE_FINISHED,
    NODE_UNFINISHED,
    InvalidTransition,
    NodeState,
    RunState,
)
from ..store.writes import batched_events, move_node, move_run, now, record_event, set_parent_counts
from . import dispatch
from .definitions import spec_for_version
from .dispatch import message_id
from .scheduler import Outbox

N, R = NodeState, RunState
_FAILED_PARENT = (N.FAILED, N.UPSTREAM_FAILED, N.CANCELLED)


def clear_node(run: Run, node_id: str, *, downstream: bool = True, by: str | None = None):
    """A finished node (and, with ``downstream``, every node below it) goes back to PENDING
    and runs again; the outputs of completed nodes above it are reused. The run returns to
    RUNNING. Raises NodeRun.DoesNotExist for an unknown node and InvalidTransition when the
    table refuses it (or a downstream node is busy)."""
    with transaction.atomic(), batched_events():
        spec, nodes, node = _prepare(run, node_id, "clear", N.PENDING)
        reset = {node_id} | (_descendants(spec, node_id) if downstream else set())
        _check_resettable(nodes, reset - {node_id}, "clear", node_id)
        _reopen(run, by, "clear")
        data = {"by": by, "action": "clear"}
        ready = reset_nodes(spec, nodes, reset, counted_pending=reset, data=data)
        # Without its downstream, the node's children keep their states; they count it as
        # pending again, so its next finish is counted off once (and can end the run).
        for child_id in sorted(_children_of(spec, reset) - reset):
            child = nodes[child_id]
            pending, failed, skipped = _parent_counts(spec, nodes, child_id, reset)
            set_parent_counts(
                child, pending_parents=pending, failed_parents=failed, skipped_parents=skipped
            )
        record_event(
            run.pk,
            "node.action",
            {"action": "clear", "by": by, "downstream": downstream, "nodes": _ordered(spec, reset)},
            node_id=node_id,
        )
        outbox = Outbox(run, spec)
        for ready_node, failed, skipped in ready:
            outbox.make_ready(ready_node, failed_parents=failed, skipped_parents=skipped)
        outbox.flush()
    return node


def mark_node(
    run: Run,
    node_id: str,
    state: str,
    *,
    output: Any = None,
    reason: str = "",
    by: str | None = None,
):
    """Set a node COMPLETED (with ``output``) or FAILED (with ``reason``), as if it had run;
    its downstream is decided from there (after going back to PENDING when the node had
    finished already)."""
    action = "mark_completed" if state == N.COMPLETED else "mark_failed"
    if state == N.COMPLETED:
        fields: dict[str, Any] = {"output": output, "error": None}
        data: dict[str, Any] = {"by": by, "action": "mark"}
    else:
        fields = {"error": {"message": reason, "type": "MarkedFailed", "traceback": ""}}
        data = {"by": by, "action": "mark", "error": reason}
    return _settle_by_hand(run, node_id, action, state, fields, data)


def skip_node(run: Run, node_id: str, *, by: str | None = None):
    """A PENDING / READY / QUEUED / FAILED node becomes SKIPPED; its downstream follows the
    trigger rules (decided again when the node had failed already)."""
    return _settle_by_hand(run, node_id, "skip", N.SKIPPED, {}, {"by": by, "action": "skip"})


def _settle_by_hand(
    run: Run, node_id: str, action: str, target: str, fields: dict, data: dict
) -> NodeRun:
    """Mark and skip: the node ends in ``target`` without a worker. A node that had finished
    already gets its descendants reset to PENDING first, so that they are decided again."""
    name, by = action.split("_")[0], data["by"]
    with transaction.atomic(), batched_events():
        spec, nodes, node = _prepare(run, node_id, action, target)
        reset = _descendants(spec, node_id) if node.state in NODE_FINISHED else set()
        _check_resettable(nodes, reset, name, node_id)
        revoke = (
            [message_id(node.pk, node.dispatch_token)]
            if node.state == N.QUEUED and node.dispatch_token
            else []
        )
        _reopen(run, by, name)
        reset_nodes(
            spec, nodes, reset, counted_pending=reset | {node_id}, data={"by": by, "action": name}
        )
        move_node(node, node.state, target, finished_at=now(), due_at=None, data=data, **fields)
        record_event(
            run.pk,
            "node.action",
            {"action": name, "by": by, "state": target, "nodes": _ordered(spec, reset)},
            node_id=node_id,
        )
        if revoke:
            transaction.on_commit(lambda: dispatch.revoke(revoke))
        outbox = Outbox(run, spec)
        outbox.finished.append((node_id, target))
        outbox.flush()
    return node


# --------------------------------------------------------------------------------------
# Helpers


def _prepare(run: Run, node_id: str, action: str, target: str):
    """The run's spec, its nodes locked (id order), and the node; checks the table."""
    spec = spec_for_version(run.workflow_version_id)
    # Locking every node of the run keeps a worker from finishing a parent between the
    # counts read here and the counts written (its finish waits for this transaction).
    nodes = {
        node.node_id: node
        for node in NodeRun.objects.select_for_update().filter(run=run).order_by("id")
    }
    node = nodes.get(node_id)
    if node is None:
        raise NodeRun.DoesNotExist(f"run has no node {node_id!r}")
    verb = action.split("_")[0]
    if run.status not in NODE_ACTION_RUN_STATUSES:
        raise InvalidTransition(
            "run", run.status, target, f"cannot {verb} a node of a {run.status} run"
        )
    sources, _ = NODE_ACTIONS[action]
    if node.state not in sources:
        raise InvalidTransition(
            f"node {node_id}",
            node.state,
            target,
            f"cannot {verb} node {node_id}: it is {node.state}",
        )
    return spec, nodes, node


def _check_resettable(nodes: dict[str, NodeRun], reset: set[str], verb: str, node_id: str):
    """Nodes going back to PENDING must be finished or PENDING: a busy one (READY, QUEUED,
    RUNNING, RETRYING, WAITING) makes the action illegal now."""
    for other_id in sorted(reset):
        other = nodes[other_id]
        if other.state in NODE_UNFINISHED and other.state != N.PENDING:
            raise InvalidTransition(
                f"node {other_id}",
                other.state,
                N.PENDING,
                f"cannot {verb} node {node_id}: downstream node {other_id} is {other.state}",
            )


def _reopen(run: Run, by: str | None, verb: str) -> None:
    """A finished run returns to RUNNING: work is pending again."""
    if run.status in (R.COMPLETED, R.FAILED):
        move_run(
            run,
            run.status,
            R.RUNNING,
            data={"by": by, "action": verb},
            finished_at=None,
            error="",
            result=None,
        )


def reset_nodes(
    spec: WorkflowSpec,
    nodes: dict[str, NodeRun],
    reset: set[str],
    *,
    counted_pending: set[str],
    data: dict[str, Any],
) -> list[tuple[NodeRun, int, int]]:
    """Every node of ``reset`` PENDING with counters recomputed (the nodes of
    ``counted_pending`` count as unfinished parents); attempts are kept, each gets a fresh
    retry budget (run retry uses this too). Returns ``(node, failed, skipped)`` for those
    left with no pending parent."""
    ready = []
    for node_id in spec.nodes:  # document order
        if node_id not in reset:
            continue
        node = nodes[node_id]
        pending, failed, skipped = _parent_counts(spec, nodes, node_id, counted_pending)
        counts = {"pending_parents": pending, "failed_parents": failed, "skipped_parents": skipped}
        if node.state == N.PENDING:
            set_parent_counts(node, **counts)
        else:
            move_node(
                node,
                node.state,
                N.PENDING,
                **counts,
                max_attempts=node.attempt + spec.nodes[node_id].retries + 1,
                dispatch_token="",
                error=None,
                output=None,
                finished_at=None,
                due_at=None,
                data=data,
            )
        if pending == 0:
            ready.append((node, failed, skipped))
    return ready


def _parent_counts(
    spec: WorkflowSpec, nodes: dict[str, NodeRun], node_id: str, counted_pending: set[str]
) -> tuple[int, int, int]:
    """(pending, failed, skipped) parents of a node, as its counters should read."""
    pending = failed = skipped = 0
    for parent in spec.nodes[node_id].dependencies:
        state = nodes[parent].state
        if parent in counted_pending or state in NODE_UNFINISHED:
            pending += 1
        elif state in _FAILED_PARENT:
            failed += 1
        elif state == N.SKIPPED:
            skipped += 1
    return pending, failed, skipped


def _descendants(spec: WorkflowSpec, node_id: str) -> set[str]:
    found: set[str] = set()
    frontier = list(spec.children.get(node_id, ()))
    while frontier:
        child = frontier.pop()
        if child not in found:
            found.add(child)
            frontier.extend(spec.children.get(child, ()))
    return found


def _children_of(spec: WorkflowSpec, node_ids: set[str]) -> set[str]:
    return {child for node_id in node_ids for child in spec.children.get(node_id, ())}


def _ordered(spec: WorkflowSpec, node_ids: set[str]) -> list[str]:
    return [node_id for node_id in spec.nodes if node_id in node_ids]
