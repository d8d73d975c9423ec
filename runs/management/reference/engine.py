"""``spec.md``, ``handlers.md`` and ``events.md``: what a workflow may say and what it records."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from typing import Any

from handlers import signatures
from handlers.python import Python
from handlers.registry import (
    Handler,
    get_handler,
    get_python_function,
    handler_names,
    python_function_names,
    python_function_schema,
)
from runs.rules import decisions
from runs.rules.config import KNOBS
from runs.rules.spec import model
from runs.rules.templating import RESERVED_NAMES

from . import text
from .api import component
from .markdown import (
    FIELD_HEADERS,
    ROOT,
    Types,
    code,
    codes,
    doc_markup,
    literal,
    page,
    python_sources,
    require,
    table,
)


def trigger_rules() -> dict[str, str]:
    """Each trigger rule's meaning, from :func:`runs.rules.decisions.decide`'s docstring."""
    doc = decisions.decide.__doc__ or ""
    found = dict(re.findall(r"- ``(\w+)``: (.+?)(?=\n\s*- ``|\n\s*\n|\Z)", doc, re.DOTALL))
    require("trigger rules (runs.rules.decisions.decide's docstring)", model.TRIGGER_RULES, found)
    return {rule: doc_markup(found[rule]) for rule in model.TRIGGER_RULES}


def spec_facts() -> dict[str, Any]:
    """The values the spec sentences of :mod:`.reference_text` may name."""
    return {
        **{name: knob.default for name, knob in KNOBS.items()},
        "MAX_NAME_LENGTH": model.MAX_NAME_LENGTH,
        "MAX_RETRIES": model.MAX_RETRIES,
        "MAX_BACKOFF": f"{model.MAX_BACKOFF:g}",
        "NODE_ID_PATTERN": model.NODE_ID_PATTERN,
        "QUEUE_PATTERN": model.QUEUE_PATTERN,
        "RESERVED_NAMES": codes(sorted(RESERVED_NAMES)),
        "DEFAULT_KEYS": codes(model.DEFAULT_KEYS),
        "TRIGGER_RULES": codes(model.TRIGGER_RULES),
    }


def _knob_default(name: str) -> str:
    return f"{code(name)} ({literal(KNOBS[name].default)})"


def _node_default(key: str, required: set[str]) -> str:
    if key in required:
        return "required"
    if key in model.OPTION_KNOBS:
        return f"`defaults.{key}`, else {_knob_default(model.OPTION_KNOBS[key])}"
    if key == "trigger_rule":
        return f"`defaults.trigger_rule`, else {code(model.DEFAULT_TRIGGER_RULE)}"
    return text.NODE_KEY_DEFAULTS[key]


def spec_page(document: Mapping[str, Any]) -> str:
    schemas = document["components"]["schemas"]
    top, node = schemas["WorkflowSpec"], schemas["SpecNode"]
    require("spec keys in the API's WorkflowSpec schema", top["properties"], model.TOP_LEVEL_KEYS)
    require("node keys in the API's SpecNode schema", node["properties"], model.NODE_KEYS)
    require("spec keys", model.TOP_LEVEL_KEYS, text.SPEC_KEYS)
    require("node keys", model.NODE_KEYS, text.NODE_KEYS)
    node_required = set(node.get("required", ()))
    plain = set(model.NODE_KEYS) - node_required - set(model.DEFAULT_KEYS)
    require("node key defaults", plain, text.NODE_KEY_DEFAULTS)
    require("template names", RESERVED_NAMES, text.TEMPLATE_NAMES)
    facts = spec_facts()
    types = Types(schemas, link="api.md")
    top_required = set(top.get("required", ()))
    top_rows = [
        [
            code(key),
            types.of(top["properties"][key]),
            "yes" if key in top_required else "no",
            text.SPEC_KEYS[key].format(**facts),
        ]
        for key in model.TOP_LEVEL_KEYS
    ]
    node_rows = [
        [
            code(key),
            types.of(node["properties"][key]),
            _node_default(key, node_required),
            text.NODE_KEYS[key].format(**facts),
        ]
        for key in model.NODE_KEYS
    ]
    option_rows = [
        [
            code(key),
            code(f"defaults.{key}"),
            _knob_default(model.OPTION_KNOBS[key])
            if key in model.OPTION_KNOBS
            else code(model.DEFAULT_TRIGGER_RULE),
        ]
        for key in model.DEFAULT_KEYS
    ]
    rules = trigger_rules()
    rule_rows = [
        [code(rule) + (" (default)" if rule == model.DEFAULT_TRIGGER_RULE else ""), meaning]
        for rule, meaning in rules.items()
    ]
    limit_rows = [
        [code(name), literal(knob.default), knob.help]
        for name, knob in KNOBS.items()
        if name.startswith("TRELLIS_MAX_")
    ]
    constant_rows = [
        ["workflow name", f"at most {model.MAX_NAME_LENGTH} characters"],
        ["node id", f"matches {code(model.NODE_ID_PATTERN)}"],
        ["queue name", f"matches {code(model.QUEUE_PATTERN)}"],
        ["`retries`", f"0 to {model.MAX_RETRIES}"],
        ["`backoff`", f"0 to {model.MAX_BACKOFF:g} seconds"],
    ]
    name_rows = [[code(name), text.TEMPLATE_NAMES[name]] for name in sorted(RESERVED_NAMES)]
    return page(
        "Workflow spec",
        "A workflow is a JSON or YAML document. Validation (`POST /api/v1/workflows/validate/`, "
        "`trellis workflow validate`) reports every problem at once, each with its JSON path; "
        "an unknown key is an error.",
        "## Top-level keys\n\n" + table(["key", "type", "required", "meaning"], top_rows),
        "## Node keys\n\nEach item of `dag.nodes`:\n\n"
        + table(["key", "type", "default", "meaning"], node_rows),
        "## Node options and their defaults\n\nA node's own value wins, then the spec's "
        "`defaults`, then the setting (see the settings reference).\n\n"
        + table(["option", "spec default", "else"], option_rows),
        "## Trigger rules\n\n"
        + table(["rule", "the node, once every dependency finished"], rule_rows),
        "## Templates\n\nStrings in `config`, and `when` and `map`, are sandboxed Jinja "
        "templates. A node's output is `<node id>.output`; these names are reserved:\n\n"
        + table(["name", "is"], name_rows),
        "## Limits\n\n"
        + table(["what", "limit"], constant_rows)
        + "\n\nSettings:\n\n"
        + table(["setting", "default", "limits"], limit_rows),
    )


def _aliases(name: str, handlers: Mapping[str, Handler]) -> list[str]:
    own = type(handlers[name])
    return sorted(other for other, h in handlers.items() if other != name and type(h) is own)


def _exclusions(schema: Mapping[str, Any]) -> list[str]:
    keys = (schema.get("not") or {}).get("required")
    return [f"{' and '.join(codes(keys).split(', '))} exclude each other."] if keys else []


def _python_functions_section() -> str:
    """The functions Trellis itself registers for the ``python`` handler."""
    rows = []
    for name in python_function_names():
        fn = get_python_function(name)
        if not getattr(fn, "__module__", "").startswith("handlers."):
            continue
        schema = python_function_schema(name) or {}
        kwargs = ", ".join(
            f"`{key}` ({Types().of(prop)}"
            + (f", default {literal(prop['default'])}" if "default" in prop else "")
            + ")"
            for key, prop in (schema.get("properties") or {}).items()
        )
        summary = doc_markup((fn.__doc__ or "").split("\n\n")[0])
        rows.append([code(name), kwargs or "none", summary])
    return "Functions Trellis registers itself:\n\n" + table(["function", "kwargs", "does"], rows)


def _python_note() -> str:
    """How a ``python`` node's kwargs are checked, from :mod:`handlers.signatures`."""
    paragraphs = (signatures.__doc__ or "").strip().split("\n\n")[1:]
    return "\n\n".join(doc_markup(p) for p in paragraphs)


