"""Spec validation and parsing: every check of a document, and the graph facts it yields.

:func:`validate_spec` reports every problem of a document at once; :func:`parse_spec` turns a
valid document into a :class:`~.model.WorkflowSpec`.
"""

from __future__ import annotations

import json
import math
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from handlers.registry import get_handler, handler_names

from .. import templating
from ..config import default_queue, setting
from ..templating import RESERVED_NAMES
from .model import (
    DEFAULT_KEYS,
    DEFAULT_TRIGGER_RULE,
    MAX_BACKOFF,
    MAX_NAME_LENGTH,
    MAX_RETRIES,
    NODE_ID_PATTERN,
    NODE_KEYS,
    OPTION_KNOBS,
    QUEUE_PATTERN,
    TOP_LEVEL_KEYS,
    TRIGGER_RULES,
    NodeSpec,
    SpecError,
    WorkflowSpec,
    _Errors,
    _key_path,
)

__all__ = ["parse_spec", "validate_spec"]

_NODE_ID_RE = re.compile(NODE_ID_PATTERN, re.ASCII)
_QUEUE_RE = re.compile(QUEUE_PATTERN, re.ASCII)
_CRON_FIELD_RE = re.compile(r"[0-9*/,-]+", re.ASCII)


# --------------------------------------------------------------------------- helpers


