"""``max_concurrent_runs``: at most N runs of a workflow are RUNNING or PAUSED at once.

A run triggered while the workflow is at its limit stays PENDING with ``waiting_since`` set
(and a ``run.waiting`` event); runs are admitted oldest first when a slot frees, right after
a run of that workflow ends, and by every reconciler pass (so a missed hook only delays an
admission, never loses one). Admission takes the workflow's row lock, so two workers freeing
slots at once do not admit one run too many. A retried run re-enters RUNNING without
waiting; a PAUSED run keeps its slot.
"""

from __future__ import annotations

import logging

from ..models import Run, Workflow
from ..rules.decisions import may_start
from ..rules.states import RunState
from .definitions import spec_for_version

logger = logging.getLogger(__name__)
R = RunState
ACTIVE = (R.RUNNING, R.PAUSED)


def limit_of(run: Run) -> int | None:
    return spec_for_version(run.workflow_version_id).max_concurrent_runs


def active_runs(workflow_id: int) -> int:
    return Run.objects.filter(workflow_version__workflow_id=workflow_id, status__in=ACTIVE).count()


def lock(workflow_id: int) -> None:
    """Inside a transaction: the workflow's admission lock. Whoever decides about a slot
    (a run starting or waiting, an admission pass) holds it until commit, so an admission
    pass always sees the run that decided to wait just before it."""
    Workflow.objects.select_for_update().filter(pk=workflow_id).values_list("pk").get()


def has_slot(run: Run, limit: int) -> bool:
    """Inside a transaction: lock the workflow and tell whether ``run`` may start now."""
    workflow_id = run.workflow_version.workflow_id
    lock(workflow_id)
    return may_start(active_runs(workflow_id), limit)


def waiting_runs(workflow_id: int):
    return Run.objects.filter(
        workflow_version__workflow_id=workflow_id,
        status=R.PENDING,
        waiting_since__isnull=False,
    ).order_by("waiting_since", "created_at")
