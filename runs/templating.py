"""Node templating: a Jinja2 sandbox with strict undefined names (DESIGN.md section 3).

Pure module: no ORM, no broker. It renders node configs, ``when`` and ``map`` templates
against a scope built by :func:`build_scope`, and answers static questions about templates
(syntax, the names and node ids they use) for spec validation.

Rules:

- A string without ``{{`` or ``{%`` is plain text and is returned unchanged.
- A string that is exactly one ``{{ expression }}`` renders to the expression's native value
  (list, dict, number, bool, None); any other template renders to a string, in which dicts
  and lists are written as JSON.
- A missing reference, a sandbox violation or any other failure raises :class:`TemplateError`
  with a sentence naming the problem; a missing value never renders as an empty string.
- Attribute access on a JSON object prefers its keys (``x.output.items`` is the ``items``
  key, not ``dict.items``).

The common templates (``{{ a.output.data }}``, ``{{ nodes['a-b'].output[0] }}`` mixed with
text) take a fast path that resolves the dotted path directly with the sandbox's own
``getattr``/``getitem`` instead of compiling Jinja code, so validating and rendering
thousands of nodes stays cheap. Everything else goes through Jinja, cached by source.
"""

from __future__ import annotations

import json
import re
import string
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any, NamedTuple

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from jinja2 import StrictUndefined, Template, Undefined, meta
from jinja2 import nodes as jnodes
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.filters import do_center, do_format, do_indent, do_join, do_replace
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "JINJA_GLOBALS",
    "RESERVED_NAMES",
    "TemplateError",
    "TemplateInfo",
    "analyze",
    "build_scope",
    "check_syntax",
    "clear_caches",
    "env",
    "is_template",
    "names_used",
    "node_keys_used",
    "referenced_nodes",
    "render_bool",
    "render_string",
    "render_value",
    "single_expression",
    "truthy",
]

#: Names the engine puts in every template scope; node ids may not use them.
RESERVED_NAMES: frozenset[str] = frozenset(
    {"inputs", "params", "run", "session", "item", "index", "nodes", "secrets"}
)

_DEFAULT_MAX_RENDERED = 1_000_000
_DEFAULT_MAX_SECONDS = 2.0
_SNIPPET_LENGTH = 80
_CACHE_SIZE = 4096  # compiled Jinja templates and expressions
_ANALYSIS_CACHE_SIZE = 32768  # small entries; covers every template of a 10,000-node spec
_FALSE_STRINGS = frozenset({"", "false", "0", "no", "off", "none", "null"})


