"""`wait_for_event`: human in the loop. The node waits (state WAITING, holding no worker)
until data is posted for it with ``POST /api/v1/runs/{id}/events/``, then completes with it."""

from __future__ import annotations

from typing import Any

from .registry import Context, Handler, WaitForEvent, register


@register("wait_for_event")
class WaitForEventHandler(Handler):
    """Wait for an event posted to the run for this node; fail after ``timeout`` seconds."""

    description = "Waits for data posted to the run for this node (e.g. a human approval)."
    config_schema = {
        "type": "object",
        "properties": {
            "timeout": {
                "type": "number",
                "exclusiveMinimum": 0,
                "description": "seconds to wait before the node fails; none: wait forever",
            },
            "prompt": {"type": "string", "description": "what the waiting node asks for"},
            "schema": {"type": "object", "description": "JSON Schema the posted data must match"},
        },
        "additionalProperties": False,
    }

    def run(self, ctx: Context, config: dict[str, Any]) -> WaitForEvent:
        if config.get("prompt"):
            ctx.markdown(config["prompt"])
        return WaitForEvent(timeout=config.get("timeout"))
