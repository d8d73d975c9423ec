"""Worker liveness and the reconciler.

Each worker process writes a heartbeat row every ``TRELLIS_HEARTBEAT_SECONDS`` from a thread
of its main process (with the pids of its pool processes). The reconciler — a beat task every
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
import os
import threading
from datetime import timedelta
from typing import Any

from celery import signals
from django.conf import settings
from django.db import close_old_connections, connections, transaction

from .models import NodeRun, NodeState, Run, RunState, Worker
from .scheduler import (
    Outbox,
    expire_waiting,
    finish_node,
    new_token,
    requeue_retry,
    send_nodes,
    spec_for_version,
)
from .transitions import move_node, now

logger = logging.getLogger(__name__)
N = NodeState


def liveness(worker: Worker, at=None) -> str:
    """alive / stale / dead from the age of the last heartbeat (dead once stopped)."""
    if worker.stopped_at:
        return "dead"
    age = ((at or now()) - worker.last_seen).total_seconds()
    if age <= 3 * settings.TRELLIS_HEARTBEAT_SECONDS:
        return "alive"
    if age <= settings.TRELLIS_WORKER_DEAD_AFTER:
        return "stale"
    return "dead"


def worker_view(worker: Worker) -> dict[str, Any]:
    return {
        "hostname": worker.hostname,
        "pid": worker.pid,
        "queues": worker.queues,
        "concurrency": worker.concurrency,
        "started_at": worker.started_at.isoformat(),
        "last_seen": worker.last_seen.isoformat(),
        "liveness": liveness(worker),
        "nodes_running": NodeRun.objects.filter(state=N.RUNNING, worker=worker.hostname).count(),
    }


# --------------------------------------------------------------------------------------
# Heartbeat (runs in the worker's main process)

_stop = threading.Event()


def _pool_pids(consumer) -> list[int]:
    pids = [os.getpid()]
    try:
        pids += list(consumer.pool.info.get("processes", []))
    except Exception:  # noqa: BLE001 - pools without process info (solo, threads)
        logger.debug("pool has no process list", exc_info=True)
    return pids


def beat_once(consumer, started) -> None:
    queues = sorted(consumer.app.amqp.queues.consume_from or consumer.app.amqp.queues)
    Worker.objects.update_or_create(
        hostname=consumer.hostname,
        defaults={
            "pid": os.getpid(),
            "queues": queues,
            "concurrency": getattr(consumer.pool, "limit", 0) or 0,
            "pool_pids": _pool_pids(consumer),
            "started_at": started,
            "last_seen": now(),
            "stopped_at": None,
        },
    )


def _heartbeat_loop(consumer) -> None:
    started = now()
    while not _stop.is_set():
        try:
            close_old_connections()
            beat_once(consumer, started)
        except Exception:  # noqa: BLE001 - a failed beat must not kill the worker; logged
            logger.exception("worker heartbeat failed")
        _stop.wait(settings.TRELLIS_HEARTBEAT_SECONDS)


@signals.worker_ready.connect
def _start_heartbeat(sender=None, **kwargs) -> None:
    _stop.clear()
    threading.Thread(
        target=_heartbeat_loop, args=(sender,), name="trellis-heartbeat", daemon=True
    ).start()


@signals.worker_init.connect
def _keep_connections(**kwargs) -> None:
    """Worker processes keep their database connection from one task to the next (before
    the pool forks, so every pool process inherits the setting; connections themselves are
    never inherited: the fixup closes them in each new process)."""
    for database in settings.DATABASES.values():
        database["CONN_MAX_AGE"] = settings.TRELLIS_WORKER_DB_MAX_AGE


@signals.task_postrun.connect
def _recycle_connections(**kwargs) -> None:
    """After each task, drop a connection that failed (a restarted database) or aged out,
    as Django does at the end of a request; otherwise the next task reuses it."""
    for connection in connections.all(initialized_only=True):
        connection.close_if_unusable_or_obsolete()


@signals.worker_shutdown.connect
def _stop_heartbeat(sender=None, **kwargs) -> None:
    _stop.set()
    hostname = getattr(sender, "hostname", None)
    if hostname:
        try:
            Worker.objects.filter(hostname=hostname).update(stopped_at=now())
        except Exception:  # noqa: BLE001 - shutting down; the row will age out
            logger.exception("could not mark worker %s stopped", hostname)


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


def requeue_lost(node: NodeRun) -> bool:
    """A RUNNING node whose execution was lost: queue it again, counting the attempt."""
    run = (
        Run.objects.select_related("workflow_version")
        .defer("workflow_version__spec")
        .get(pk=node.run_id)
    )
    spec = spec_for_version(run.workflow_version_id)
    message = f"worker {node.worker or '?'} was lost while the node ran"
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


def reconcile() -> dict[str, int]:
    """One pass of repairs; returns how many nodes each kind of repair touched."""
    at = now()
    counts = {"resent": 0, "requeued_lost": 0, "retries_sent": 0, "waits_expired": 0}
    stale_queued = NodeRun.objects.filter(
        state=N.QUEUED,
        run__status=RunState.RUNNING,
        queued_at__lt=at - timedelta(seconds=settings.TRELLIS_RESEND_QUEUED_AFTER),
    ).select_related("run")
    batch = []
    for node in stale_queued[:1000]:
        # Same token: if the first message still exists, whichever copy is claimed first runs.
        if NodeRun.objects.filter(
            pk=node.pk, state=N.QUEUED, dispatch_token=node.dispatch_token
        ).update(queued_at=at):
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
    return counts
