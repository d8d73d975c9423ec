"""Rendering node configs, ``when`` and ``map`` templates against a scope.

:func:`build_scope` makes the scope of a node; :func:`render_value` renders every template
string inside a config. Fast-path templates (see :mod:`.analysis`) are resolved with the
sandbox's own ``getattr``/``getitem``; everything else is compiled by Jinja, cached by source.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import Template, Undefined
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError

from .analysis import _Path, _plan, _single_expression, _syntax_sentence, analyze
from .sandbox import (
    _CACHE_SIZE,
    RESERVED_NAMES,
    TemplateError,
    _check_time,
    _clock,
    _finalize,
    _max_rendered,
    _max_seconds,
    env,
)

__all__ = [
    "build_scope",
    "clear_caches",
    "render_bool",
    "render_string",
    "render_value",
    "truthy",
]

_SNIPPET_LENGTH = 80
_FALSE_STRINGS = frozenset({"", "false", "0", "no", "off", "none", "null"})


# --------------------------------------------------------------------------- scope

_MISSING: Any = object()


def build_scope(
    *,
    inputs: Mapping[str, Any] | None,
    outputs: Mapping[str, Any],
    params: Mapping[str, Any] | None = None,
    run: Mapping[str, Any] | None = None,
    session: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
    item: Any = _MISSING,
    index: Any = _MISSING,
) -> dict[str, Any]:
    """The template scope of a node.

    Values must be JSON data (what runs store). Each node id in ``outputs`` is bound to
    ``{"output": value}`` both as a top-level name (when the id is an identifier) and under
    ``nodes[id]``. ``item``/``index`` are present only when given (inside a ``map``);
    ``secrets`` only when given.
    """
    bound = {node_id: {"output": value} for node_id, value in outputs.items()}
    scope: dict[str, Any] = {
        node_id: value
        for node_id, value in bound.items()
        if node_id.isidentifier() and node_id not in RESERVED_NAMES
    }
    scope.update(
        inputs=dict(inputs or {}),
        params=dict(params or {}),
        run=dict(run or {}),
        session=dict(session or {}),
        nodes=bound,
    )
    if secrets is not None:
        scope["secrets"] = dict(secrets)
    if item is not _MISSING:
        scope["item"] = item
    if index is not _MISSING:
        scope["index"] = index
    return scope


# --------------------------------------------------------------------------- rendering

_UNDEFINED_NAME = re.compile(r"^'(?P<name>[^']+)' is undefined$")
_NO_ATTRIBUTE = re.compile(r"^(?P<obj>.+?) has no attribute '(?P<attr>.*)'$", re.S)
_NO_ELEMENT = re.compile(r"^(?P<obj>.+?) has no element (?P<key>.*)$", re.S)


def _snippet(source: str) -> str:
    text = " ".join(source.split())
    if len(text) > _SNIPPET_LENGTH:
        text = text[: _SNIPPET_LENGTH - 1] + "…"
    return text


def _describe(exc: BaseException) -> str:
    """Turn a Jinja/Python exception into a sentence for users."""
    if isinstance(getattr(exc, "user_message", None), str):
        return exc.user_message  # an error that already speaks to users (a missing secret)
    if isinstance(exc, UndefinedError):
        message = str(exc.message or exc)
        if match := _UNDEFINED_NAME.match(message):
            return f"template references {match['name']!r}, which is not available here"
        if match := _NO_ATTRIBUTE.match(message):
            obj = match["obj"].strip("'")
            return f"template reads {match['attr']!r}, but the {obj} has no such key or attribute"
        if match := _NO_ELEMENT.match(message):
            obj = match["obj"].strip("'")
            return f"template reads element {match['key']}, but the {obj} has no such element"
        return f"template reads an undefined value: {message}"
    if isinstance(exc, SecurityError):
        return f"template is not allowed to do this: {exc}".rstrip(".")
    if isinstance(exc, TemplateSyntaxError):
        return _syntax_sentence(exc)
    if isinstance(exc, RecursionError):
        return "template recursion is too deep"
    return f"template failed: {type(exc).__name__}: {exc}"


def _error(exc: BaseException, source: str) -> TemplateError:
    if isinstance(exc, TemplateError):
        return exc
    return TemplateError(f"{_describe(exc)} (in {_snippet(source)!r})", source)


@lru_cache(maxsize=_CACHE_SIZE)
def _template(source: str) -> Template:
    return env.from_string(source)


@lru_cache(maxsize=_CACHE_SIZE)
def _expression(expression: str) -> TemplateExpression:
    return env.compile_expression(expression, undefined_to_none=False)


def _resolve(path: _Path, scope: Mapping[str, Any]) -> Any:
    """Evaluate a path expression with the sandbox's own lookups (same rules as Jinja)."""
    if path.head in scope:
        value = scope[path.head]
    elif path.head in env.globals:
        value = env.globals[path.head]
    else:
        raise UndefinedError(f"{path.head!r} is undefined")
    for is_attribute, key in path.steps:
        if isinstance(value, Undefined):
            value._fail_with_undefined_error()
        value = env.getattr(value, key) if is_attribute else env.getitem(value, key)  # type: ignore[arg-type]
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    return value