def _short(value: Any, limit: int = 60) -> str:
    """A value as JSON for a message, shortened (strings keep their quotes)."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _format_path(ref: Any) -> str:
    """Format a lazy path: a string, or a ``(parent_ref, key)`` pair."""
    keys: list[Any] = []
    while isinstance(ref, tuple):
        ref, key = ref
        keys.append(key)
    for key in reversed(keys):
        ref = _key_path(ref, key)
    return ref


def _scan_config(config: Any, path: str) -> tuple[Any, list[tuple[str, str]]]:
    """The template strings in a config (with their JSONPaths), and its validation shape.

    The shape is a copy of the config with every template string replaced by a numbered
    placeholder: configs that differ only in their templates have the same shape, so a shape
    that validated once need not be validated again. Iterative (no recursion limit), and
    paths are formatted only for the template strings found.
    """
    templates: list[tuple[str, str]] = []
    holder: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, Any]] = [(config, path, holder, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        value, ref, parent, key = pop()
        if isinstance(value, str):
            if "{{" in value or "{%" in value:
                templates.append((_format_path(ref), value))
                value = f"{{{{ #{len(templates)} }}}}"
        elif isinstance(value, dict):
            copy: Any = {}
            for k, item in reversed(value.items()):
                push((item, (ref, k), copy, k))
            value = copy
        elif isinstance(value, list):
            copy = [None] * len(value)
            for i in range(len(value) - 1, -1, -1):
                push((value[i], (ref, i), copy, i))
            value = copy
        parent[key] = value
    return holder[0], templates


_NODE_PATH_RE = re.compile(r"\$\.dag\.nodes\[(\d+)\]")


def _node_position(error: dict[str, str]) -> int:
    """Sort key: the node index an error is about (-1 for document-level errors)."""
    match = _NODE_PATH_RE.match(error["path"])
    return int(match.group(1)) if match else -1


def _error_order(error: Any) -> list[tuple[bool, Any]]:
    """Sort key for jsonschema errors by their path (keys and indexes never compared)."""
    return [(isinstance(part, str), part) for part in error.absolute_path]


# --------------------------------------------------------------------------- field checks


def _check_option(key: str, value: Any, path: str, errors: _Errors) -> None:
    """Check one of retries/backoff/timeout/queue/trigger_rule (node or defaults)."""
    if key == "retries":
        if not _is_int(value) or not 0 <= value <= MAX_RETRIES:
            errors.add(path, f"'retries' must be a whole number from 0 to {MAX_RETRIES}.")
    elif key == "backoff":
        if not _is_number(value) or not 0 <= value <= MAX_BACKOFF:
            errors.add(path, f"'backoff' must be a number of seconds from 0 to {MAX_BACKOFF:g}.")
    elif key == "timeout":
        limit = setting("TRELLIS_MAX_NODE_TIMEOUT")
        if not _is_number(value) or not 0 < value <= limit:
            errors.add(path, f"'timeout' must be a number of seconds above 0 and at most {limit}.")
    elif key == "queue":
        if not isinstance(value, str) or not _QUEUE_RE.fullmatch(value):
            errors.add(
                path,
                f"'queue' must be 1 to 100 letters, digits, '_', '.' or '-' (got {_short(value)}).",
            )
    elif key == "trigger_rule":
        if value not in TRIGGER_RULES:
            errors.add(
                path,
                f"'trigger_rule' must be one of {', '.join(TRIGGER_RULES)} (got {_short(value)}).",
            )


def _check_top_level(doc: dict[str, Any], errors: _Errors) -> None:
    for key in doc:
        if key not in TOP_LEVEL_KEYS:
            errors.add(
                _key_path("$", key),
                f"unknown key {key!r}: a workflow spec may have {', '.join(TOP_LEVEL_KEYS)}.",
            )
    name = doc.get("name")
    if "name" not in doc:
        errors.add("$.name", "the workflow needs a 'name'.")
    elif not isinstance(name, str) or not name.strip():
        errors.add("$.name", "'name' must be a non-empty string.")
    elif len(name) > MAX_NAME_LENGTH:
        errors.add("$.name", f"'name' must be at most {MAX_NAME_LENGTH} characters long.")
    description = doc.get("description")
    if description is not None and not isinstance(description, str):
        errors.add("$.description", "'description' must be a string.")

    inputs = doc.get("inputs")
    if inputs is not None:
        if not isinstance(inputs, dict):
            errors.add("$.inputs", "'inputs' must be a JSON Schema object.")
        else:
            try:
                Draft202012Validator.check_schema(inputs)
            except SchemaError as exc:
                path = "$.inputs"
                for part in exc.absolute_path:
                    path = _key_path(path, part)
                errors.add(path, f"'inputs' is not a valid JSON Schema: {exc.message}")
            if inputs.get("type") != "object":
                errors.add(
                    "$.inputs.type",
                    'the \'inputs\' schema must describe an object ("type": "object").',
                )

    defaults = doc.get("defaults")
    if defaults is not None:
        if not isinstance(defaults, dict):
            errors.add("$.defaults", "'defaults' must be an object.")
        else:
            for key, value in defaults.items():
                path = _key_path("$.defaults", key)
                if key not in DEFAULT_KEYS:
                    errors.add(
                        path,
                        f"unknown default {key!r}: defaults may set {', '.join(DEFAULT_KEYS)}.",
                    )
                elif value is not None:
                    _check_option(key, value, path, errors)

    schedule = doc.get("schedule")
    if schedule is not None:
        fields = schedule.split() if isinstance(schedule, str) else []
        if len(fields) != 5 or not all(_CRON_FIELD_RE.fullmatch(f) for f in fields):
            errors.add(
                "$.schedule",
                "'schedule' must be a cron expression of 5 fields "
                "(minute hour day month weekday) using digits and * / , -, like '*/15 * * * *'.",
            )

    limit = doc.get("max_concurrent_runs")
    if limit is not None and (not _is_int(limit) or limit < 1):
        errors.add("$.max_concurrent_runs", "'max_concurrent_runs' must be a whole number above 0.")


# --------------------------------------------------------------------------- the checker


@dataclass(slots=True)
class _Node:
    """What the checker learned about one node (first occurrence of each valid id)."""

    index: int
    raw: dict[str, Any]
    id: str
    deps: list[str] = field(default_factory=list)
    templates: list[tuple[str, str, str]] = field(default_factory=list)  # (path, where, src)
    refs: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Checked:
    errors: _Errors
    nodes: dict[str, _Node]
    graph: nx.DiGraph | None
    layers: list[list[str]]


class _Checker:
    """Runs every check over one document and keeps what parsing needs."""

    def __init__(self, doc: Any) -> None:
        self.doc = doc
        self.errors = _Errors()
        self.nodes: dict[str, _Node] = {}
        self.graph: nx.DiGraph | None = None
        self.layers: list[list[str]] = []
        self.generation: dict[str, int] = {}
        self.validators: dict[int, tuple[Any, Draft202012Validator | None]] = {}
        self.valid_shapes: set[tuple[str, str]] = set()  # (handler, config shape) known valid
        self.handlers = set(handler_names())
        self.max_template = int(setting("TRELLIS_MAX_TEMPLATE_LENGTH"))

    # -- driver

    def run(self) -> _Checked:
        doc = self.doc
        if not isinstance(doc, dict):
            self.errors.add("$", "the workflow spec must be a JSON object.")
            return self._result()
        _check_top_level(doc, self.errors)
        node_list = self._node_list(doc)
        if node_list is None:
            return self._result()
        for index, raw in enumerate(node_list):
            self._check_node(index, raw)
        graph_ok = self._check_graph()
        self._check_templates(ancestry=graph_ok)
        return self._result()

    def _result(self) -> _Checked:
        # Document-level errors first, then node by node (stable: checks keep their order).
        self.errors.sort(key=_node_position)
        return _Checked(self.errors, self.nodes, self.graph, self.layers)

    def _node_list(self, doc: dict[str, Any]) -> list[Any] | None:
        if "dag" not in doc:
            self.errors.add("$.dag", "the workflow needs a 'dag' object with a 'nodes' list.")
            return None
        dag = doc["dag"]
        if not isinstance(dag, dict):
            self.errors.add("$.dag", "'dag' must be an object with a 'nodes' list.")
            return None
        for key in dag:
            if key != "nodes":
                self.errors.add(
                    _key_path("$.dag", key), f"unknown key {key!r}: 'dag' has only 'nodes'."
                )
        node_list = dag.get("nodes")
        if not isinstance(node_list, list) or not node_list:
            self.errors.add("$.dag.nodes", "'dag.nodes' must be a non-empty list of nodes.")
            return None
        limit = int(setting("TRELLIS_MAX_NODES"))
        if len(node_list) > limit:
            self.errors.add(
                "$.dag.nodes",
                f"the workflow has {len(node_list)} nodes, more than the limit of {limit}.",
            )
            return None
        return node_list

    # -- per node

    def _check_node(self, index: int, raw: Any) -> None:
        base = f"$.dag.nodes[{index}]"
        if not isinstance(raw, dict):
            self.errors.add(base, "a node must be an object with at least 'id' and 'handler'.")
            return
        add = self.errors.add
        for key in raw:
            if key not in NODE_KEYS:
                add(
                    _key_path(base, key),
                    f"unknown node key {key!r}: nodes may have {', '.join(NODE_KEYS)}.",
                )

        node = self._check_id(index, raw, base)
        handler = self._check_handler(raw, base)
        deps = self._check_dependencies(raw, base, node)

        for key in ("retries", "backoff", "timeout", "queue", "trigger_rule"):
            if raw.get(key) is not None:
                _check_option(key, raw[key], f"{base}.{key}", self.errors)
        description = raw.get("description")
        if description is not None and not isinstance(description, str):
            add(f"{base}.description", "'description' must be a string.")

        templates: list[tuple[str, str, str]] = []
        for key in ("when", "map"):
            value = raw.get(key)
            if value is None:
                continue
            if not isinstance(value, str) or not templating.is_template(value):
                add(f"{base}.{key}", f"'{key}' must be a template string like '{{{{ ... }}}}'.")
            else:
                templates.append((f"{base}.{key}", key, value))

        config = raw.get("config")
        if config is None:
            config = {}
        if not isinstance(config, dict):
            add(f"{base}.config", "'config' must be an object.")
        else:
            shape, found = _scan_config(config, f"{base}.config")
            if handler is not None:
                self._check_config(handler, config, shape, f"{base}.config")
            templates.extend((path, "config", text) for path, text in found)
        if node is not None:
            node.deps = deps
            node.templates = templates
        else:  # still report syntax problems of nodes without a usable id
            for path, _where, text in templates:
                self._check_template_text(path, text)

    def _check_id(self, index: int, raw: dict[str, Any], base: str) -> _Node | None:
        path = f"{base}.id"
        if "id" not in raw:
            self.errors.add(path, "the node needs an 'id'.")
            return None
        node_id = raw["id"]
        if not isinstance(node_id, str) or not _NODE_ID_RE.fullmatch(node_id):
            self.errors.add(
                path,
                "a node id must start with a letter or '_' and have at most 100 letters, digits, "
                f"'_' or '-' (got {_short(node_id)}).",
            )
            return None
        if node_id in RESERVED_NAMES:
            self.errors.add(
                path,
                f"{node_id!r} is reserved for templates; reserved names are "
                f"{', '.join(sorted(RESERVED_NAMES))}.",
            )
            return None
        if node_id in self.nodes:
            first = self.nodes[node_id].index
            self.errors.add(
                path, f"duplicate node id {node_id!r}: it is already used by $.dag.nodes[{first}]."
            )
            return None
        node = _Node(index=index, raw=raw, id=node_id)
        self.nodes[node_id] = node
        return node

    def _check_handler(self, raw: dict[str, Any], base: str) -> str | None:
        path = f"{base}.handler"
        if "handler" not in raw:
            self.errors.add(path, "the node needs a 'handler'.")
            return None
        handler = raw["handler"]
        if not isinstance(handler, str) or handler not in self.handlers:
            known = ", ".join(sorted(self.handlers)) or "none registered"
            self.errors.add(path, f"unknown handler {_short(handler)}: known handlers are {known}.")
            return None
        return handler

    def _check_dependencies(self, raw: dict[str, Any], base: str, node: _Node | None) -> list[str]:
        deps = raw.get("dependencies")
        if deps is None:
            return []
        path = f"{base}.dependencies"
        if not isinstance(deps, list):
            self.errors.add(path, "'dependencies' must be a list of node ids.")
            return []
        seen: set[str] = set()
        result: list[str] = []
        for i, dep in enumerate(deps):
            dep_path = f"{path}[{i}]"
            if not isinstance(dep, str):
                self.errors.add(
                    dep_path, f"a dependency must be a node id string (got {_short(dep)})."
                )
            elif node is not None and dep == node.id:
                self.errors.add(dep_path, f"node {dep!r} cannot depend on itself.")
            elif dep in seen:
                self.errors.add(dep_path, f"{dep!r} is listed twice in 'dependencies'.")
            else:
                seen.add(dep)
                result.append(dep)
        return result

    def _validator(self, handler: str, config: dict[str, Any]) -> Draft202012Validator | None:
        """The validator of the schema the handler gives for this config (one per schema:
        a python node's schema is narrowed to its function's signature)."""
        registered = get_handler(handler)
        try:
            schema = registered.config_schema_for(config)
        except Exception:  # noqa: BLE001 - a broken handler must not break validation
            schema = getattr(registered, "config_schema", None)
        schema = schema or {"type": "object"}
        # Keyed by identity, with the schema kept alive in the value so the id stays its own.
        known = self.validators.get(id(schema))
        if known is None:
            try:
                validator: Draft202012Validator | None = Draft202012Validator(schema)
            except Exception:  # noqa: BLE001 - a broken handler schema must not break validation
                validator = None
            known = self.validators[id(schema)] = (schema, validator)
        return known[1]

    def _check_config(self, handler: str, config: dict[str, Any], shape: Any, path: str) -> None:
        """Validate a config against the schema its handler gives for it (for a python node,
        narrowed to the function's signature); templates stand for any type.

        Configs of the same handler and shape (see :func:`_scan_config`) that validated once
        are not validated again.
        """
        validator = self._validator(handler, config)
        if validator is None:
            return
        try:
            key: tuple[str, str] | None = (handler, json.dumps(shape, sort_keys=True))
        except (TypeError, ValueError):  # not JSON data: validate, never cache
            key = None
        if key is not None and key in self.valid_shapes:
            return
        try:
            problems = sorted(validator.iter_errors(config), key=_error_order)
        except Exception as exc:  # noqa: BLE001 - e.g. a handler schema with a bad $ref
            self.errors.add(path, f"the config schema of handler {handler!r} is broken: {exc}")
            return
        reported = False
        for problem in problems:
            instance = problem.instance
            if isinstance(instance, str) and templating.is_template(instance):
                continue  # a template may stand for any type; checked when rendered
            error_path = path
            for part in problem.absolute_path:
                error_path = _key_path(error_path, part)
            self.errors.add(
                error_path, f"invalid config for handler {handler!r}: {problem.message}"
            )
            reported = True
        if not reported and key is not None:
            self.valid_shapes.add(key)
        if not reported:
            try:
                extra = get_handler(handler).check_config(config)
            except Exception as exc:  # noqa: BLE001 - a broken handler must not break validation
                extra = [("", f"handler {handler!r} could not check its config: {exc}")]
            for config_key, message in extra:
                where = _key_path(path, config_key) if config_key else path
                self.errors.add(where, f"invalid config for handler {handler!r}: {message}")

    # -- graph

    def _check_graph(self) -> bool:
        """Unknown dependencies and cycles; True when the graph is a valid DAG."""
        ok = True
        known = self.nodes
        edges: list[tuple[str, str]] = []
        for node in known.values():
            for dep in node.deps:
                if dep in known:
                    edges.append((dep, node.id))
                    continue
                ok = False
                i = node.raw["dependencies"].index(dep)
                self.errors.add(
                    f"$.dag.nodes[{node.index}].dependencies[{i}]",
                    f"unknown dependency {dep!r}: there is no node with that id.",
                )
        graph = nx.DiGraph()
        graph.add_nodes_from(known)
        graph.add_edges_from(edges)
        self.graph = graph
        try:
            generations = list(nx.topological_generations(graph))
        except nx.NetworkXUnfeasible:
            for component in nx.strongly_connected_components(graph):
                if len(component) > 1:
                    self._report_cycle(graph.subgraph(component))
            return False
        if ok:
            self._set_layers(generations)
        return ok

    def _report_cycle(self, component: nx.DiGraph) -> None:
        start = min(component, key=lambda node_id: self.nodes[node_id].index)
        edges = nx.find_cycle(component, source=start)
        cycle = [u for u, _v in edges]
        if start in cycle:
            position = cycle.index(start)
            cycle = cycle[position:] + cycle[:position]
        # Arrows point the way data flows (a -> b: b depends on a). The error sits on the
        # cycle's first node in document order, whose dependencies close the loop.
        text = " -> ".join([*cycle, start])
        self.errors.add(
            f"$.dag.nodes[{self.nodes[start].index}].dependencies",
            f"dependencies form a cycle: {text}.",
        )

    def _set_layers(self, generations: list[list[str]]) -> None:
        order = {node_id: node.index for node_id, node in self.nodes.items()}
        self.layers = [sorted(layer, key=order.__getitem__) for layer in generations]
        self.generation = {
            node_id: depth for depth, layer in enumerate(self.layers) for node_id in layer
        }

    def _is_ancestor(self, candidate: str, node_id: str) -> bool:
        """Whether ``candidate`` finishes before ``node_id`` starts (a proper ancestor)."""
        graph = self.graph
        assert graph is not None
        if graph.has_edge(candidate, node_id):
            return True
        floor = self.generation.get(candidate, -1)
        if floor >= self.generation.get(node_id, -1):
            return False
        # Walk up from the node; ancestors of the candidate are in earlier generations, so a
        # predecessor at or below the candidate's generation cannot lead to it.
        seen = {node_id}
        queue = deque([node_id])
        while queue:
            for parent in graph.predecessors(queue.popleft()):
                if parent == candidate:
                    return True
                if parent not in seen and self.generation[parent] > floor:
                    seen.add(parent)
                    queue.append(parent)
        return False

    # -- templates

    def _check_template_text(self, path: str, text: str) -> bool:
        if len(text) > self.max_template:
            self.errors.add(
                path,
                f"the template is {len(text)} characters long, more than the limit of "
                f"{self.max_template}.",
            )
            return False
        problem = templating.analyze(text).error
        if problem is not None:
            self.errors.add(path, problem)
            return False
        return True

    def _check_templates(self, *, ancestry: bool) -> None:
        known = self.nodes
        allowed_globals = templating.JINJA_GLOBALS
        for node in known.values():
            has_map = isinstance(node.raw.get("map"), str)
            for path, where, text in node.templates:
                if not self._check_template_text(path, text):
                    continue
                info = templating.analyze(text)
                for name in sorted(info.names):
                    if name in ("item", "index"):
                        if where != "config" or not has_map:
                            place = "'map' or 'when'" if where != "config" else "this config"
                            self.errors.add(
                                path,
                                f"{name!r} is not available in {place}: it is set only in the "
                                "config of a node that has 'map'.",
                            )
                    elif name in known:
                        node.refs.add(name)
                    elif name not in RESERVED_NAMES and name not in allowed_globals:
                        self.errors.add(
                            path,
                            f"template references {name!r}, which is neither a node id nor one "
                            f"of {', '.join(sorted(RESERVED_NAMES))} (use nodes['id'] for ids "
                            "with '-').",
                        )
                node_keys = info.node_keys if "nodes" in info.names else ()
                for key in sorted(node_keys):
                    if key in known:
                        node.refs.add(key)
                    else:
                        self.errors.add(
                            path, f"template reads nodes[{key!r}], but there is no node {key!r}."
                        )
            if not ancestry:
                continue
            for ref in sorted(node.refs, key=lambda r: known[r].index):
                if ref == node.id or not self._is_ancestor(ref, node.id):
                    path = next(
                        p
                        for p, _w, t in node.templates
                        if ref in templating.referenced_nodes(t, {ref})
                    )
                    if ref == node.id:
                        message = f"node {ref!r} cannot read its own output"
                    else:
                        message = (
                            f"{ref!r} is not an upstream node of {node.id!r}: a node may only "
                            "read outputs of nodes that finish before it"
                        )
                    self.errors.add(path, message)


# --------------------------------------------------------------------------- public API


def validate_spec(doc: Any) -> list[dict[str, str]]:
    """Every problem of a workflow document at once (``[]`` when it is valid)."""
    return list(_Checker(doc).run().errors)


def parse_spec(doc: Any) -> WorkflowSpec:
    """Validate ``doc`` and build its :class:`WorkflowSpec`; raise :class:`SpecError` if invalid."""
    checked = _Checker(doc).run()
    if checked.errors:
        raise SpecError(list(checked.errors))
    assert checked.graph is not None
    defaults = {k: v for k, v in (doc.get("defaults") or {}).items() if v is not None}
    fallback = {
        "retries": int(setting(OPTION_KNOBS["retries"])),
        "backoff": float(setting(OPTION_KNOBS["backoff"])),
        "timeout": float(setting(OPTION_KNOBS["timeout"])),
        "queue": default_queue(),  # OPTION_KNOBS["queue"], else the Celery app's default
        "trigger_rule": DEFAULT_TRIGGER_RULE,
    }

    fallback.update(defaults)  # node value > spec defaults > settings

    def effective(raw: dict[str, Any], key: str) -> Any:
        value = raw.get(key)
        return fallback[key] if value is None else value

    nodes: dict[str, NodeSpec] = {}
    children: dict[str, list[str]] = {node_id: [] for node_id in checked.nodes}
    for node_id, node in checked.nodes.items():
        raw = node.raw
        nodes[node_id] = NodeSpec(
            id=node_id,
            handler=raw["handler"],
            dependencies=tuple(node.deps),
            config=raw.get("config") or {},
            retries=int(effective(raw, "retries")),
            backoff=float(effective(raw, "backoff")),
            timeout=float(effective(raw, "timeout")),
            queue=str(effective(raw, "queue")),
            when=raw.get("when"),
            map=raw.get("map"),
            trigger_rule=str(effective(raw, "trigger_rule")),
            refs=frozenset(node.refs),
            description=raw.get("description") or "",
        )
        for dep in node.deps:
            children[dep].append(node_id)
    outputs = tuple(n for n, spec in nodes.items() if spec.handler == "output")
    if not outputs:
        outputs = tuple(n for n, kids in children.items() if not kids)
    return WorkflowSpec(
        name=doc["name"],
        description=doc.get("description") or "",
        inputs_schema=doc.get("inputs"),
        defaults=defaults,
        schedule=doc.get("schedule"),
        nodes=nodes,
        children={n: tuple(kids) for n, kids in children.items()},
        layers=checked.layers,
        output_nodes=outputs,
        doc=doc,
        max_concurrent_runs=doc.get("max_concurrent_runs"),
        roots=tuple(n for n, spec in nodes.items() if not spec.dependencies),
    )
