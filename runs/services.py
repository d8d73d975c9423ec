"""The engine's service layer used by the API, the dashboard and commands: queries that respect
ownership, and input validation for run starts."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from jsonschema import Draft202012Validator

from .models import Run, Workflow, WorkflowVersion
from .scheduler import create_run, spec_for_version, start_run
from .spec import SpecError, apply_overrides


def visible_runs(user) -> QuerySet[Run]:
    runs = Run.objects.select_related("workflow_version__workflow")
    return runs if user.is_staff else runs.filter(owner=user)


def visible_workflows(user) -> QuerySet[Workflow]:
    return Workflow.objects.all() if user.is_staff else Workflow.objects.filter(owner=user)


def find_version(workflow: Workflow, number: int | None) -> WorkflowVersion:
    if number is None:
        return workflow.versions.get(version=workflow.latest_version)
    return workflow.versions.get(version=number)


def validated_inputs(version: WorkflowVersion, inputs: Any) -> dict[str, Any]:
    """Run inputs checked against the spec's ``inputs`` schema, with top-level defaults filled.

    Raises SpecError with every problem, each with a path under ``$.inputs``.
    """
    if inputs is None:
        inputs = {}
    if not isinstance(inputs, dict):
        raise SpecError([{"path": "$.inputs", "message": "inputs must be a JSON object"}])
    schema = spec_for_version(version.pk).inputs_schema
    if not schema:
        return inputs
    filled = dict(inputs)
    for name, prop in (schema.get("properties") or {}).items():
        if name not in filled and isinstance(prop, dict) and "default" in prop:
            filled[name] = prop["default"]
    errors = [
        {
            "path": "$.inputs" + "".join(_path_part(p) for p in error.absolute_path),
            "message": error.message,
        }
        for error in sorted(
            Draft202012Validator(schema).iter_errors(filled), key=lambda e: list(e.absolute_path)
        )
    ]
    if errors:
        raise SpecError(errors)
    return filled


def _path_part(part: Any) -> str:
    return f"[{part}]" if isinstance(part, int) else f".{part}"


def start_new_run(
    version: WorkflowVersion,
    user,
    *,
    inputs: Any = None,
    params: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Run:
    """Validate inputs, create the run and trigger it (API, dashboard and CLI all use this)."""
    clean = validated_inputs(version, inputs)
    if overrides:
        apply_overrides(version.spec, overrides)  # raises SpecError naming unknown nodes
    with transaction.atomic():  # the sends happen after this commit
        run = create_run(version, user, inputs=clean, params=params, overrides=overrides)
        start_run(run)
    return run
