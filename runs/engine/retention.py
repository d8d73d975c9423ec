"""Retention: delete finished runs older than a cutoff, with their nodes and events.

Used by ``manage.py purge_runs`` and, when ``TRELLIS_RETENTION_DAYS`` is set, by a beat task.
Runs are deleted in batches, each its own short transaction, so the tables a live run writes
are never held for long. What is never deleted: sessions (they keep their latest state; the
runs they lose are only history), runs that are not finished, and finished runs whose parent
or child run is still live (a parent still waiting on its child's result, or a child still
running under a finished parent).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet

from ..models import NodeRun, Run, RunEvent
from ..rules.states import RUN_FINISHED

logger = logging.getLogger(__name__)

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DEFAULT_BATCH_SIZE = 500


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h``, ``45m``, ``90s`` (a number and one unit) as a timedelta."""
    match = _AGE.match(text or "")
    if not match:
        raise ValueError(
            f"{text!r} is not an age: use a number and a unit, s, m, h or d (e.g. 30d, 12h)"
        )
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def purgeable(cutoff: datetime) -> QuerySet[Run]:
    """Finished runs that ended before ``cutoff`` and are related to no live run.

    A run that never started (cancelled while PENDING) has no ``finished_at`` only if
    something older wrote it that way; its creation time stands in. The conditions on
    related runs are EXISTS subqueries, never joins, so the batch query can lock its rows.
    """
    live_parent = NodeRun.objects.filter(pk=OuterRef("parent_node_id")).exclude(
        run__status__in=RUN_FINISHED
    )
    live_child = Run.objects.filter(parent_node__run_id=OuterRef("pk")).exclude(
        status__in=RUN_FINISHED
    )
    ended_before = Q(finished_at__lt=cutoff) | Q(finished_at__isnull=True, created_at__lt=cutoff)
    return (
        Run.objects.filter(ended_before, status__in=RUN_FINISHED)
        .exclude(Exists(live_parent))
        .exclude(Exists(live_child))
    )


@dataclass
class PurgeCounts:
    runs: int = 0
    nodes: int = 0
    events: int = 0
    batches: int = 0

    def add(self, other: PurgeCounts) -> None:
        self.runs += other.runs
        self.nodes += other.nodes
        self.events += other.events
        self.batches += other.batches

    def __str__(self) -> str:
        return f"{self.runs} runs, {self.nodes} nodes, {self.events} events"


def count_purgeable(cutoff: datetime) -> PurgeCounts:
    """What a purge with this cutoff would delete now (``--dry-run``)."""
    runs = purgeable(cutoff)
    return PurgeCounts(
        runs=runs.count(),
        nodes=NodeRun.objects.filter(run__in=runs).count(),
        events=RunEvent.objects.filter(run__in=runs).count(),
    )


def purge_batch(cutoff: datetime, batch_size: int) -> PurgeCounts:
    """Delete up to ``batch_size`` purgeable runs, their nodes and events, in one transaction.

    The batch's runs are locked first (PostgreSQL; SQLite's IMMEDIATE transaction holds the
    write lock anyway), and rows locked by someone else are skipped, so a run retried at this
    very moment is either locked out of the batch or waits for it; it is never half deleted.
    """
    counts = PurgeCounts()
    with transaction.atomic():
        ids = list(
            purgeable(cutoff)
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("finished_at", "created_at")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return counts
        # A kept child of a deleted run loses its link to the parent's node (as SET_NULL
        # would do), in one UPDATE rather than Django's per-row collection.
        Run.objects.filter(parent_node__run_id__in=ids).exclude(pk__in=ids).update(parent_node=None)
        counts.events = RunEvent.objects.filter(run_id__in=ids).delete()[0]
        # Plain DELETE statements: Django's cascade would load every node row (outputs
        # included) into memory to find what points at it, which the UPDATEs above settled.
        counts.nodes = NodeRun.objects.filter(run_id__in=ids)._raw_delete(NodeRun.objects.db)
        counts.runs = Run.objects.filter(pk__in=ids)._raw_delete(Run.objects.db)
        counts.batches = 1
    return counts


def purge_runs(cutoff: datetime, *, batch_size: int = DEFAULT_BATCH_SIZE) -> PurgeCounts:
    """Delete every purgeable run, batch after batch, until none is left."""
    total = PurgeCounts()
    while (counts := purge_batch(cutoff, batch_size)).batches:
        total.add(counts)
    return total
