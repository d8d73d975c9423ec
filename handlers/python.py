"""The ``python`` handler: calls a function registered with ``@python_function``.

Only registered names can be called. A dotted import path taken from a workflow spec is never
imported: specs are user input, and importing by path would let them run any code on the
workers.
"""

from __future__ import annotations

import inspect
import json
import math
from typing import Any

from .registry import (
    Context,
    Handler,
    HandlerError,
    get_python_function,
    python_function,
    python_function_names,
    python_function_schema,
    register,
)
from .signatures import takes_context

_JSON_SCALARS = (str, int, float, bool, type(None))


def _unserializable(
    value: Any, path: str = "result", seen: set[int] | None = None
) -> tuple[str, str] | None:
    """Where the first value JSON cannot hold sits (a path like ``result['a'][0]``), and why."""
    if isinstance(value, float) and not math.isfinite(value):
        return path, f"float {value!r}"
    if isinstance(value, _JSON_SCALARS):
        return None
    if not isinstance(value, (list, tuple, dict)):
        return path, type(value).__name__
    seen = set() if seen is None else seen
    if id(value) in seen:
        return path, f"circular reference to a {type(value).__name__}"
    seen.add(id(value))
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if isinstance(value, dict) and not isinstance(key, _JSON_SCALARS):
            return f"{path} key {key!r}", type(key).__name__
        found = _unserializable(item, f"{path}[{key!r}]", seen)
        if found:
            return found
    seen.discard(id(value))
    return None


@register("python")
class Python(Handler):
    """Call the function registered under ``function`` with the node's ``kwargs``.

    Functions are registered in an installed app's ``handlers.py`` or ``workflows.py`` with
    ``@python_function``. One whose first parameter is ``ctx`` is called ``fn(ctx, **kwargs)``,
    any other ``fn(**kwargs)``. At submit, ``kwargs`` is checked against the function's
    signature (``config_schema_for``). The output is what the function returns, which must be
    JSON-serializable. A function raises ``HandlerError`` for expected failures; any other
    exception fails the attempt retryably.
    """

    description = "Call a registered Python function with keyword arguments."
    config_schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "required": ["function"],
        "properties": {
            "function": {
                "type": "string",
                "minLength": 1,
                "description": "Name the function was registered under with @python_function.",
            },
            "kwargs": {
                "type": "object",
                "default": {},
                "description": "Keyword arguments for the function (templates are rendered).",
            },
        },
    }

    # function name -> (its kwargs schema, the config schema narrowed to it)
    _narrowed: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}

    def config_schema_for(self, config: dict[str, Any]) -> dict[str, Any]:
        name = config.get("function")
        kwargs = python_function_schema(name) if isinstance(name, str) else None
        if kwargs is None:  # a template, an unknown name (check_config says so), no signature
            return self.config_schema
        narrowed = self._narrowed.get(name)
        if narrowed is None or narrowed[0] is not kwargs:
            properties = self.config_schema["properties"]
            schema = {
                **self.config_schema,
                "properties": {**properties, "kwargs": {**properties["kwargs"], **kwargs}},
            }
            narrowed = self._narrowed[name] = (kwargs, schema)
        return narrowed[1]

    def check_config(self, config: dict[str, Any]) -> list[tuple[str, str]]:
        name = config.get("function")
        if not isinstance(name, str) or "{{" in name or "{%" in name:
            return []
        try:
            get_python_function(name)
        except KeyError:
            known = ", ".join(python_function_names()) or "(none)"
            return [("function", f"no python function registered as {name!r}; registered: {known}")]
        return []

    def run(self, ctx: Context, config: dict[str, Any]) -> Any:
        name = str(config["function"])
        kwargs = config.get("kwargs") or {}
        if not isinstance(kwargs, dict):
            raise HandlerError(
                f"kwargs must be an object, not {type(kwargs).__name__}", retryable=False
            )
        try:
            fn = get_python_function(name)
        except KeyError:
            known = ", ".join(python_function_names()) or "(none)"
            raise HandlerError(
                f"no python function registered as {name!r}; registered: {known}",
                retryable=False,
            ) from None
        leading = (ctx,) if takes_context(fn) else ()
        try:
            inspect.signature(fn).bind(*leading, **kwargs)
        except TypeError as exc:
            raise HandlerError(
                f"python function {name!r} cannot be called with kwargs {sorted(kwargs)}: {exc}",
                retryable=False,
            ) from None
        except ValueError:  # no signature available (some builtins): just call it
            pass

        result = fn(*leading, **kwargs)
        try:
            json.dumps(result, allow_nan=False)
        except (TypeError, ValueError) as exc:
            where, type_name = _unserializable(result) or ("result", type(result).__name__)
            raise HandlerError(
                f"python function {name!r} returned a value that is not JSON-serializable: "
                f"{type_name} at {where} ({exc})",
                retryable=False,
            ) from None
        return result


@python_function("trellis_noop")
def _noop(ctx: Context) -> None:
    """Does nothing: the node body of `manage.py bench`."""
    return None


@python_function("trellis_emit_clock")
def _emit_clock(ctx: Context, count: int = 10, interval: float = 0.02) -> int:
    """Emits ``count`` events carrying the wall clock (event-latency benchmark)."""
    import time

    for index in range(count):
        ctx.emit("node.event", {"clock": time.time(), "index": index})
        time.sleep(interval)
    return count
