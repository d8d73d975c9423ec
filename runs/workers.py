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

import contextlib
import logging
import os
import signal
import threading
import time
from datetime import timedelta
from typing import Any

from celery import signals
from django.conf import settings
from django.db import close_old_connections, connections, transaction
from django.db.models import Count

from . import admission
from .models import NodeRun, Run, Worker
from .rules.states import NodeState, RunState
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


def served_queues(at=None) -> set[str]:
    """Queues that some worker not yet declared dead consumes from."""
    at = at or now()
    recent = Worker.objects.filter(
        stopped_at__isnull=True,
        last_seen__gte=at - timedelta(seconds=settings.TRELLIS_WORKER_DEAD_AFTER),
    )
    return {queue for queues in recent.values_list("queues", flat=True) for queue in queues or ()}


def queue_warnings(nodes, served: set[str] | None = None) -> dict[str, str]:
    """``{node id: sentence}`` for nodes waiting in a queue that no live worker serves, so
    that they do not wait silently (they run as soon as such a worker starts)."""
    waiting = [node for node in nodes if node.state in (N.READY, N.QUEUED)]
    if not waiting:
        return {}
    served = served_queues() if served is None else served
    return {
        node.node_id: f"waits in queue {node.queue!r}, which no live worker serves "
        f"(start one with: celery -A orchestration worker -Q {node.queue})"
        for node in waiting
        if node.queue not in served
    }


def running_per_worker() -> dict[str, int]:
    """RUNNING nodes by worker hostname, in one grouped query."""
    return dict(
        NodeRun.objects.filter(state=N.RUNNING)
        .values_list("worker")
        .annotate(n=Count("id"))
        .order_by()
    )


def worker_view(worker: Worker, running: dict[str, int]) -> dict[str, Any]:
    """A worker for the API; ``running`` from :func:`running_per_worker`."""
    return {
        "hostname": worker.hostname,
        "pid": worker.pid,
        "queues": worker.queues,
        "concurrency": worker.concurrency,
        "started_at": worker.started_at.isoformat(),
        "last_seen": worker.last_seen.isoformat(),
        "liveness": liveness(worker),
        "nodes_running": running.get(worker.hostname, 0),
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
# Bounded warm shutdown


@signals.worker_shutting_down.connect
def _bound_warm_shutdown(sender=None, how=None, **kwargs) -> None:
    """SIGTERM: Celery stops taking messages and waits for running tasks, without a bound.
    Give running nodes ``TRELLIS_SHUTDOWN_GRACE`` seconds; then queue those still running
    again for other workers (a new dispatch token, so the interrupted attempt can never
    finish them too) and stop the pool processes running them, so the worker exits."""
    if how != "Warm" or not sender:
        return
    threading.Thread(
        target=_requeue_after_grace,
        args=(str(sender), settings.TRELLIS_SHUTDOWN_GRACE),
        name="trellis-shutdown",
        daemon=True,
    ).start()


def _running_here(hostname: str):
    return NodeRun.objects.filter(state=N.RUNNING, worker=hostname)


def _requeue_after_grace(hostname: str, grace: float) -> None:
    deadline = time.monotonic() + grace
    try:
        while time.monotonic() < deadline:
            close_old_connections()
            if not _running_here(hostname).exists():
                return
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        for node in _running_here(hostname):
            requeue_lost(node, reason=f"worker {hostname} shut down while the node ran")
            if node.worker_pid and node.worker_pid != os.getpid():
                logger.warning(
                    "shutdown grace of %gs is over: node %s of run %s queued again; "
                    "stopping pool process %s",
                    grace,
                    node.node_id,
                    node.run_id,
                    node.worker_pid,
                )
                with contextlib.suppress(ProcessLookupError):
                    os.kill(node.worker_pid, signal.SIGKILL)
    except Exception:  # noqa: BLE001 - the reconciler re-queues them once the worker is dead
        logger.exception("could not re-queue the nodes of %s at shutdown", hostname)
    finally:
        close_old_connections()


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
    run = (
        Run.objects.select_related("workflow_version")
        .defer("workflow_version__spec")
        .get(pk=node.run_id)
    )
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
    from .metrics import queue_depths  # noqa: PLC0415 - the reconciler's only broker read

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
    counts["admitted"] = admission.admit_all()
    return counts