class TemplateError(Exception):
    """A template could not be checked or rendered. ``str(exc)`` is a sentence for users."""

    def __init__(self, message: str, source: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source


def _setting(name: str, default: Any) -> Any:
    try:
        return getattr(settings, name, default)
    except ImproperlyConfigured:  # settings not configured: pure use outside Django
        return default


def _max_rendered() -> int:
    return int(_setting("TRELLIS_MAX_RENDERED_BYTES", _DEFAULT_MAX_RENDERED))


# --------------------------------------------------------------------------- time bound

_clock = threading.local()  # .deadline: time.monotonic() after which rendering stops


def _max_seconds() -> float:
    return float(_setting("TRELLIS_MAX_RENDER_SECONDS", _DEFAULT_MAX_SECONDS))


def _check_time() -> None:
    deadline = getattr(_clock, "deadline", None)
    if deadline is not None and time.monotonic() > deadline:
        raise SecurityError(
            f"the template took longer than {_max_seconds():g} s to render "
            "(TRELLIS_MAX_RENDER_SECONDS)"
        )


def _guarded_iter(iterable: Any) -> Iterator[Any]:
    """What every ``{% for %}`` loop iterates: the same items, with the clock checked."""
    for count, item in enumerate(iterable):
        if not count & 255:
            _check_time()
        yield item


_ITER_GUARD = "_trellis_loop_items"


# --------------------------------------------------------------------------- environment


def _finalize(value: Any) -> Any:
    """How a value is written into a string template: dicts and lists as JSON."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return value


def _too_large(what: str, limit: int) -> SecurityError:
    return SecurityError(f"{what} would be longer than the limit of {limit} characters")


_PRINTF_RE = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_printf(fmt: str, limit: int) -> None:
    """Refuse ``'%999999999d' % x``-style width bombs."""
    for match in _PRINTF_RE.finditer(fmt):
        for group in match.groups():
            if group == "*" or (group and int(group) > limit):
                raise _too_large("the formatted string", limit)


def _check_format_spec(fmt: str, limit: int) -> None:
    """Refuse ``'{:>999999999}'.format(x)``-style width bombs."""
    for _literal, _field, spec, _conversion in string.Formatter().parse(fmt):
        if spec and ("{" in spec or any(int(n) > limit for n in re.findall(r"\d+", spec))):
            raise _too_large("the formatted string", limit)


def _check_repeat(seq: Any, times: Any, limit: int) -> None:
    if isinstance(seq, (str, list, tuple)) and isinstance(times, int):
        if len(seq) * times > limit:
            raise _too_large("the repeated value", limit)


def _check_width(width: Any, limit: int) -> None:
    if isinstance(width, int) and width > limit:
        raise _too_large("the padded string", limit)


def _check_replace(text: Any, old: Any, new: Any, limit: int) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        count = text.count(old) if old else len(text) + 1
        if len(text) + count * (len(new) - len(old)) > limit:
            raise _too_large("the replaced string", limit)


def _check_join(separator: Any, items: Any, limit: int) -> None:
    if isinstance(separator, str) and hasattr(items, "__len__"):
        if len(separator) * len(items) > limit:
            raise _too_large("the joined string", limit)


def _check_str_method(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Bound the str methods that can build huge strings from small inputs."""
    target = getattr(obj, "__wrapped__", obj)  # the sandbox wraps str.format
    owner = getattr(target, "__self__", None)
    if not isinstance(owner, str):
        return
    name = getattr(target, "__name__", "")
    limit = _max_rendered()
    if name in ("center", "ljust", "rjust", "zfill"):
        _check_width(args[0] if args else kwargs.get("width"), limit)
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(size, int) and size * owner.count("\t") > limit:
            raise _too_large("the expanded string", limit)
    elif name == "replace" and len(args) >= 2:
        _check_replace(owner, args[0], args[1], limit)
    elif name == "join" and args:
        _check_join(owner, args[0], limit)
    elif name in ("format", "format_map"):
        _check_format_spec(owner, limit)


class _SandboxEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus JSON-friendly attribute lookup and size guards."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def _parse(self, source: str, name: str | None, filename: str | None) -> jnodes.Template:
        # Every loop iterates through _guarded_iter, so that no loop outlives the clock.
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(jnodes.For):
            guard = jnodes.Name(_ITER_GUARD, "load", lineno=loop.lineno)
            loop.iter = jnodes.Call(guard, [loop.iter], [], None, None, lineno=loop.lineno)
        return tree

    def getattr(self, obj: Any, attribute: str) -> Any:
        _check_time()
        # JSON objects: a key wins over a dict method of the same name (items, keys, ...).
        if type(obj) is dict and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _check_time()
        return super().getitem(obj, argument)

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        _check_time()
        limit = _max_rendered()
        if operator_ == "*":
            _check_repeat(left, right, limit)
            _check_repeat(right, left, limit)
        elif operator_ == "**":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and right > 0
                and abs(left) > 1
                and left.bit_length() * right > limit * 8
            ):
                raise _too_large("the power", limit)
        elif operator_ == "%" and isinstance(left, str):
            _check_printf(left, limit)
        return super().call_binop(context, operator_, left, right)

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _check_time()
        _check_str_method(obj, args, kwargs)
        return super().call(context, obj, *args, **kwargs)


