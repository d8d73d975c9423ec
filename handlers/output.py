"""The ``output`` handler: produces the run's result."""

from __future__ import annotations

from typing import Any

from .registry import Context, Handler, register


@register("output")
class Output(Handler):
    """Return the run's result.

    With a ``value`` (usually a template, rendered by the engine) the result is that value.
    Without one it is the outputs of the node's direct dependencies keyed by node id, e.g.
    ``{"summarize_posts": {"result": "..."}}``: the run's ``aggregated_results``.
    """

    description = "The run's result: its value, or its dependencies' outputs by node id."
    config_schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "value": {
                "description": "The result (any JSON value; templates are rendered). Default: "
                "the outputs of the node's dependencies, keyed by node id.",
            },
        },
    }

    def run(self, ctx: Context, config: dict[str, Any]) -> Any:
        if "value" in config:
            return config["value"]
        return {dep: ctx.upstream.get(dep) for dep in ctx.dependencies}
