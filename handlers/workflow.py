"""`workflow`: a sub-workflow. Starts a child run of another workflow and completes with the
child's result (fails when the child fails; cancelling the parent cancels the child)."""

from __future__ import annotations

from typing import Any

from .registry import Context, Handler, StartChildRun, register


@register("workflow")
class WorkflowHandler(Handler):
    """Run another workflow as a child run; its result is this node's output."""

    description = "Starts a child run of another workflow and completes with its result."
    config_schema = {
        "type": "object",
        "properties": {
            "workflow": {"type": "string", "minLength": 1, "description": "workflow name"},
            "version": {"type": "integer", "minimum": 1, "description": "default: latest"},
            "inputs": {"type": "object", "description": "the child run's inputs"},
        },
        "required": ["workflow"],
        "additionalProperties": False,
    }

    def run(self, ctx: Context, config: dict[str, Any]) -> StartChildRun:
        return StartChildRun(
            workflow=config["workflow"],
            inputs=config.get("inputs") or {},
            version=config.get("version"),
        )
