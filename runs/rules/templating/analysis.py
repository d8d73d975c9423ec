"""Static questions about templates, answered without rendering them.

Syntax, the names and ``nodes`` keys a template reads (for spec validation), and the fast-path
parser: templates made only of text and dotted/indexed paths (``{{ a.output.data }}``,
``{{ nodes['a-b'].output[0] }}``) are split into a plan that :mod:`.render` resolves directly,
instead of compiling Jinja code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, NamedTuple

from jinja2 import meta
from jinja2 import nodes as jnodes
from jinja2.exceptions import TemplateSyntaxError

from .sandbox import _CACHE_SIZE, _ITER_GUARD, RESERVED_NAMES, env

__all__ = [
    "TemplateInfo",
    "analyze",
    "check_syntax",
    "is_template",
    "names_used",
    "node_keys_used",
    "referenced_nodes",
    "single_expression",
]

_ANALYSIS_CACHE_SIZE = 32768  # small entries; covers every template of a 10,000-node spec


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
