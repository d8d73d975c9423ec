"""Workflow definitions: validate and store a spec as a new version."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from ..engine.schedules import sync_schedule
from ..models import Workflow, WorkflowVersion
from ..rules.spec import parse_spec, spec_hash


def save_workflow(doc: dict[str, Any], user) -> tuple[WorkflowVersion, bool]:
    """Store a validated spec: a new workflow, a new version, or (identical spec) the latest.

    Returns ``(version, created)``. Raises ``spec.SpecError`` for an invalid spec and
    ``PermissionError`` when the name belongs to another user.
    """
    spec = parse_spec(doc)
    digest = spec_hash(doc)
    with transaction.atomic():
        workflow, _ = Workflow.objects.select_for_update().get_or_create(
            name=spec.name, defaults={"owner": user, "description": spec.description}
        )
        if workflow.owner_id != user.pk and not user.is_staff:
            raise PermissionError(f"the workflow name {spec.name!r} belongs to another user")
        latest = workflow.versions.order_by("-version").first()
        if latest is not None and latest.spec_hash == digest:
            return latest, False
        number = (latest.version if latest else 0) + 1
        version = WorkflowVersion.objects.create(
            workflow=workflow, version=number, spec=doc, spec_hash=digest, created_by=user
        )
        workflow.latest_version = number
        workflow.description = spec.description
        workflow.save(update_fields=["latest_version", "description", "updated_at"])
        sync_schedule(workflow, spec.schedule)
    return version, True


def saved_state(doc: dict[str, Any]) -> tuple[int | None, bool]:
    """``(latest version number or None, whether that version is this very document)``:
    what ``save_workflow(doc)`` would find, without saving (``workflow sync --check``)."""
    latest = (
        WorkflowVersion.objects.filter(workflow__name=doc.get("name"))
        .order_by("-version")
        .values_list("version", "spec_hash")
        .first()
    )
    if latest is None:
        return None, False
    return latest[0], latest[1] == spec_hash(doc)