def handler_section(name: str, handlers: Mapping[str, Handler]) -> str:
    handler = handlers[name]
    schema = handler.config_schema or {}
    lines = [f"## `{name}`", "", handler.description or "(no description)"]
    aliases = _aliases(name, handlers)
    if aliases:
        lines += ["", f"Aliases: {codes(aliases)}."]
    lines.append("")
    if schema.get("properties"):
        lines.append(table(FIELD_HEADERS, Types().fields(schema)))
    else:
        lines.append(schema.get("description") or "No configuration.")
    notes = _exclusions(schema)
    if schema.get("additionalProperties") is False:
        notes.append("Other keys are refused.")
    if notes:
        lines += ["", " ".join(notes)]
    if isinstance(handler, Python):
        lines += [
            "",
            doc_markup(type(handler).__doc__ or ""),
            "",
            _python_note(),
            "",
            _python_functions_section(),
        ]
    return "\n".join(lines)


def handlers_page(handlers: Mapping[str, Handler] | None = None) -> str:
    """``handlers``: by name (default: the registry)."""
    if handlers is None:
        handlers = {name: get_handler(name) for name in handler_names()}
    return page(
        "Handlers",
        "Every node names a handler. Its `config` is validated against the handler's config "
        "schema when the workflow is submitted (every problem at once, with its path); a "
        "template stands for any type there and is checked when it renders. Add your own "
        'handler with `@register("name")` on a `Handler` subclass in an app\'s `handlers.py`.',
        *(handler_section(name, handlers) for name in sorted(handlers)),
    )


