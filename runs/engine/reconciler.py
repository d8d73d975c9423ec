"""The reconciler: repairs from the stored state what crashes leave behind.

Workers write heartbeats (runs.heartbeat); liveness is judged in runs.engine.workers. The
reconciler — a beat task every
``TRELLIS_RECONCILE_SECONDS`` and ``manage.py reconcile`` — repairs what crashes leave behind:

- QUEUED nodes whose message is older than ``TRELLIS_RESEND_QUEUED_AFTER`` are sent again with
  the same token (a broker that lost the message; whichever copy arrives first runs);
- RUNNING nodes whose worker stopped heart-beating, or whose pool process is gone, are queued
  again (the lost attempt is counted and kept in the history);
- RETRYING nodes whose backoff has passed are queued; WAITING nodes past their timeout fail.

So a node may execute more than once after a crash (at-least-once), but the token
compare-and-set records it COMPLETED exactly once, and no run is left unfinished.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction

from ..models import NodeRun, Worker
from ..rules.states import NodeState, RunState
from ..store.writes import move_node, now
from .definitions import load_run, spec_for_version
from .dispatch import new_token, queue_depths, send_nodes
from .scheduler import Outbox, admit_all, expire_waiting, finish_node, requeue_retry
from .workers import liveness

logger = logging.getLogger(__name__)
N = NodeState


# --------------------------------------------------------------------------------------
# Reconciler


def _lost(node: NodeRun, workers: dict[str, Worker], at) -> bool:
    """Is this RUNNING node's execution gone (its worker dead, or its pool process)?"""
    grace = timedelta(seconds=2 * settings.TRELLIS_HEARTBEAT_SECONDS)
    if node.started_at and at - node.started_at < grace:
        return False
    worker = workers.get(node.worker)
    if worker is None or liveness(worker, at) == "dead":
        return True
    if liveness(worker, at) != "alive" or worker.last_seen < (node.started_at or at):
        return False  # not sure yet: wait for a fresh heartbeat
    return node.worker_pid is not None and node.worker_pid not in (worker.pool_pids or [])


def requeue_lost(node: NodeRun, reason: str | None = None) -> bool:
    """A RUNNING node whose execution was lost: queue it again, counting the attempt."""
    run = load_run(node.run_id)
    spec = spec_for_version(run.workflow_version_id)
    message = reason or f"worker {node.worker or '?'} was lost while the node ran"
    if node.attempt >= node.max_attempts + settings.TRELLIS_LOST_ATTEMPTS:
        error = {"message": message, "type": "WorkerLost", "traceback": ""}
        return finish_node(node, N.FAILED, token=node.dispatch_token, error=error) is not None
    history = list(node.attempts or []) + [
        {
            "attempt": node.attempt,
            "state": "LOST",
            "worker": node.worker,
            "started_at": node.started_at.isoformat() if node.started_at else None,
            "finished_at": now().isoformat(),
            "error": message,
        }
    ]
    with transaction.atomic():
        outbox = Outbox(run, spec)
        if run.status == RunState.PAUSED:
            return move_node(node, N.RUNNING, N.READY, token=node.dispatch_token, attempts=history)
        token = new_token()
        if not move_node(
            node,
            N.RUNNING,
            N.QUEUED,
            token=node.dispatch_token,
            dispatch_token=token,
            queued_at=now(),
            attempts=history,
            data={"error": message},
        ):
            return False
        outbox.to_send.append((node.pk, token, spec.nodes[node.node_id]))
        outbox.send_on_commit()
    return True


def _broker_depths(queues: set[str]) -> dict[str, int]:
    """Messages waiting in each queue, or {} (re-send everything) when Redis cannot say."""
    if not queues:
        return {}
    try:
        return queue_depths(queues)
    except Exception:  # noqa: BLE001 - without the depths, re-send as before
        logger.warning("could not read queue depths; re-sending every stale node", exc_info=True)
        return {}


def reconcile() -> dict[str, int]:
    """One pass of repairs; returns how many nodes each kind of repair touched."""
    at = now()
    counts = {"resent": 0, "requeued_lost": 0, "retries_sent": 0, "waits_expired": 0, "admitted": 0}
    stale_queued = NodeRun.objects.filter(
        state=N.QUEUED,
        run__status=RunState.RUNNING,
        queued_at__lt=at - timedelta(seconds=settings.TRELLIS_RESEND_QUEUED_AFTER),
    ).select_related("run")
    stale_queued = list(stale_queued[:1000])
    waiting_in_broker = _broker_depths({node.queue for node in stale_queued})
    batch = []
    for node in stale_queued:
        if waiting_in_broker.get(node.queue, 0):
            # Messages still wait in that queue: under a backlog a node waits longer than
            # TRELLIS_RESEND_QUEUED_AFTER without anything being lost, and re-sending every
            # waiting node on every pass would only multiply the backlog.
            continue
        # Same token: if the first message still exists, whichever copy is claimed first runs.
        # The table's QUEUED -> QUEUED edge, with its event, like every other write.
        if move_node(
            node, N.QUEUED, N.QUEUED, token=node.dispatch_token, queued_at=at, data={"resent": True}
        ):
            spec = spec_for_version(node.run.workflow_version_id)
            batch.append((node.pk, node.dispatch_token, spec.nodes[node.node_id]))
    if batch:
        send_nodes(batch)
        counts["resent"] = len(batch)

    workers = {w.hostname: w for w in Worker.objects.all()}
    for node in NodeRun.objects.filter(state=N.RUNNING)[:1000]:
        if _lost(node, workers, at) and requeue_lost(node):
            counts["requeued_lost"] += 1

    for node_pk, token in NodeRun.objects.filter(state=N.RETRYING, due_at__lte=at).values_list(
        "pk", "dispatch_token"
    )[:1000]:
        counts["retries_sent"] += requeue_retry(node_pk, token)

    for node_pk in NodeRun.objects.filter(state=N.WAITING, due_at__lte=at).values_list(
        "pk", flat=True
    )[:1000]:
        counts["waits_expired"] += expire_waiting(node_pk)
    counts["admitted"] = admit_all()
    return counts