def _to_data(value: Any) -> Any:
    """Make an expression's result JSON data (generators and tuples become lists)."""
    kind = type(value)
    if value is None or kind in (str, int, float, bool):
        return value
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, str):
        return str(value)  # Markup and other str subclasses
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, Mapping):
        items = [(key, _to_data(item)) for key, item in value.items()]
        if kind is dict and all(
            type(key) is str and new is old
            for (key, new), old in zip(items, value.values(), strict=True)
        ):
            return value
        return {str(key): item for key, item in items}
    if isinstance(value, (list, tuple, range, set, frozenset, Iterator)):
        converted = [_to_data(item) for item in value]
        if kind is list and all(new is old for new, old in zip(converted, value, strict=True)):
            return value
        return converted
    raise TemplateError(
        f"the expression produced a {kind.__name__} value, which is not JSON data "
        "(did you forget to call it, or a '| list'?)"
    )


def _too_long(limit: int, source: str) -> TemplateError:
    return TemplateError(
        f"rendered text is longer than the limit of {limit} characters (in {_snippet(source)!r})",
        source,
    )


def _render_native(source: str, expression: str, scope: Mapping[str, Any]) -> Any:
    plan = _plan(source.strip())
    if plan is not None and len(plan) == 1 and isinstance(plan[0], _Path):
        value = _resolve(plan[0], scope)
        if type(value) not in (dict, list):  # containers from the scope are JSON already
            value = _to_data(value)
    else:
        value = _to_data(_expression(expression)(scope))
    if isinstance(value, str) and len(value) > (limit := _max_rendered()):
        raise _too_long(limit, source)
    return value


def _render_text(source: str, scope: Mapping[str, Any]) -> str:
    limit = _max_rendered()
    plan = _plan(source)
    chunks: Iterable[str]
    if plan is not None:
        chunks = (
            part if isinstance(part, str) else str(_finalize(_resolve(part, scope)))
            for part in plan
        )
    else:
        chunks = _template(source).generate(scope)
    pieces: list[str] = []
    size = 0
    for count, chunk in enumerate(chunks):
        if not count & 255:
            _check_time()
        size += len(chunk)
        if size > limit:
            raise _too_long(limit, source)
        pieces.append(chunk)
    return "".join(pieces)


def render_string(source: str, scope: Mapping[str, Any]) -> Any:
    """Render one string: native value for a lone expression, else text; plain text as is."""
    if "{{" not in source and "{%" not in source:
        return source
    outermost = getattr(_clock, "deadline", None) is None
    if outermost:
        _clock.deadline = time.monotonic() + _max_seconds()
    try:
        expression = _single_expression(source)
        if expression is not None:
            return _render_native(source, expression, scope)
        return _render_text(source, scope)
    except TemplateError as exc:
        if exc.source is None:
            raise TemplateError(f"{exc.message} (in {_snippet(source)!r})", source) from None
        raise
    except Exception as exc:  # noqa: BLE001 - every render failure is a node failure
        raise _error(exc, source) from None
    finally:
        if outermost:
            _clock.deadline = None


def render_value(value: Any, scope: Mapping[str, Any]) -> Any:
    """Render every template string inside ``value`` (dicts and lists, recursively).

    Dict keys are not rendered. Non-string scalars are returned as they are.
    """
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return value
        return render_string(value, scope)
    if isinstance(value, dict):
        return {key: render_value(item, scope) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [render_value(item, scope) for item in value]
    return value


def truthy(value: Any) -> bool:
    """Truthiness of a rendered ``when``: strings like 'false', '0', 'no', '' are false."""
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_STRINGS
    return bool(value)


def render_bool(source: str, scope: Mapping[str, Any]) -> bool:
    """Evaluate a ``when`` template: the truthiness of its native value (see :func:`truthy`)."""
    return truthy(render_value(source, scope))


def clear_caches() -> None:
    """Forget compiled templates (tests, or after changing the environment)."""
    for cached in (_plan, analyze, _single_expression, _template, _expression):
        cached.cache_clear()
