"""The ``input`` handler: exposes the run's validated inputs to the rest of the graph."""

from __future__ import annotations

from typing import Any

from .registry import Context, Handler, register


@register("input")
class Input(Handler):
    """Return the run's inputs as ``{"data": inputs}``.

    Downstream nodes read them as ``{{ <node id>.output.data.<field> }}``. Takes no config.
    """

    description = 'The run\'s inputs, as {"data": inputs}.'
    config_schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "properties": {},
        "description": "The input node takes no configuration.",
    }

    def run(self, ctx: Context, config: dict[str, Any]) -> Any:
        return {"data": ctx.inputs}
