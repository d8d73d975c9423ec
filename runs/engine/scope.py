"""What a node's templates see: the scope built from the run and its upstream outputs, and
the run's result from its output nodes."""

from __future__ import annotations

from typing import Any

from django.db import connection

from ..models import NodeRun, Run, Session
from ..rules import templating
from ..rules.spec import NodeSpec, WorkflowSpec
from ..rules.states import NodeState
from ..store.writes import rows_to_values

N = NodeState


def scope_for(
    run: Run,
    spec: WorkflowSpec,
    node_spec: NodeSpec,
    *,
    known: dict[str, Any] | None = None,
    **extra: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Template scope for a node, and the upstream outputs it holds (parents and the nodes
    its templates read). ``known``: outputs of COMPLETED nodes the caller holds already
    (as stored), which are not read again."""
    wanted = set(node_spec.dependencies) | set(node_spec.refs)
    outputs = {node_id: output for node_id, output in (known or {}).items() if node_id in wanted}
    missing = sorted(wanted - outputs.keys())
    if missing:
        outputs.update(completed_outputs(run.pk, missing))
    if run.session_id and "session" not in extra:
        extra["session"] = Session.objects.values_list("state", flat=True).get(pk=run.session_id)
    return templating.build_scope(
        inputs=run.inputs,
        outputs=outputs,
        params=run.params,
        run={"id": str(run.pk), "workflow": spec.name, "version": run.workflow_version.version},
        **extra,
    ), outputs


def completed_outputs(run_id: Any, node_ids: list[str]) -> dict[str, Any]:
    """``{node_id: output}`` of the COMPLETED nodes among ``node_ids`` (plain SQL: this runs
    for every node that has parents)."""
    if not node_ids:
        return {}
    names = ("node_id", "output")
    run_value = NodeRun._meta.get_field("run").get_db_prep_value(run_id, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT node_id, output FROM {NodeRun._meta.db_table} WHERE run_id = %s"
            " AND state = %s AND node_id IN (" + ", ".join(["%s"] * len(node_ids)) + ")",
            [run_value, N.COMPLETED, *node_ids],
        )
        rows = cursor.fetchall()
    return dict(rows_to_values(NodeRun, names, rows))


def run_result(run_id: Any, spec: WorkflowSpec) -> Any:
    """Output node(s) result: the single output node's output, else ``{node_id: output}``."""
    outputs = completed_outputs(run_id, list(spec.output_nodes))
    if len(spec.output_nodes) == 1:
        return outputs.get(spec.output_nodes[0])
    return outputs
