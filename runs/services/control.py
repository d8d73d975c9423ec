"""Run control: pause, resume, cancel, retry, and the node actions clear, mark and skip. The
one service layer behind the API, the dashboard, the admin and the commands. Each action is a
transition in the state table; an illegal one raises ``InvalidTransition`` (HTTP 409 with the
current state)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from ..engine import dispatch, node_actions
from ..engine.definitions import spec_for_version
from ..engine.dispatch import message_id
from ..engine.scheduler import Outbox, admit_after_commit, settle_parent
from ..models import NodeRun, Run
from ..rules.states import NODE_UNFINISHED, RUN_CONTROLS, InvalidTransition, NodeState, RunState
from ..store.dbretry import retry_on_deadlock
from ..store.writes import move_node, move_run, now, record_event

N, R = NodeState, RunState


def _actor(user) -> str | None:
    return user.get_username() if user is not None and user.is_authenticated else None


def _locked_run(run_id: Any) -> Run:
    return Run.objects.select_for_update().select_related("workflow_version").get(pk=run_id)


def _control(run_id: Any, name: str, user, **fields: Any) -> Run:
    """Lock the run and apply the control ``name`` (RUN_CONTROLS) inside the caller's
    transaction; InvalidTransition when its status does not accept it."""
    run = _locked_run(run_id)
    sources, target = RUN_CONTROLS[name]
    if not move_run(run, sources, target, data={"by": _actor(user)}, **fields):
        raise InvalidTransition("run", run.status, target)
    return run


@retry_on_deadlock
def pause(run_id: Any, user=None) -> Run:
    """RUNNING → PAUSED. Nodes already running finish; newly ready ones wait in READY."""
    with transaction.atomic():
        return _control(run_id, "pause", user)


@retry_on_deadlock
def resume(run_id: Any, user=None) -> Run:
    """PAUSED → RUNNING; every READY node is queued and sent."""
    with transaction.atomic():
        run = _control(run_id, "resume", user)
        outbox = Outbox(run, spec_for_version(run.workflow_version_id))
        for node in NodeRun.objects.filter(run=run, state=N.READY):
            outbox.enqueue(node, N.READY)
        outbox.send_on_commit()
    return run


@retry_on_deadlock
def cancel(run_id: Any, user=None) -> Run:
    """→ CANCELLED; every unfinished node CANCELLED and queued messages revoked.

    A handler still running sees ``ctx.is_cancelled()``; whatever it returns is dropped,
    since its node is no longer RUNNING.
    """
    with transaction.atomic():
        run = _control(run_id, "cancel", user, finished_at=now())
        admit_after_commit(run)  # a slot may have freed
        revoke = []
        for node in NodeRun.objects.filter(run=run, state__in=NODE_UNFINISHED):
            if node.state == N.QUEUED and node.dispatch_token:
                revoke.append(message_id(node.pk, node.dispatch_token))
            move_node(node, node.state, N.CANCELLED, finished_at=now())
        if revoke:
            transaction.on_commit(lambda: dispatch.revoke(revoke))
        # Cancel cascades down to child runs of `workflow` nodes…
        children = Run.objects.filter(
            parent_node__run=run, status__in=(R.PENDING, R.RUNNING, R.PAUSED)
        ).values_list("pk", flat=True)
        for child_id in list(children):
            cancel(child_id, user)
        # …and a child cancelled on its own fails its parent's waiting node.
        if run.parent_node_id:
            settle_parent(run, R.CANCELLED, None, "cancelled")
    return run


@retry_on_deadlock
def retry(run_id: Any, user=None) -> Run:
    """FAILED / CANCELLED run → RUNNING: failed, upstream-failed and cancelled nodes and their
    descendants go back to PENDING with recomputed counters; completed outputs are reused and
    attempt history is kept (each retried node gets a fresh retry budget)."""
    with transaction.atomic():
        run = _control(run_id, "retry", user, finished_at=None, error="", result=None)
        spec = spec_for_version(run.workflow_version_id)
        nodes = {node.node_id: node for node in NodeRun.objects.filter(run=run)}
        reset: set[str] = set()
        frontier = [
            nid
            for nid, node in nodes.items()
            if node.state in (N.FAILED, N.UPSTREAM_FAILED, N.CANCELLED)
        ]
        while frontier:
            node_id = frontier.pop()
            if node_id in reset:
                continue
            reset.add(node_id)
            frontier.extend(spec.children.get(node_id, ()))
        record_event(run.pk, "run.retry", {"by": _actor(user), "nodes": sorted(reset)})
        outbox = Outbox(run, spec)
        ready = node_actions.reset_nodes(spec, nodes, reset, counted_pending=reset, data=None)
        for node, failed, skipped in ready:
            outbox.make_ready(node, failed_parents=failed, skipped_parents=skipped)
        outbox.flush()
    return run


# --------------------------------------------------------------------------------------
# Node actions (DESIGN §7; legal states in runs.rules.states.NODE_ACTIONS). Each locks the
# run, as the run controls do, and raises NodeRun.DoesNotExist for an unknown node.


@retry_on_deadlock
def clear_node(run_id: Any, node_id: str, user=None, *, downstream: bool = True) -> NodeRun:
    """A finished node (and by default its downstream) runs again; the run returns to
    RUNNING."""
    with transaction.atomic():
        run = _locked_run(run_id)
        return node_actions.clear_node(run, node_id, downstream=downstream, by=_actor(user))


@retry_on_deadlock
def mark_node(
    run_id: Any, node_id: str, state: str, user=None, *, output: Any = None, reason: str = ""
) -> NodeRun:
    """Set a node COMPLETED with ``output`` or FAILED with ``reason``; the run goes on from
    there as if it had run."""
    with transaction.atomic():
        run = _locked_run(run_id)
        return node_actions.mark_node(
            run, node_id, state, output=output, reason=reason, by=_actor(user)
        )


@retry_on_deadlock
def skip_node(run_id: Any, node_id: str, user=None) -> NodeRun:
    """A PENDING / READY / QUEUED / FAILED node becomes SKIPPED; its downstream follows the
    trigger rules."""
    with transaction.atomic():
        run = _locked_run(run_id)
        return node_actions.skip_node(run, node_id, by=_actor(user))
