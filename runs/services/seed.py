"""The seed-004 routes' service: submit a PENDING execution, trigger it, and read it back in
the seed's vocabulary (DESIGN §10).

A seed client sees the closed states of :mod:`runs.rules.seed` (the detailed state rides
along as ``trellis_status`` / ``trellis_state``); a failed node's ``output`` is
``{"error": <reason>}``; ``results`` is ``{}`` until the run ends; ``aggregated_results`` is
keyed by node id: the output nodes' parents, or the sinks when there is no output node.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from ..engine.definitions import spec_for_version
from ..engine.scheduler import create_run, start_run
from ..models import NodeRun, Run
from ..rules.seed import (
    FINAL_STATUS,
    SEED_NODE_STATE,
    SEED_RUN_STATUS,
    relax_document,
    relax_overrides,
)
from ..rules.spec import SpecError, WorkflowSpec, apply_overrides
from ..rules.states import RUN_FINISHED, InvalidTransition, NodeState, RunState
from .workflows import save_workflow

N = NodeState

Warnings = list[dict[str, str]]


def submit(doc: Any, user) -> tuple[Run, Warnings]:
    """Store ``doc`` (read leniently, see :func:`runs.rules.seed.relax_document`) as a
    workflow version and create a PENDING run of it that waits for :func:`trigger`.
    Nothing is stored when the document is invalid."""
    doc, warnings = relax_document(doc)
    with transaction.atomic():
        version, _ = save_workflow(doc, user)
        run = create_run(version, user)
    return run, warnings


def trigger(run: Run, overrides: Any) -> tuple[Run, Warnings]:
    """Start a PENDING run, ``overrides`` (``{node_id: {config keys}}``, read leniently)
    replacing node configs (checked against the spec first). ``InvalidTransition`` when the
    run is not PENDING any more."""
    overrides = overrides if overrides not in (None, "") else {}
    if not isinstance(overrides, dict):
        raise SpecError([{"path": "$", "message": "the body must be an object of node ids"}])
    spec_doc = run.workflow_version.spec
    overrides, warnings = relax_overrides(spec_doc, overrides)
    if overrides:
        apply_overrides(spec_doc, overrides)
    if run.status != RunState.PENDING:
        raise InvalidTransition("run", run.status, RunState.RUNNING)
    if not start_run(run, overrides=overrides, params=overrides):
        run.refresh_from_db(fields=["status"])
        raise InvalidTransition("run", run.status, RunState.RUNNING)
    return run, warnings


# --------------------------------------------------------------------------------------
# Reading an execution


def _failure(node: NodeRun, nodes: dict[str, NodeRun], spec: WorkflowSpec) -> str:
    """Why ``node`` (FAILED, UPSTREAM_FAILED or CANCELLED) did not complete, in a sentence."""
    message = node.error.get("message") if isinstance(node.error, dict) else node.error
    if message:
        return str(message)
    if node.state == N.UPSTREAM_FAILED:
        parents = [
            dep
            for dep in spec.nodes[node.node_id].dependencies
            if dep in nodes and SEED_NODE_STATE[nodes[dep].state] == "FAILED"
        ]
        named = ", ".join(parents) or "a node it needs"
        return f"not run: {named} did not complete"
    if node.state == N.CANCELLED:
        return "cancelled"
    return f"node {node.node_id} failed"


def _output(node: NodeRun, nodes: dict[str, NodeRun], spec: WorkflowSpec) -> Any:
    """A node's ``output`` as the seed shows it: ``{}`` until it has one, and
    ``{"error": <reason>, "type": <kind>}`` when it failed."""
    if SEED_NODE_STATE[node.state] == "FAILED":
        kind = node.error.get("type") if isinstance(node.error, dict) else None
        failure = {"error": _failure(node, nodes, spec)}
        return {**failure, "type": kind} if kind else failure
    return node.output if node.output is not None else {}


def _nodes(run: Run, spec: WorkflowSpec) -> dict[str, NodeRun]:
    """The run's nodes by id, in the spec's document order."""
    rows = {node.node_id: node for node in run.nodes.all()}
    return {node_id: rows[node_id] for node_id in spec.nodes if node_id in rows}


def status(run: Run) -> dict[str, Any]:
    """``GET /workflows/{id}``: the run and each node's state and output."""
    spec = spec_for_version(run.workflow_version_id)
    nodes = _nodes(run, spec)
    return {
        "execution_id": str(run.pk),
        "status": SEED_RUN_STATUS[run.status],
        "trellis_status": run.status,
        "nodes": {
            node_id: {
                "state": SEED_NODE_STATE[node.state],
                "output": _output(node, nodes, spec),
                "trellis_state": node.state,
            }
            for node_id, node in nodes.items()
        },
    }


def _result_nodes(spec: WorkflowSpec) -> list[str]:
    """The nodes ``aggregated_results`` is keyed by: the output nodes' parents in document
    order, or the sinks (``spec.output_nodes``) when there is no output node."""
    outputs = [n for n in spec.output_nodes if spec.nodes[n].handler == "output"]
    if not outputs:
        return list(spec.output_nodes)
    parents = {dep for n in outputs for dep in spec.nodes[n].dependencies}
    return [node_id for node_id in spec.nodes if node_id in parents]


def results(run: Run) -> dict[str, Any]:
    """``GET /workflows/{id}/results``: ``results`` is ``{}`` until the run ends; then its
    ``final_status``, ``aggregated_results`` and, when it did not complete, the ``error``
    and each failed node's reason (``failed_nodes``)."""
    seed_status = SEED_RUN_STATUS[run.status]
    body: dict[str, Any] = {
        "execution_id": str(run.pk),
        "status": seed_status,
        "trellis_status": run.status,
        "completed": run.status == RunState.COMPLETED,
        "results": {},
    }
    if run.status not in RUN_FINISHED:
        body["message"] = f"The workflow has not finished yet (status {seed_status})."
        return body
    spec = spec_for_version(run.workflow_version_id)
    nodes = _nodes(run, spec)
    outcome: dict[str, Any] = {
        "final_status": FINAL_STATUS[run.status],
        "aggregated_results": {
            node_id: _output(nodes[node_id], nodes, spec)
            for node_id in _result_nodes(spec)
            if node_id in nodes
        },
    }
    if run.status == RunState.COMPLETED:
        body["message"] = "Results retrieved successfully."
    else:
        failed = {
            node_id: _failure(node, nodes, spec)
            for node_id, node in nodes.items()
            if node.state == N.FAILED
        }
        reason = "; ".join(f"{node_id}: {why}" for node_id, why in failed.items())
        error = reason or run.error or run.status.lower()
        outcome["error"] = error
        outcome["failed_nodes"] = failed
        verb = "was cancelled" if run.status == RunState.CANCELLED else "failed"
        body["message"] = f"The workflow {verb}: {error}"
    body["results"] = outcome
    return body
