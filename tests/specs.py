"""The one place tests build workflow spec documents, save them and start their runs.

``py`` builds a python-function node, ``spec`` a whole document; ``save`` and ``run_spec``
store one (and start it) through the services, ``create`` and ``start`` through the API
client. Importing this module needs neither Django nor a database: the helpers that write
import the services when they are called, so pure (``unit``) tests may use the builders.

``STAND_INS`` name handlers with known config schemas for the pure spec tests; the
``stand_in_handlers`` fixture in tests/conftest.py puts them in the registry for a test.
"""

from __future__ import annotations

import uuid
from typing import Any

from handlers.registry import Handler


def unique_name(prefix: str = "wf") -> str:
    """A workflow name no other test uses: ``<prefix>-<8 hex digits>``."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def py(node_id: str, function: str, deps=(), **extra: Any) -> dict[str, Any]:
    """A ``python`` node calling ``function`` (tests/testapp/handlers.py) with ``kwargs``;
    every other keyword (``retries``, ``queue``, ``when``, ``map`` ...) is a node key."""
    kwargs = extra.pop("kwargs", {})
    return {
        "id": node_id,
        "handler": "python",
        "dependencies": list(deps),
        "config": {"function": function, "kwargs": kwargs},
        **extra,
    }


def spec(nodes, *, name: str | None = None, prefix: str = "wf", **top: Any) -> dict[str, Any]:
    """A workflow document of ``nodes``, named ``name`` or a fresh ``<prefix>-...`` name;
    ``top`` adds top-level keys (``inputs``, ``defaults``, ``schedule``, ``description`` ...)."""
    return {"name": name or unique_name(prefix), "dag": {"nodes": list(nodes)}, **top}


# --------------------------------------------------------------------------------------
# Through the services (the caller has the database)


def save(user, nodes, **top: Any):
    """Save ``spec(nodes, **top)`` as ``user``'s workflow; the new WorkflowVersion."""
    from runs.services.workflows import save_workflow

    version, _ = save_workflow(spec(nodes, **top), user)
    return version


def run_spec(user, nodes, *, inputs=None, **top: Any):
    """Save the workflow and start a run of it, as the API does; the Run."""
    from runs.services.runs import start_new_run

    return start_new_run(save(user, nodes, **top), user, inputs=inputs or {})


# --------------------------------------------------------------------------------------
# Through the API (``api`` is an authenticated rest_framework APIClient)


def create(api, nodes, name: str | None = None, **top: Any) -> str:
    """POST the workflow to /api/v1/workflows/ (must be created); its name."""
    doc = spec(nodes, name=name, **top)
    response = api.post("/api/v1/workflows/", doc, format="json")
    assert response.status_code == 201, response.json()
    return doc["name"]


def start(api, name: str, inputs=None) -> str:
    """POST a run of the workflow ``name`` to /api/v1/runs/ (must be created); its id."""
    response = api.post("/api/v1/runs/", {"workflow": name, "inputs": inputs or {}}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


# --------------------------------------------------------------------------------------
# Stand-in handlers for the pure spec tests (tests/test_spec.py, tests/test_spec_scale.py)


def stand_in(name: str, schema: dict[str, Any]) -> Handler:
    """A handler called ``name`` that accepts configs matching ``schema`` (it never runs)."""
    return type(f"StandIn_{name}", (Handler,), {"name": name, "config_schema": schema})()


STAND_INS: dict[str, dict[str, Any]] = {
    "t_input": {"type": "object", "additionalProperties": False, "properties": {}},
    "t_needs_url": {
        "type": "object",
        "additionalProperties": False,
        "required": ["url"],
        "properties": {
            "url": {"type": "string", "minLength": 1},
            "timeout": {"type": "number", "exclusiveMinimum": 0},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "t_python": {
        "type": "object",
        "additionalProperties": False,
        "required": ["function"],
        "properties": {"function": {"type": "string"}, "kwargs": {"type": "object"}},
    },
    "t_any": {"type": "object"},
}
