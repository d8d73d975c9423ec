"""A registered python function's signature, read as the ``python`` handler needs it.

Two questions: does the function want the run's ``Context`` first (``takes_context``), and
which keyword arguments does it accept, as a JSON Schema (``kwargs_schema``)? The spec checker
validates a python node's ``kwargs`` against that schema at submit, so a wrong keyword or type
is a 400, not a failure on a worker.

Type hints map to JSON Schema: ``str`` string, ``int`` integer, ``float`` number, ``bool``
boolean, ``None`` null, ``list[X]`` / ``tuple[X, ...]`` / ``set[X]`` array of X,
``dict[str, X]`` object of X, ``Literal[...]`` enum, ``X | Y`` / ``Optional[X]`` either.
A parameter with a default is not required; ``**kwargs`` allows any other keyword. A hint the
mapping does not know (a class, ``Any``, a forward reference that does not resolve) puts no
constraint on the value.
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

__all__ = ["CONTEXT_PARAMETER", "kwargs_schema", "takes_context", "type_schema"]

CONTEXT_PARAMETER = "ctx"

_SCALARS: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
    None: "null",
}
_ARRAYS = (list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.Set)
_OBJECTS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """The function's resolved type hints; unresolvable string hints are left out."""
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception:  # noqa: BLE001 - a forward reference that does not resolve, a C function
        annotations = getattr(fn, "__annotations__", None) or {}
        return {name: hint for name, hint in annotations.items() if not isinstance(hint, str)}


def _is_context(parameter: inspect.Parameter, hints: dict[str, Any]) -> bool:
    """A first positional parameter named ``ctx`` or hinted as the handlers' ``Context``."""
    if parameter.kind not in _POSITIONAL:
        return False
    hint = hints.get(parameter.name, parameter.annotation)
    hinted = getattr(hint, "__name__", hint) == "Context"
    return parameter.name == CONTEXT_PARAMETER or hinted


def _parameters(fn: Callable[..., Any]) -> list[inspect.Parameter] | None:
    try:
        return list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # no signature available (some builtins)
        return None


def takes_context(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` is called as ``fn(ctx, **kwargs)`` rather than ``fn(**kwargs)``.

    A function without a readable signature gets the context, as every registered function
    did before signatures were read.
    """
    parameters = _parameters(fn)
    if parameters is None:
        return True
    return bool(parameters) and _is_context(parameters[0], _hints(fn))


def type_schema(hint: Any) -> dict[str, Any]:
    """The JSON Schema of one type hint (``{}``, no constraint, for hints it cannot map)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Annotated:
        return type_schema(args[0])
    if origin is typing.Literal:
        if all(isinstance(value, (str, int, float, bool, type(None))) for value in args):
            return {"enum": list(args)}
        return {}
    if origin in (typing.Union, types.UnionType):
        return _union_schema([type_schema(arg) for arg in args])
    if isinstance(hint, typing.Hashable) and hint in _SCALARS:
        return {"type": _SCALARS[hint]}
    container = origin or hint
    if container in _ARRAYS:
        schema: dict[str, Any] = {"type": "array"}
        if container is tuple and args and (len(args) != 2 or args[1] is not Ellipsis):
            return schema  # a fixed-length tuple: any array (JSON has no tuples)
        items = type_schema(args[0]) if args else {}
        if items:
            schema["items"] = items
        return schema
    if container in _OBJECTS:
        schema = {"type": "object"}
        values = type_schema(args[1]) if len(args) == 2 else {}
        if values:
            schema["additionalProperties"] = values
        return schema
    return {}


def _union_schema(members: list[dict[str, Any]]) -> dict[str, Any]:
    if any(not member for member in members):
        return {}  # one unconstrained member: anything goes
    if all(set(member) == {"type"} for member in members):
        names: list[str] = []
        for member in members:
            for name in member["type"] if isinstance(member["type"], list) else [member["type"]]:
                if name not in names:
                    names.append(name)
        return {"type": names[0] if len(names) == 1 else names}
    return {"anyOf": members}


def kwargs_schema(fn: Callable[..., Any]) -> dict[str, Any]:
    """A JSON Schema for the keyword arguments ``fn`` accepts (its context parameter left out).

    Positional-only and ``*args`` parameters cannot be given as keywords and are left out.
    """
    parameters = _parameters(fn)
    if parameters is None:
        return {"type": "object"}
    hints = _hints(fn)
    if parameters and _is_context(parameters[0], hints):
        parameters = parameters[1:]
    properties: dict[str, Any] = {}
    required: list[str] = []
    any_other = False
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            any_other = True
        elif parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            properties[parameter.name] = type_schema(hints.get(parameter.name, typing.Any))
            if parameter.default is inspect.Parameter.empty:
                required.append(parameter.name)
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": any_other,
    }
    if required:
        schema["required"] = required
    return schema
