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
from typing import Any

from django.db import transaction

from .models import Run, Workflow
from .rules.states import RunState

logger = logging.getLogger(__name__)
R = RunState
ACTIVE = (R.RUNNING, R.PAUSED)


def limit_of(run: Run) -> int | None:
    from .scheduler import spec_for_version

    return spec_for_version(run.workflow_version_id).max_concurrent_runs


def active_runs(workflow_id: int) -> int:
    return Run.objects.filter(workflow_version__workflow_id=workflow_id, status__in=ACTIVE).count()


def has_slot(run: Run, limit: int) -> bool:
    """Inside a transaction: lock the workflow and tell whether ``run`` may start now."""
    workflow_id = run.workflow_version.workflow_id
    Workflow.objects.select_for_update().filter(pk=workflow_id).values_list("pk").get()
    return active_runs(workflow_id) < limit


def wait_for_slot(run: Run, limit: int, fields: dict[str, Any]) -> bool:
    """Inside start_run's transaction: mark ``run`` waiting (False if it was not PENDING or
    already waiting)."""
    from .transitions import now, record_event

    fields = {key: value for key, value in fields.items() if key != "started_at"}
    since = now()
    updated = Run.objects.filter(pk=run.pk, status=R.PENDING, waiting_since__isnull=True).update(
        waiting_since=since, **fields
    )
    if not updated:
        return False
    run.waiting_since = since
    for key, value in fields.items():
        setattr(run, key, value)
    record_event(run.pk, "run.waiting", {"max_concurrent_runs": limit})
    return True


def waiting_runs(workflow_id: int):
    return Run.objects.filter(
        workflow_version__workflow_id=workflow_id,
        status=R.PENDING,
        waiting_since__isnull=False,
    ).order_by("waiting_since", "created_at")


def admit_waiting(workflow_id: int) -> int:
    """Start as many waiting runs of the workflow as its free slots allow; how many started."""
    from .scheduler import start_run

    started = 0
    while True:
        run = waiting_runs(workflow_id).select_related("workflow_version").first()
        if run is None:
            return started
        if not start_run(run, overrides=run.overrides, params=run.params, admitting=True):
            # No slot (start_run left it waiting), or another process started or cancelled
            # it meanwhile: the first means stop, the second means try the next one.
            run.refresh_from_db(fields=["status", "waiting_since"])
            if run.status == R.PENDING and run.waiting_since is not None:
                return started
            continue
        started += 1


def admit_after_commit(run: Run) -> None:
    """Call in the transaction that ends ``run``: its workflow admits waiting runs after."""
    if not limit_of(run):
        return
    workflow_id = (
        run.workflow_version.workflow_id
        if "workflow_version" in run._state.fields_cache
        else Run.objects.filter(pk=run.pk)
        .values_list("workflow_version__workflow_id", flat=True)
        .get()
    )

    def admit() -> None:
        try:
            admit_waiting(workflow_id)
        except Exception:  # noqa: BLE001 - the reconciler admits them on its next pass
            logger.exception("could not admit waiting runs of workflow %s", workflow_id)

    transaction.on_commit(admit)


def admit_all() -> int:
    """Reconciler pass: every workflow with waiting runs gets its free slots filled."""
    workflow_ids = (
        Run.objects.filter(status=R.PENDING, waiting_since__isnull=False)
        .values_list("workflow_version__workflow_id", flat=True)
        .distinct()
    )
    return sum(admit_waiting(workflow_id) for workflow_id in list(workflow_ids))


def waiting_note(run: Run) -> str | None:
    """A sentence for a run that waits for a slot, else None."""
    if run.status != R.PENDING or getattr(run, "waiting_since", None) is None:
        return None
    limit: Any = limit_of(run)
    return (
        f"waiting for a slot: workflow {run.workflow_version.workflow.name!r} allows "
        f"{limit} concurrent run{'s' if limit != 1 else ''} (max_concurrent_runs)"
    )
