"""Workers as the engine sees them: liveness from heartbeats, the queues live workers serve,
and what each one runs."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Count

from ..models import NodeRun, Worker
from ..rules.states import NodeState
from ..store.writes import now

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


def running_per_worker() -> dict[str, int]:
    """RUNNING nodes by worker hostname, in one grouped query."""
    return dict(
        NodeRun.objects.filter(state=N.RUNNING)
        .values_list("worker")
        .annotate(n=Count("id"))
        .order_by()
    )
