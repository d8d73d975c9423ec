"""The engine's service layer used by the API, the dashboard and commands: queries that respect
ownership, and input validation for run starts."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from jsonschema import Draft202012Validator

from ..engine import admission
from ..engine.definitions import spec_for_version
from ..engine.scheduler import create_run, reject_waiting, settle_waiting, start_run
from ..engine.scope import scope_for
from ..engine.secrets import MaskedSecrets
from ..models import NodeRun, Run, Session, Workflow, WorkflowVersion
from ..rules.decisions import slot_wait_reason
from ..rules.limits import check_depth, check_event_data
from ..rules.spec import NodeSpec, SpecError, WorkflowSpec, apply_overrides
from ..rules.states import InvalidTransition, NodeState, RunState
from ..rules.templating import render_value
from ..store.dbretry import retry_on_deadlock
from ..store.writes import batched_events


def visible_runs(user) -> QuerySet[Run]:
    runs = Run.objects.select_related("workflow_version__workflow")
    return runs if user.is_staff else runs.filter(owner=user)


def visible_sessions(user) -> QuerySet[Session]:
    return Session.objects.all() if user.is_staff else Session.objects.filter(owner=user)


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
    _check_storable(inputs, "$.inputs")
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


def _check_storable(value: Any, path: str) -> None:
    """Forms and commands reach here without the API's parser: the same depth and NUL rules."""
    try:
        check_depth(value, path)
    except ValueError as exc:
        raise SpecError([{"path": path, "message": str(exc)}]) from None


def _path_part(part: Any) -> str:
    return f"[{part}]" if isinstance(part, int) else f".{part}"


@retry_on_deadlock
def start_new_run(
    version: WorkflowVersion,
    user,
    *,
    inputs: Any = None,
    params: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    session: Session | None = None,
    parent_node: NodeRun | None = None,
) -> Run:
    """Validate inputs, create the run and trigger it (API, dashboard, CLI, schedules and
    `workflow` nodes all come through here)."""
    clean = validated_inputs(version, inputs)
    if overrides:
        apply_overrides(version.spec, overrides)  # raises SpecError naming unknown nodes
    # The sends happen after this commit; the events of both steps go in one INSERT.
    with transaction.atomic(), batched_events():
        run = create_run(
            version,
            user,
            inputs=clean,
            params=params,
            overrides=overrides,
            session=session,
            parent_node=parent_node,
        )
        start_run(run)
    return run


def start_child_run(parent: Run, node: NodeRun, instruction) -> Run:
    """The child run of a `workflow` node: same owner and session as its parent."""
    workflow = visible_workflows(parent.owner).filter(name=instruction.workflow).first()
    if workflow is None:
        raise SpecError(
            [
                {
                    "path": "$.config.workflow",
                    "message": f"no workflow named {instruction.workflow!r}",
                }
            ]
        )
    try:
        version = find_version(workflow, instruction.version)
    except WorkflowVersion.DoesNotExist:
        raise SpecError(
            [{"path": "$.config.version", "message": f"no version {instruction.version}"}]
        ) from None
    return start_new_run(
        version,
        parent.owner,
        inputs=instruction.inputs,
        session=parent.session,
        parent_node=node,
    )


@retry_on_deadlock
def deliver_event(run: Run, node_id: str, data: Any, user=None) -> NodeRun:
    """Complete a WAITING `wait_for_event` node with posted data (human in the loop).

    Raises NodeRun.DoesNotExist for an unknown node, InvalidTransition when it is not
    waiting, SpecError when the data does not match the node's ``schema``, PayloadTooLarge
    when it is over ``TRELLIS_MAX_EVENT_BYTES``.
    """
    check_event_data(data)
    _check_storable(data, "$.data")
    node = NodeRun.objects.get(run=run, node_id=node_id)
    if node.handler != "wait_for_event" or node.state != NodeState.WAITING:
        raise InvalidTransition(f"node {node_id}", node.state, NodeState.COMPLETED)
    schema = spec_for_version(run.workflow_version_id).nodes[node_id].config.get("schema")
    if isinstance(schema, dict):
        errors = [
            {
                "path": "$.data" + "".join(_path_part(p) for p in e.absolute_path),
                "message": e.message,
            }
            for e in Draft202012Validator(schema).iter_errors(data)
        ]
        if errors:
            raise SpecError(errors)
    actor = user.get_username() if user is not None and user.is_authenticated else None
    if not settle_waiting(
        node, NodeState.COMPLETED, output=data, data={"by": actor, "event": data}
    ):
        node.refresh_from_db(fields=["state"])
        raise InvalidTransition(f"node {node_id}", node.state, NodeState.COMPLETED)
    return node


