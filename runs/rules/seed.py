"""The seed-004 routes' view of Trellis: its closed state vocabulary and its lenient configs.

Clients of seed-004 were written against its reference implementation (FastAPI + Pydantic
models, ``seeds/004_b829b90437810808.txt``). Two of its habits are rules here, pure like the
rest of ``runs.rules``:

- **States** are the closed set PENDING / RUNNING / COMPLETED / FAILED, for runs and nodes.
  :data:`SEED_RUN_STATUS` and :data:`SEED_NODE_STATE` fold Trellis's detailed states into it
  so that a client switching on them never meets another word, and every node of a finished
  run reads COMPLETED or FAILED.
- **Configs** are a Pydantic model there: ``null`` means absent and keys the handler does not
  know are ignored. :func:`relax_document` and :func:`relax_overrides` apply that reading
  before the strict checker sees the document, and say what they dropped as warnings
  (``{"path", "message"}``, the error item's shape). The resource API stays strict.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from handlers.registry import get_handler

from .spec.model import _key_path
from .states import NodeState as N
from .states import RunState as R

PENDING, RUNNING, COMPLETED, FAILED = "PENDING", "RUNNING", "COMPLETED", "FAILED"
SEED_STATES = (PENDING, RUNNING, COMPLETED, FAILED)

SEED_RUN_STATUS: dict[str, str] = {
    R.PENDING: PENDING,
    R.RUNNING: RUNNING,
    R.PAUSED: RUNNING,  # held by an operator, not finished
    R.COMPLETED: COMPLETED,
    R.FAILED: FAILED,
    R.CANCELLED: FAILED,
}

SEED_NODE_STATE: dict[str, str] = {
    N.PENDING: PENDING,
    N.READY: PENDING,  # its parents are done; the run is paused
    N.QUEUED: PENDING,  # sent to a worker, not yet started
    N.RUNNING: RUNNING,
    N.RETRYING: RUNNING,  # an attempt failed, the next one is due
    N.WAITING: RUNNING,  # waits for an event, an approval or a child run
    N.COMPLETED: COMPLETED,
    N.SKIPPED: COMPLETED,  # its `when` was false: finished, nothing to report
    N.FAILED: FAILED,
    N.UPSTREAM_FAILED: FAILED,  # will never run: a node it needs failed
    N.CANCELLED: FAILED,
}

# `final_status` of the results route, by Trellis run status (the seed names the first).
FINAL_STATUS: dict[str, str] = {
    R.COMPLETED: "workflow_completed",
    R.FAILED: "workflow_failed",
    R.CANCELLED: "workflow_cancelled",
}


def _known_keys(handler: Any) -> frozenset[str] | None:
    """The config keys ``handler`` takes, or None when it takes any key (or is unknown)."""
    try:
        schema = getattr(get_handler(handler), "config_schema", None)
    except (KeyError, TypeError):
        return None
    if not isinstance(schema, Mapping) or schema.get("additionalProperties", True) is not False:
        return None
    return frozenset(schema.get("properties") or ())


def _relax_config(
    handler: Any, config: Mapping[str, Any], base: str, warnings: list[dict[str, str]]
) -> dict[str, Any]:
    known = _known_keys(handler)
    kept: dict[str, Any] = {}
    for key, value in config.items():
        if value is None:
            continue
        if known is not None and key not in known:
            message = (
                f"{key!r} is not a setting of the {handler!r} handler; ignored"
                f" (it takes {', '.join(sorted(known)) or 'no settings'})."
            )
            warnings.append({"path": _key_path(base, key), "message": message})
            continue
        kept[key] = value
    return kept


def _nodes(doc: Any) -> list[Any] | None:
    dag = doc.get("dag") if isinstance(doc, dict) else None
    nodes = dag.get("nodes") if isinstance(dag, dict) else None
    return nodes if isinstance(nodes, list) else None


def relax_document(doc: Any) -> tuple[Any, list[dict[str, str]]]:
    """A copy of a seed-004 document read as its Pydantic models read it, and the warnings.

    In each node's ``config``, ``null`` values are dropped (absent) and so are keys the
    handler's schema does not list (one warning each); ``"config": null`` is no config.
    Anything else, valid or not, is left for the checker to judge.
    """
    nodes = _nodes(doc)
    if nodes is None:
        return doc, []
    warnings: list[dict[str, str]] = []
    relaxed_nodes = []
    for index, node in enumerate(nodes):
        if isinstance(node, dict) and "config" in node and node["config"] is None:
            node = {key: value for key, value in node.items() if key != "config"}
        elif isinstance(node, dict) and isinstance(node.get("config"), Mapping):
            base = f"$.dag.nodes[{index}].config"
            node = {
                **node,
                "config": _relax_config(node.get("handler"), node["config"], base, warnings),
            }
        relaxed_nodes.append(copy.deepcopy(node))
    return {**doc, "dag": {**doc["dag"], "nodes": relaxed_nodes}}, warnings


def relax_overrides(doc: Any, overrides: Any) -> tuple[Any, list[dict[str, str]]]:
    """A trigger body ``{node_id: {config keys}}`` read the same way against ``doc``.

    Null values override nothing; keys the node's handler does not know are dropped with a
    warning (path ``$.<node_id>.<key>``). Unknown node ids and non-object values are left in
    place for :func:`runs.rules.spec.apply_overrides` to refuse.
    """
    if not isinstance(overrides, Mapping):
        return overrides, []
    handlers = {
        node.get("id"): node.get("handler")
        for node in _nodes(doc) or ()
        if isinstance(node, dict) and isinstance(node.get("id"), str)
    }
    warnings: list[dict[str, str]] = []
    relaxed: dict[Any, Any] = {}
    for node_id, values in overrides.items():
        if node_id in handlers and isinstance(values, Mapping):
            base = _key_path("$", node_id)
            values = _relax_config(handlers[node_id], values, base, warnings)
        relaxed[node_id] = values
    return relaxed, warnings
