"""The worker process's side of liveness: heartbeats and a bounded warm shutdown.

Each worker process writes a heartbeat row every ``TRELLIS_HEARTBEAT_SECONDS`` from a thread
of its main process (with the pids of its pool processes), keeps its database connection
across tasks, and on a warm shutdown gives running nodes ``TRELLIS_SHUTDOWN_GRACE`` seconds
before queueing them again (runs.engine.reconciler does the rest once a worker is dead).
Connected to Celery's worker signals when runs.tasks is imported.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time

from celery import signals
from django.conf import settings
from django.db import close_old_connections, connections

from .engine.reconciler import requeue_lost
from .models import NodeRun, Worker
from .rules.states import NodeState
from .store.writes import now

logger = logging.getLogger(__name__)
N = NodeState


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
    """The pool is gone: nothing runs here any more. A node still recorded RUNNING on this
    worker was lost with its pool process (a SIGTERM to the whole process group, as systemd's
    ``KillMode=control-group`` sends, kills the pool before the graceful path can run), so it
    is queued again now rather than when a reconciler notices the dead worker."""
    _stop.set()
    hostname = getattr(sender, "hostname", None)
    if hostname:
        try:
            _requeue_running(hostname)
            Worker.objects.filter(hostname=hostname).update(stopped_at=now())
        except Exception:  # noqa: BLE001 - shutting down; the reconciler repairs the rest
            logger.exception("could not re-queue the nodes of %s or mark it stopped", hostname)
        finally:
            close_old_connections()


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


def _requeue_running(hostname: str) -> list[NodeRun]:
    """Queue again every node still RUNNING on this worker; returns them."""
    nodes = list(_running_here(hostname))
    for node in nodes:
        requeue_lost(node, reason=f"worker {hostname} shut down while the node ran")
    return nodes


def _requeue_after_grace(hostname: str, grace: float) -> None:
    deadline = time.monotonic() + grace
    try:
        while time.monotonic() < deadline:
            close_old_connections()
            if not _running_here(hostname).exists():
                return
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        for node in _requeue_running(hostname):
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
