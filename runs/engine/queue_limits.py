"""Per-queue node concurrency: ``TRELLIS_QUEUE_LIMITS="gpu=2,llm=8"``.

At most N nodes of a limited queue are RUNNING at once across every worker on every host
(a GPU, a rate-limited API). The limit is enforced where a node starts: the claim takes the
queue's row lock, counts the queue's RUNNING nodes and claims only below the limit. A
message that finds the queue full is published again with a short delay (the node stays
QUEUED, same token), so it waits in the broker rather than holding a worker slot. Map items
run inside their node and are not counted separately.
"""

from __future__ import annotations

import random
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from ..models import NodeRun, QueueSlot
from ..rules.decisions import queue_has_room
from ..rules.states import NodeState
from .scheduler import claim_node

N = NodeState
FULL: Any = object()  # claim_within_limit: the queue is at its limit, try again later


def limit_for(queue: str | None) -> int | None:
    return settings.TRELLIS_QUEUE_LIMITS.get(queue) if queue else None


def retry_delay() -> float:
    """Seconds before a message that found its queue full is delivered again (jittered, so
    that waiting messages do not all come back at once)."""
    return settings.TRELLIS_QUEUE_RETRY_SECONDS * (0.5 + random.random())


def _slot(queue: str) -> None:
    if not QueueSlot.objects.filter(name=queue).exists():
        try:
            with transaction.atomic():
                QueueSlot.objects.create(name=queue)
        except IntegrityError:
            pass  # another worker created it first


def claim_within_limit(queue: str, limit: int, node_pk: int, token: str, worker: str):
    """Claim like ``scheduler.claim_node`` if the queue has a free slot: the NodeRun, None
    (stale message, drop it) or FULL (publish it again later)."""
    _slot(queue)
    with transaction.atomic():
        QueueSlot.objects.select_for_update().filter(name=queue).values_list("name").get()
        running = NodeRun.objects.filter(queue=queue, state=N.RUNNING).count()
        if not queue_has_room(running, limit):
            if NodeRun.objects.filter(pk=node_pk, state=N.QUEUED, dispatch_token=token).exists():
                return FULL
            return None
        return claim_node(node_pk, token, worker)
