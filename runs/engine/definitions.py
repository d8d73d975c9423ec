"""Workflow definitions as the engine reads them: parsed specs and runs, cached per process.

Versions never change once stored, and what a worker reads of a RUNNING run (version,
inputs, params, overrides, session, parent node) never changes either, so each process
parses a spec and loads a run once."""

from __future__ import annotations

import copy
import functools

from django.db import connection

from ..models import Run, WorkflowVersion
from ..rules.spec import WorkflowSpec, parse_spec
from ..store.writes import rows_to_values


@functools.lru_cache(maxsize=256)
def _cached_spec(version_id: int) -> WorkflowSpec:
    doc = WorkflowVersion.objects.values_list("spec", flat=True).get(pk=version_id)
    return parse_spec(doc)


def spec_for_version(version_id: int) -> WorkflowSpec:
    """The parsed spec of a version. Versions are immutable, so each process parses once."""
    return _cached_spec(version_id)


_RUN_FIELDS = tuple(field.attname for field in Run._meta.concrete_fields)


@functools.lru_cache(maxsize=1024)
def _cached_run(run_id) -> Run:
    columns = ", ".join(connection.ops.quote_name(f.column) for f in Run._meta.concrete_fields)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns} FROM {Run._meta.db_table} WHERE id = %s",
            [Run._meta.pk.get_db_prep_value(run_id, connection)],
        )
        rows = cursor.fetchall()
    if not rows:
        raise Run.DoesNotExist(run_id)
    run = Run.from_db(connection.alias, _RUN_FIELDS, rows_to_values(Run, _RUN_FIELDS, rows)[0])
    run.workflow_version = _version_for_scope(run.workflow_version_id)
    return run


@functools.lru_cache(maxsize=256)
def _version_for_scope(version_id: int) -> WorkflowVersion:
    """A version without its spec (templates read ``run.version``); versions never change."""
    return WorkflowVersion.objects.defer("spec").get(pk=version_id)


def run_for_worker(run_id, status: str) -> Run:
    """A run as a worker needs it, without a query per node: what a worker reads of a run
    once it is RUNNING (version, inputs, params, overrides, session, parent node) never
    changes, so each process loads it once. ``status`` is what the caller's own statement
    just checked. Each call gets its own copy (the JSON fields too: handlers may mutate
    their inputs)."""
    run = copy.copy(_cached_run(run_id))
    run.status = status
    run.inputs = copy.deepcopy(run.inputs)
    run.params = copy.deepcopy(run.params)
    run.overrides = copy.deepcopy(run.overrides)
    return run


def load_run(run_id) -> Run:
    """A run with its version (without the spec document, which spec_for_version caches):
    how the scheduler, the reconciler and the workers load the run of a node."""
    return (
        Run.objects.select_related("workflow_version")
        .defer("workflow_version__spec")
        .get(pk=run_id)
    )
