"""Queues for the API and the dashboard: unserved queues and queue limits in use (a
worker's shape is ``runs.services.shapes.worker_view``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import Count, Q

from ..engine.workers import served_queues
from ..models import NodeRun
from ..rules.decisions import unserved_queue_reason
from ..rules.states import NodeState

N = NodeState


def queue_warnings(nodes, served: set[str] | None = None) -> dict[str, str]:
    """``{node id: sentence}`` for nodes waiting in a queue that no live worker serves, so
    that they do not wait silently (they run as soon as such a worker starts)."""
    waiting = [node for node in nodes if node.state in (N.READY, N.QUEUED)]
    if not waiting:
        return {}
    served = served_queues() if served is None else served
    return {
        node.node_id: unserved_queue_reason(node.queue)
        for node in waiting
        if node.queue not in served
    }


def queue_usage() -> list[dict[str, Any]]:
    """Each limited queue: its limit, and how many of its nodes run and wait now."""
    limits = settings.TRELLIS_QUEUE_LIMITS
    if not limits:
        return []
    counts = {
        row["queue"]: row
        for row in NodeRun.objects.filter(queue__in=list(limits))
        .values("queue")
        .annotate(
            running=Count("id", filter=Q(state=N.RUNNING)),
            queued=Count("id", filter=Q(state=N.QUEUED)),
        )
        .order_by()
    }
    return [
        {
            "queue": queue,
            "limit": limit,
            "running": counts.get(queue, {}).get("running", 0),
            "queued": counts.get(queue, {}).get("queued", 0),
        }
        for queue, limit in sorted(limits.items())
    ]