def _install_filter_guards(environment: _SandboxEnvironment) -> None:
    """Wrap the built-in filters that can amplify a small template into a huge string."""

    def center(value: Any, width: int = 80) -> str:
        _check_width(width, _max_rendered())
        return do_center(value, width)

    def indent(s: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
        limit = _max_rendered()
        if isinstance(width, int) and width * (str(s).count("\n") + 1) > limit:
            raise _too_large("the indented string", limit)
        if isinstance(width, str) and len(width) * (str(s).count("\n") + 1) > limit:
            raise _too_large("the indented string", limit)
        return do_indent(s, width, first, blank)

    def format_(value: str, *args: Any, **kwargs: Any) -> str:
        _check_printf(str(value), _max_rendered())
        return do_format(value, *args, **kwargs)

    def replace(eval_ctx: Any, s: str, old: str, new: str, count: int | None = None) -> str:
        _check_replace(str(s), old, new, _max_rendered())
        return do_replace(eval_ctx, s, old, new, count)

    def join(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
        if not hasattr(value, "__len__"):
            value = list(value)
        _check_join(d, value, _max_rendered())
        return do_join(eval_ctx, value, d, attribute)

    def tojson(value: Any, indent: int | None = None) -> str:
        # Plain JSON: Jinja's own tojson escapes <, >, & and ' for HTML, which configs and
        # prompts do not want.
        return json.dumps(value, ensure_ascii=False, indent=indent, default=str)

    # Keep Jinja's pass-context markers so the wrappers receive the same arguments.
    for wrapper, original in ((replace, do_replace), (join, do_join)):
        wrapper.jinja_pass_arg = original.jinja_pass_arg  # type: ignore[attr-defined]
    environment.filters.update(
        {
            "center": center,
            "indent": indent,
            "format": format_,
            "replace": replace,
            "join": join,
            "tojson": tojson,
        }
    )


env = _SandboxEnvironment(undefined=StrictUndefined, autoescape=False, finalize=_finalize)
env.globals.pop("lipsum", None)  # lipsum(n=10**7) is a free CPU burner
_install_filter_guards(env)

#: Names templates may use that Jinja itself provides (range, dict, namespace, ...).
JINJA_GLOBALS: frozenset[str] = frozenset(env.globals)
env.globals[_ITER_GUARD] = _guarded_iter  # not for templates: analyze() refuses the name


# --------------------------------------------------------------------------- fast path

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_STEP = (
    r"\.(" + _IDENT + r")"
    r"|\[\s*(?:'([^'\\{}\n]*)'|\"([^\"\\{}\n]*)\"|(-?(?:0|[1-9][0-9]*)))\s*\]"
)
_PATH_RE = re.compile(r"\s*(" + _IDENT + r")((?:" + _STEP + r")*)\s*", re.ASCII)
_STEP_RE = re.compile(_STEP, re.ASCII)
# Words the Jinja lexer does not read as plain names.
_JINJA_WORDS = frozenset(
    {"and", "or", "not", "in", "is", "if", "else", "true", "false", "none", "True", "False", "None"}
)


class _Path(NamedTuple):
    """A ``{{ head.step['step'][0] }}`` expression: a name and a chain of lookups."""

    head: str
    steps: tuple[tuple[bool, str | int], ...]  # (is_attribute, key)
    text: str  # the expression source, without braces


_Plan = tuple[str | _Path, ...]


_ASCII_SPACE = " \t\n\r\f\v"


def _parse_path(inner: str) -> _Path | None:
    """Parse ``head.step['key'][0]`` (the text inside ``{{ }}``), or None if it is not one."""
    text = inner.strip(_ASCII_SPACE)
    if "[" not in text:  # the common case: dotted names only
        head, *names = text.split(".")
        if head in _JINJA_WORDS or not all(
            part.isascii() and part.isidentifier() for part in (head, *names)
        ):
            return None
        return _Path(head, tuple((True, name) for name in names), text)
    match = _PATH_RE.fullmatch(inner)
    if match is None or match.group(1) in _JINJA_WORDS:
        return None
    steps: list[tuple[bool, str | int]] = []
    for step in _STEP_RE.finditer(match.group(2)):
        attr, single, double, number = step.groups()
        if attr is not None:
            steps.append((True, attr))
        elif number is not None:
            steps.append((False, int(number)))
        else:
            steps.append((False, single if single is not None else double))
    return _Path(match.group(1), tuple(steps), text)


@lru_cache(maxsize=_ANALYSIS_CACHE_SIZE)
def _plan(source: str) -> _Plan | None:
    """Split a template made only of text and simple path expressions, else None.

    The result renders exactly as Jinja would render the same source with this environment
    (including Jinja's removal of one trailing newline).
    """
    if "{%" in source or "{#" in source or "\r" in source:
        return None
    parts: list[str | _Path] = []
    position = 0
    while (start := source.find("{{", position)) >= 0:
        end = source.find("}}", start + 2)
        if end < 0:
            return None  # unclosed: Jinja reports the syntax error
        inner = source[start + 2 : end]
        if inner[:1] in ("-", "+") or inner[-1:] in ("-", "+"):
            return None  # whitespace control: leave it to Jinja
        path = _parse_path(inner)
        if path is None:
            return None
        if start > position:
            parts.append(source[position:start])
        parts.append(path)
        position = end + 2
    tail = source[position:]
    if tail.endswith("\n"):
        tail = tail[:-1]
    if tail:
        parts.append(tail)
    return tuple(parts)


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


# --------------------------------------------------------------------------- analysis


class TemplateInfo(NamedTuple):
    """What a template uses, found without rendering it (see :func:`analyze`)."""

    error: str | None  # a sentence for a syntax error, else None
    names: frozenset[str]  # top-level names read from the scope
    node_keys: frozenset[str]  # constant keys read from ``nodes`` (nodes['x'], nodes.x)


def _syntax_sentence(exc: TemplateSyntaxError) -> str:
    line = f" on line {exc.lineno}" if exc.lineno else ""
    return f"template syntax error{line}: {exc.message or exc}"


_FORBIDDEN_TAGS: tuple[tuple[type[jnodes.Node], str], ...] = (
    (jnodes.Extends, "extends"),
    (jnodes.Include, "include"),
    (jnodes.Import, "import"),
    (jnodes.FromImport, "from ... import"),
    (jnodes.Macro, "macro"),  # recursion with fan-out: exponential work from a few bytes
    (jnodes.CallBlock, "call"),
)

_PRIVATE_FORMAT_FIELD = re.compile(r"\{[^{}]*[.\[]\s*['\"]?_")


def _private_access(tree: jnodes.Node) -> str | None:
    """A sentence when the template reads a ``_private`` attribute or key (``__class__``,
    ``__globals__``, ``attr('__x__')``, ``'{0.__class__}'.format(x)``), else None."""
    for node in tree.find_all((jnodes.Getattr, jnodes.Getitem, jnodes.Filter, jnodes.Call)):
        name: Any = None
        if isinstance(node, jnodes.Getattr):
            name = node.attr
        elif isinstance(node, jnodes.Getitem) and isinstance(node.arg, jnodes.Const):
            name = node.arg.value
        elif isinstance(node, jnodes.Filter) and node.name == "attr" and node.args:
            arg = node.args[0]
            name = arg.value if isinstance(arg, jnodes.Const) else "_"
        elif isinstance(node, jnodes.Call) and isinstance(node.node, jnodes.Getattr):
            target = node.node.node
            if (
                node.node.attr in ("format", "format_map")
                and isinstance(target, jnodes.Const)
                and isinstance(target.value, str)
                and _PRIVATE_FORMAT_FIELD.search(target.value)
            ):
                return (
                    f"template formats a private attribute on line {node.lineno}, which is "
                    "not allowed"
                )
        if isinstance(name, str) and name.startswith("_"):
            return (
                f"template reads {name!r} on line {node.lineno}: names starting with '_' "
                "are not allowed"
            )
    return None


@lru_cache(maxsize=_ANALYSIS_CACHE_SIZE)
def analyze(source: str) -> TemplateInfo:
    """Syntax error, names used and ``nodes`` keys read by a template (cached by source)."""
    plan = _plan(source)
    if plan is not None:
        paths = [part for part in plan if isinstance(part, _Path)]
        node_keys = {
            str(path.steps[0][1])
            for path in paths
            if path.head == "nodes" and path.steps and isinstance(path.steps[0][1], str)
        }
        for path in paths:
            for _is_attribute, key in path.steps:
                if isinstance(key, str) and key.startswith("_"):
                    return TemplateInfo(
                        f"template reads {key!r}: names starting with '_' are not allowed",
                        frozenset(),
                        frozenset(),
                    )
        return TemplateInfo(None, frozenset(p.head for p in paths), frozenset(node_keys))
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        return TemplateInfo(_syntax_sentence(exc), frozenset(), frozenset())
    except Exception as exc:  # noqa: BLE001 - the lexer may raise odd errors on odd input
        return TemplateInfo(f"template could not be parsed: {exc}", frozenset(), frozenset())
    for node_type, tag in _FORBIDDEN_TAGS:
        found = next(tree.find_all(node_type), None)
        if found is not None:
            return TemplateInfo(
                f"template uses {{% {tag} %}} on line {found.lineno}, which is not available "
                "in workflow templates",
                frozenset(),
                frozenset(),
            )
    private = _private_access(tree)
    if private is not None:
        return TemplateInfo(private, frozenset(), frozenset())
    if _ITER_GUARD in source:
        return TemplateInfo(
            f"template uses the reserved name {_ITER_GUARD!r}", frozenset(), frozenset()
        )
    for filter_node in tree.find_all(jnodes.Filter):
        if filter_node.name not in env.filters:
            return TemplateInfo(
                f"template uses an unknown filter {filter_node.name!r} on line "
                f"{filter_node.lineno}",
                frozenset(),
                frozenset(),
            )
    for test_node in tree.find_all(jnodes.Test):
        if test_node.name not in env.tests:
            return TemplateInfo(
                f"template uses an unknown test {test_node.name!r} on line {test_node.lineno}",
                frozenset(),
                frozenset(),
            )
    if "{%" in source:
        names = frozenset(meta.find_undeclared_variables(tree)) - {_ITER_GUARD}
    else:  # expressions alone cannot declare names
        names = frozenset(n.name for n in tree.find_all(jnodes.Name) if n.ctx == "load")
    node_keys: set[str] = set()
    if "nodes" in names:
        for node in tree.find_all((jnodes.Getattr, jnodes.Getitem)):
            target = node.node
            if not (isinstance(target, jnodes.Name) and target.name == "nodes"):
                continue
            if isinstance(node, jnodes.Getattr):
                node_keys.add(node.attr)
            elif isinstance(node.arg, jnodes.Const) and isinstance(node.arg.value, str):
                node_keys.add(node.arg.value)
    return TemplateInfo(None, names, frozenset(node_keys))


def is_template(value: str) -> bool:
    """True when ``value`` contains Jinja markup (``{{`` or ``{%``)."""
    return "{{" in value or "{%" in value


def check_syntax(source: str) -> str | None:
    """A sentence describing the template's syntax error (with its line), or None."""
    return analyze(source).error


def names_used(source: str) -> set[str]:
    """Top-level names the template reads from its scope (empty if it does not parse)."""
    return set(analyze(source).names)


def referenced_nodes(source: str, node_ids: Iterable[str]) -> set[str]:
    """Node ids the template reads: as a top-level name or as ``nodes['id']`` / ``nodes.id``."""
    analysis = analyze(source)
    ids = node_ids if isinstance(node_ids, (set, frozenset, dict)) else set(node_ids)
    found = {name for name in analysis.names if name in ids and name not in RESERVED_NAMES}
    if "nodes" in analysis.names:
        found.update(key for key in analysis.node_keys if key in ids)
    return found


def node_keys_used(source: str) -> set[str]:
    """Constant keys read from ``nodes`` (``nodes["x"]``, ``nodes.x``), existing or not."""
    analysis = analyze(source)
    return set(analysis.node_keys) if "nodes" in analysis.names else set()


@lru_cache(maxsize=_CACHE_SIZE)
def _single_expression(source: str) -> str | None:
    stripped = source.strip()
    if not (stripped.startswith("{{") and stripped.endswith("}}")):
        return None
    plan = _plan(stripped)
    if plan is not None:
        return plan[0].text if len(plan) == 1 and isinstance(plan[0], _Path) else None
    try:
        tree = env.parse(stripped)
    except Exception:  # noqa: BLE001 - rendering reports the syntax error
        return None
    body = tree.body
    if not (
        len(body) == 1
        and isinstance(body[0], jnodes.Output)
        and len(body[0].nodes) == 1
        and not isinstance(body[0].nodes[0], jnodes.TemplateData)
    ):
        return None
    inner = stripped[2:-2]
    if inner[:1] in ("-", "+"):
        inner = inner[1:]
    if inner[-1:] in ("-", "+"):
        inner = inner[:-1]
    inner = inner.strip()
    try:  # make sure the slice is the same expression (comments, odd whitespace control)
        if env.parse("{{ " + inner + " }}").body != body:
            return None
    except Exception:  # noqa: BLE001
        return None
    return inner


def single_expression(source: str) -> str | None:
    """If ``source`` (stripped) is exactly one ``{{ expr }}`` and nothing else, return expr."""
    return _single_expression(source)


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
