"""The one JSON shape of each object, built by one function each.

The API (``runs/api.py``), the WebSocket consumers (``runs/consumers.py``), the SSE stream
(``runs/streams.py``) and the dashboard (``frontend/views.py`` and the page scripts) all send
these shapes. Datetimes are ISO 8601 strings (``None`` when unset). A consumer that needs less
takes a documented subset built by the same function with a flag, never a copy:

- run: :func:`run_view`. ``row=True`` is the run-list row (the run list, its socket, a
  workflow's recent runs); ``nodes=True`` adds the nodes, the queue warnings and the result.
- node: :func:`node_view`. ``full=False`` leaves out the output, the error and the attempt
  history (the run page embeds every node and loads those in its node panel).
- event: :func:`event_payload`, defined in ``runs.store.publish`` (its lowest user: the
  publisher sends it to the channel layer after commit) and re-exported here.
- worker: :func:`worker_view` (:func:`worker_views` for all of them with one count query).
- session: :func:`session_view`. ``run_counts=True`` adds ``run_count`` and ``active_runs``
  (the dashboard's session list; the sessions must come from :func:`with_run_counts`).

Adding a field here adds it everywhere; removing or renaming one breaks the public API
(``/api/v1/…``), whose tests pin the fields.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Count, Q, QuerySet

from ..engine.workers import liveness, running_per_worker
from ..models import NodeRun, Run, Session, Worker
from ..rules.states import RunState
from ..store.publish import event_payload
from .runs import needs_input, waiting_note
from .workers import queue_warnings

__all__ = [
    "event_payload",
    "iso",
    "node_view",
    "run_view",
    "session_view",
    "with_run_counts",
    "worker_view",
    "worker_views",
]


def iso(value: datetime | None) -> str | None:
    """A datetime as ISO 8601, or None."""
    return value.isoformat() if value else None


# --------------------------------------------------------------------------------------
# Runs and nodes


def run_view(run: Run, *, nodes: bool = False, row: bool = False) -> dict[str, Any]:
    """A run. Load it with ``select_related("workflow_version__workflow", "owner")``
    (``visible_runs(user).select_related("owner")``) so that a list costs one query.

    ``row=True``: the run-list row, without ``inputs`` and ``params`` (JSON documents of any
    size) and ``waiting`` (it may read the spec); what the run list, its socket and a
    workflow's recent runs show.

    ``needs_input``: RUNNING with a WAITING node (a person is asked for something); load the
    runs through ``with_needs_input`` so that a list reads it in the same query.

    ``nodes=True``: adds ``nodes`` (each :func:`node_view`, in id order, with its queue
    warning), ``warnings`` (those warnings as sentences) and ``result``: one more query,
    two when some node waits in a queue (``queue_warnings`` reads the served queues).
    """
    data: dict[str, Any] = {
        "id": str(run.pk),
        "workflow": run.workflow_version.workflow.name,
        "version": run.workflow_version.version,
        "status": run.status,
        "owner": run.owner.get_username() if run.owner_id else None,
        "inputs": run.inputs,
        "params": run.params,
        "session": str(run.session_id) if run.session_id else None,
        "parent_node": run.parent_node_id,
        "error": run.error,
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "needs_input": needs_input(run),
    }
    if row:
        del data["inputs"], data["params"]
    else:
        data["waiting"] = waiting_note(run)
    if nodes:
        rows = list(run.nodes.order_by("id"))
        warnings = queue_warnings(rows)
        data["nodes"] = [node_view(node, warnings.get(node.node_id)) for node in rows]
        data["warnings"] = [f"node {node_id} {text}" for node_id, text in warnings.items()]
        data["result"] = run.result
    return data


def node_view(node: NodeRun, warning: str | None = None, *, full: bool = True) -> dict[str, Any]:
    """A node of a run; ``warning`` from :func:`queue_warnings` (why it waits unserved).

    ``full=False`` leaves out ``output``, ``error`` and ``attempts`` (JSON of any size).
    """
    data: dict[str, Any] = {
        "id": node.node_id,
        "handler": node.handler,
        "state": node.state,
        "attempt": node.attempt,
        "max_attempts": node.max_attempts,
        "queue": node.queue,
        "output": node.output,
        "error": node.error,
        "attempts": node.attempts,
        "worker": node.worker,
        "queued_at": iso(node.queued_at),
        "started_at": iso(node.started_at),
        "finished_at": iso(node.finished_at),
        "warning": warning,
    }
    if not full:
        del data["output"], data["error"], data["attempts"]
    return data


# --------------------------------------------------------------------------------------
# Workers


def worker_view(worker: Worker, running: dict[str, int]) -> dict[str, Any]:
    """A worker with its liveness; ``running`` from ``running_per_worker()``."""
    return {
        "hostname": worker.hostname,
        "pid": worker.pid,
        "queues": worker.queues,
        "concurrency": worker.concurrency,
        "started_at": iso(worker.started_at),
        "last_seen": iso(worker.last_seen),
        "stopped_at": iso(worker.stopped_at),
        "liveness": liveness(worker),
        "nodes_running": running.get(worker.hostname, 0),
    }


def worker_views() -> list[dict[str, Any]]:
    """Every worker (hostname order), in two queries however many there are."""
    running = running_per_worker()
    return [worker_view(worker, running) for worker in Worker.objects.all()]


# --------------------------------------------------------------------------------------
# Sessions


def with_run_counts(sessions: QuerySet[Session]) -> QuerySet[Session]:
    """``sessions`` annotated for ``session_view(…, run_counts=True)``, in the same query."""
    return sessions.annotate(
        run_count=Count("runs"),
        active_runs=Count("runs", filter=Q(runs__status__in=[RunState.RUNNING, RunState.PAUSED])),
    )


def session_view(session: Session, *, run_counts: bool = False) -> dict[str, Any]:
    """A session and its state. Load it with ``select_related("owner")``.

    ``run_counts=True``: adds ``run_count`` (its runs) and ``active_runs`` (RUNNING or
    PAUSED), read from :func:`with_run_counts`'s annotations.
    """
    data: dict[str, Any] = {
        "id": str(session.pk),
        "name": session.name,
        "state": session.state,
        "revision": session.revision,
        "owner": session.owner.get_username(),
        "created_at": iso(session.created_at),
        "updated_at": iso(session.updated_at),
    }
    if run_counts:
        data["run_count"] = session.run_count
        data["active_runs"] = session.active_runs
    return data