REJECT_REASON_MAX = 2000


@retry_on_deadlock
def reject_event(run: Run, node_id: str, reason: str, user=None) -> NodeRun:
    """Reject what a WAITING `wait_for_event` node asks for: it fails with ``reason`` (error
    type ``Rejected``, not retried) and its ``trigger_rule``s decide what follows.

    Raises NodeRun.DoesNotExist for an unknown node, SpecError for an empty or too long
    reason, InvalidTransition when the node is not waiting.
    """
    reason = reason.strip() if isinstance(reason, str) else ""
    if not reason or len(reason) > REJECT_REASON_MAX:
        message = f"a rejection needs a reason (1 to {REJECT_REASON_MAX} characters)"
        raise SpecError([{"path": "$.reject", "message": message}])
    node = NodeRun.objects.get(run=run, node_id=node_id)
    if node.handler != "wait_for_event" or node.state != NodeState.WAITING:
        raise InvalidTransition(f"node {node_id}", node.state, NodeState.FAILED)
    actor = user.get_username() if user is not None and user.is_authenticated else None
    if not reject_waiting(node, reason, by=actor):
        node.refresh_from_db(fields=["state"])
        raise InvalidTransition(f"node {node_id}", node.state, NodeState.FAILED)
    return node


def with_needs_input(runs: QuerySet[Run]) -> QuerySet[Run]:
    """``runs`` annotated with ``has_waiting_node`` (some node is WAITING), which
    :func:`needs_input` and ``run_view``'s ``needs_input`` read in the same query."""
    waiting = NodeRun.objects.filter(run=OuterRef("pk"), state=NodeState.WAITING)
    return runs.annotate(has_waiting_node=Exists(waiting))


def needing_input(runs: QuerySet[Run]) -> QuerySet[Run]:
    """The runs that wait for a person: RUNNING with at least one WAITING node."""
    return with_needs_input(runs).filter(has_waiting_node=True, status=RunState.RUNNING)


def needs_input(run: Run) -> bool:
    """A run waits for a person: it is RUNNING and one of its nodes is WAITING (read from
    :func:`with_needs_input`'s annotation when there, else one query)."""
    if run.status != RunState.RUNNING:
        return False
    annotated = getattr(run, "has_waiting_node", None)
    if annotated is not None:
        return bool(annotated)
    return run.nodes.filter(state=NodeState.WAITING).exists()


def waiting_note(run: Run) -> str | None:
    """A sentence for a run that waits for a slot, else None."""
    if run.status != RunState.PENDING or getattr(run, "waiting_since", None) is None:
        return None
    return slot_wait_reason(run.workflow_version.workflow.name, admission.limit_of(run))


# --------------------------------------------------------------------------------------
# Reading a node as its handler sees it


def rendered_config(run: Run, spec: WorkflowSpec, node_spec: NodeSpec, node: NodeRun):
    """``(config, note)``: the node's config rendered as its handler received it (secrets as
    placeholders), or None and a sentence saying when it will be rendered."""
    config = dict(node_spec.config)
    config.update((run.overrides or {}).get(node.node_id) or {})
    if node_spec.map:
        return None, "rendered once per item of the map"
    unstarted = (NodeState.PENDING, NodeState.READY, NodeState.SKIPPED, NodeState.UPSTREAM_FAILED)
    if node.state in unstarted or node.attempt == 0:
        return None, "rendered when the node starts"
    try:
        scope, _ = scope_for(run, spec, node_spec)
        return render_value(config, {**scope, "secrets": MaskedSecrets()}), ""
    except Exception as exc:  # noqa: BLE001 - shown in the panel, as the node would see it
        return None, f"cannot render now: {exc}"