_KIND_ARGUMENT = {"record_event": 1, "emit": 0, "_emit": 0}
# Calls whose ``data=`` dict becomes an event's data, by the kind they record.

_DATA_OF = {
    "move_run": "run.status",
    "move_node": "node.status",
    "move_nodes": "node.status",
    "settle_waiting": "node.status",
    "park_waiting": "node.status",
}

_KIND_RE = re.compile(r"(run|node)\.[a-z_]+")


def _name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _keys(node: ast.AST | None) -> set[str]:
    if not isinstance(node, ast.Dict):
        return set()
    return {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}


def event_kinds(sources: Iterable[str]) -> dict[str, set[str]]:
    """The event kinds the code records, each with the data keys written as literals."""
    kinds: dict[str, set[str]] = {}
    for source in sources:
        for call in ast.walk(ast.parse(source)):
            if not isinstance(call, ast.Call):
                continue
            name = _name(call)
            found: list[tuple[str, ast.AST | None]] = []
            position = _KIND_ARGUMENT.get(name)
            if position is not None and len(call.args) > position:
                kind = call.args[position]
                data = call.args[position + 1] if len(call.args) > position + 1 else None
                if isinstance(kind, ast.Constant) and isinstance(kind.value, str):
                    found.append((kind.value, data))
            elif name == "record_events":
                for item in ast.walk(call):
                    if isinstance(item, ast.Tuple) and len(item.elts) > 2:
                        kind, data = item.elts[1], item.elts[2]
                        if isinstance(kind, ast.Constant) and isinstance(kind.value, str):
                            found.append((kind.value, data))
            elif name in _DATA_OF:
                data = next((kw.value for kw in call.keywords if kw.arg == "data"), None)
                found.append((_DATA_OF[name], data))
            for kind, data in found:
                if _KIND_RE.fullmatch(kind):
                    kinds.setdefault(kind, set()).update(_keys(data))
    return kinds


def events_page(document: Mapping[str, Any], sources: Iterable[str] | None = None) -> str:
    """``sources``: the code to collect kinds from (default: runs/ and handlers/)."""
    if sources is None:
        sources = [source for _p, source in python_sources(ROOT / "runs", ROOT / "handlers")]
    kinds = event_kinds(sources)
    require("event kinds", kinds, text.EVENTS)
    for kind, keys in kinds.items():
        require(f"data of {kind} events", keys, set(keys) & set(text.EVENTS[kind][1]))
    rows = [
        [code(kind), meaning, "; ".join(f"`{k}`: {v}" for k, v in fields.items()) or " "]
        for kind, (meaning, fields) in text.EVENTS.items()
    ]
    shape = component(document, {"$ref": "#/components/schemas/RunEvent"})
    return page(
        "Events",
        "Every change of a run leaves an event row: the run's history "
        "(`GET /api/v1/runs/{id}/events/`), its SSE stream (`…/stream/`), the WebSocket of the "
        "dashboard and `trellis run events`. Each event has one shape:",
        table(FIELD_HEADERS, Types(document["components"]["schemas"]).fields(shape)),
        "## Kinds\n\n" + table(["kind", "meaning", "data"], rows),
        "A handler's `ctx.emit(kind, data)` records `node.<kind>` (a kind with a dot as it is), "
        "so custom handlers may add kinds of their own.",
    )
