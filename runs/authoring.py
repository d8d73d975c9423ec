"""Workflows written in Python (DESIGN.md section 15): a builder that compiles to the spec.

    from runs.authoring import Workflow, python_function

    @python_function
    def create_order(sku: str, qty: int = 1) -> dict: ...

    wf = Workflow("restock", inputs={"type": "object", "properties": {"sku": {"type": "string"}}})
    stock = wf.http("check_stock", url="https://stock.example.com/{{ inputs.sku }}")
    order = wf.call(create_order, sku=wf.inputs.sku, qty=stock.output.data.missing)
    wf.output(value=order.output)
    wf.to_spec()  # the document, as if posted as JSON

A reference (``stock.output.data``, ``wf.inputs.sku``, ``wf.params.x``, ``wf.item``,
``wf.index``, ``x.output["k"]``, ``x.output[0]``) stands for its template: a whole config value
becomes ``"{{ check_stock.output.data }}"``, and ``f"Hi {wf.inputs.name}"`` gives
``"Hi {{ inputs.name }}"``. Every node of this workflow that a node's config, ``when`` or
``map`` reads becomes one of its dependencies (in document order, with the ``after=`` ones),
so the graph follows the data.

Every node method takes the spec's node keys as keywords (``when``, ``map``,
``trigger_rule``, ``retries``, ``backoff``, ``timeout``, ``queue``, ``description``) plus
``after=[node or id, ...]``; its other keywords are the handler's config (the function's
keyword arguments for ``call``). A config key named like a node key (the HTTP and LLM
handlers' own ``timeout`` and ``retries``) goes in ``config={...}`` (``kwargs={...}`` for
``call``).

Pure: building a workflow needs no Django settings, database or broker. Each ``Workflow``
registers itself by name when created (a later one of the same name replaces it); apps define
theirs in ``workflows.py``, which ``runs`` imports at start, and ``manage.py workflow sync``
saves them as versions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from handlers.registry import get_python_function, python_function, python_function_name

from .rules.spec.model import NODE_KEYS
from .rules.templating import is_template, referenced_nodes

__all__ = [
    "Node",
    "Ref",
    "Workflow",
    "get_workflow",
    "python_function",
    "registered_workflows",
]

# The spec's node keys that a keyword sets (id, handler, dependencies and config are built).
NODE_OPTIONS = tuple(k for k in NODE_KEYS if k not in ("id", "handler", "dependencies", "config"))
_TEMPLATED_OPTIONS = ("when", "map")
# Names a template cannot use as a plain head (Jinja literals and operators).
_JINJA_WORDS = frozenset(
    {"and", "or", "not", "in", "is", "if", "else", "true", "false", "none", "True", "False"}
)
_MISSING: Any = object()

_workflows: dict[str, Workflow] = {}


class Ref:
    """A value in a node's template scope, written as Python: ``stock.output.data[0]``.

    Attribute and item access make longer references; ``str()`` and f-strings give the
    template text. Names starting with ``_`` are not references (the sandbox refuses them; use
    ``["_key"]`` for such a key).
    """

    __slots__ = ("_expression", "_node")

    def __init__(self, expression: str, node: Node | None = None) -> None:
        self._expression = expression
        self._node = node

    def __getattr__(self, name: str) -> Ref:
        if name.startswith("_"):  # also keeps copy/pickle probes from reading as references
            raise AttributeError(name)
        return Ref(f"{self._expression}.{name}", self._node)

    def __getitem__(self, key: str | int) -> Ref:
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            raise TypeError(f"a reference takes a str or int key, not {type(key).__name__}")
        return Ref(f"{self._expression}[{key!r}]", self._node)

    def __iter__(self) -> Any:
        # Without this, Python would iterate by calling __getitem__(0), (1), ... for ever.
        raise TypeError("a reference has no items while the workflow is built: use map=")

    def __str__(self) -> str:
        return f"{{{{ {self._expression} }}}}"

    def __format__(self, format_spec: str) -> str:
        return format(str(self), format_spec)

    def __repr__(self) -> str:
        return f"Ref({str(self)!r})"


class _ScopeName:
    """A top-level name of the template scope as a :class:`Workflow` attribute: a reference."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Ref:
        return Ref(self.name)


class Node:
    """A node added to a :class:`Workflow`: its ``id``, and ``output`` to reference it."""

    def __init__(self, workflow: Workflow, node_id: str) -> None:
        self.workflow = workflow
        self.id = node_id

    @property
    def output(self) -> Ref:
        plain = self.id.isascii() and self.id.isidentifier() and self.id not in _JINJA_WORDS
        head = self.id if plain else f"nodes[{self.id!r}]"
        return Ref(f"{head}.output", self)

    def __repr__(self) -> str:
        return f"<Node {self.id!r} of workflow {self.workflow.name!r}>"


class Workflow:
    """A workflow built in Python; :meth:`to_spec` gives its spec document.

    The keywords are the spec's top-level keys: ``description``, ``inputs`` (a JSON Schema),
    ``defaults``, ``schedule`` (cron) and ``max_concurrent_runs``.
    """

    def __init__(
        self,
        name: str,
        *,
        description: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        defaults: Mapping[str, Any] | None = None,
        schedule: str | None = None,
        max_concurrent_runs: int | None = None,
    ) -> None:
        self.name = name
        self._top = {
            key: _plain(value, key, self)
            for key, value in (
                ("description", description),
                ("inputs", inputs),
                ("defaults", defaults),
                ("schedule", schedule),
                ("max_concurrent_runs", max_concurrent_runs),
            )
            if value is not None
        }
        self._nodes: dict[str, dict[str, Any]] = {}
        _workflows[name] = self

    def __repr__(self) -> str:
        return f"<Workflow {self.name!r}: {len(self._nodes)} nodes>"

    # -- references to the scope: wf.inputs.sku is {{ inputs.sku }}

    inputs = _ScopeName()  # the run's inputs
    params = _ScopeName()  # the trigger's parameters
    session = _ScopeName()  # the run's session state
    item = _ScopeName()  # the current item, in the config of a node with ``map``
    index = _ScopeName()  # the current item's position, there too

    # -- nodes

    def node(
        self,
        id: str,
        handler: str,
        *,
        after: Iterable[Node | str] = (),
        config: Mapping[str, Any] | None = None,
        **keywords: Any,
    ) -> Node:
        """Add a node of any registered handler; keywords that are not node keys are its
        config (merged over ``config``)."""
        options, extra = _split(keywords)
        return self._add(id, handler, {**(config or {}), **extra}, options, after)

    def input(self, id: str = "input", **keywords: Any) -> Node:
        """The run's inputs as a node's output (``{"data": inputs}``)."""
        return self.node(id, "input", **keywords)

    def http(self, id: str, url: str | Ref, **keywords: Any) -> Node:
        """An HTTP request (``call_external_service``): ``method``, ``headers``, ``params``,
        ``json``, ``body``, ``expect_status`` …"""
        return self.node(id, "call_external_service", url=url, **keywords)

    def llm(self, id: str, prompt: str | Ref, **keywords: Any) -> Node:
        """A chat completion (``call_llm_service``): ``system``, ``model``, ``temperature`` …"""
        return self.node(id, "call_llm_service", prompt=prompt, **keywords)

    def call(
        self,
        function: Callable[..., Any] | str,
        /,
        *,
        id: str | None = None,
        after: Iterable[Node | str] = (),
        kwargs: Mapping[str, Any] | None = None,
        **keywords: Any,
    ) -> Node:
        """A ``python`` node calling a registered function (by object or name) with the
        keywords that are not node keys (merged over ``kwargs``). The id defaults to the
        function's registered name."""
        name = _registered_name(function)
        options, extra = _split(keywords)
        config: dict[str, Any] = {"function": name}
        arguments = {**(kwargs or {}), **extra}
        if arguments:
            config["kwargs"] = arguments
        return self._add(id or name, "python", config, options, after)

    def subworkflow(
        self,
        id: str,
        workflow: Workflow | str,
        *,
        inputs: Mapping[str, Any] | None = None,
        version: int | None = None,
        **keywords: Any,
    ) -> Node:
        """A child run of another workflow (``workflow`` handler); its result is the output."""
        config: dict[str, Any] = {
            "workflow": workflow.name if isinstance(workflow, Workflow) else workflow
        }
        if inputs is not None:
            config["inputs"] = inputs
        if version is not None:
            config["version"] = version
        return self.node(id, "workflow", config=config, **keywords)

    def wait_for_event(
        self,
        id: str,
        *,
        prompt: str | Ref | None = None,
        schema: Mapping[str, Any] | None = None,
        wait_timeout: float | None = None,
        **keywords: Any,
    ) -> Node:
        """Wait for data posted to the run for this node; ``wait_timeout`` is the handler's
        ``timeout`` (seconds to wait), ``timeout=`` stays the node's own."""
        config: dict[str, Any] = {}
        for key, value in (("timeout", wait_timeout), ("prompt", prompt), ("schema", schema)):
            if value is not None:
                config[key] = value
        return self.node(id, "wait_for_event", config=config, **keywords)

    def output(self, value: Any = _MISSING, *, id: str = "output", **keywords: Any) -> Node:
        """The run's result: ``value``, or by default its dependencies' outputs by id."""
        config = {} if value is _MISSING else {"value": value}
        return self.node(id, "output", config=config, **keywords)

    # -- the document

    def to_spec(self) -> dict[str, Any]:
        """The workflow's spec document (a new copy each call)."""
        nodes = [_plain(node, "node", self) for node in self._nodes.values()]
        return {"name": self.name, **_plain(self._top, "workflow", self), "dag": {"nodes": nodes}}

    def _add(
        self,
        node_id: str,
        handler: str,
        config: dict[str, Any],
        options: dict[str, Any],
        after: Iterable[Node | str],
    ) -> Node:
        if not isinstance(node_id, str):
            raise TypeError(f"a node id must be a string, not {type(node_id).__name__}")
        if node_id in self._nodes:
            raise ValueError(
                f"workflow {self.name!r} already has a node {node_id!r}: give this one "
                "another id (id=... for call)"
            )
        raw: dict[str, Any] = {"id": node_id, "handler": handler}
        config = _plain(config, f"{node_id}.config", self)
        options = {k: _plain(v, f"{node_id}.{k}", self) for k, v in options.items()}
        wanted = {self._dependency_id(dep, node_id) for dep in after}
        for text in _strings([config, *(options.get(k) for k in _TEMPLATED_OPTIONS)]):
            if is_template(text):
                wanted |= referenced_nodes(text, self._nodes)
        dependencies = [existing for existing in self._nodes if existing in wanted]
        if dependencies:
            raw["dependencies"] = dependencies
        if config:
            raw["config"] = config
        raw.update(options)
        self._nodes[node_id] = raw
        return Node(self, node_id)

    def _dependency_id(self, dep: Node | str, node_id: str) -> str:
        dep_id = dep.id if isinstance(dep, Node) else dep
        if isinstance(dep, Node) and dep.workflow is not self:
            raise ValueError(f"{node_id}: after= names {dep!r}, a node of another workflow")
        if dep_id not in self._nodes:
            raise ValueError(
                f"{node_id}: after= names {dep_id!r}, which is not a node of workflow "
                f"{self.name!r} yet (add a node before the nodes that wait for it)"
            )
        return dep_id


def _split(keywords: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Node keys (set, not None) and the other keywords."""
    options = {k: v for k, v in keywords.items() if k in NODE_OPTIONS and v is not None}
    extra = {k: v for k, v in keywords.items() if k not in NODE_OPTIONS}
    return options, extra


def _registered_name(function: Callable[..., Any] | str) -> str:
    if isinstance(function, str):
        try:
            get_python_function(function)
        except KeyError as exc:
            raise ValueError(f"{exc.args[0]}: register it with @python_function") from None
        return function
    name = python_function_name(function)
    if name is None:
        label = getattr(function, "__qualname__", repr(function))
        raise ValueError(
            f"{label} is not a registered python function: decorate it with @python_function"
        )
    return name


def _plain(value: Any, where: str, workflow: Workflow) -> Any:
    """``value`` as JSON data (a new copy): references become their template text."""
    if isinstance(value, Ref):
        node = value._node
        if node is not None and node.workflow is not workflow:
            raise ValueError(f"{where}: {value!r} reads {node!r}; a workflow reads only its own")
        return str(value)
    if isinstance(value, Node):
        raise TypeError(f"{where}: a node is not a value; reference its output ({value.id}.output)")
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Mapping):
        plain: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: object keys must be strings, not {key!r}")
            plain[key] = _plain(item, f"{where}.{key}", workflow)
        return plain
    if isinstance(value, (list, tuple)):
        return [_plain(item, f"{where}[{i}]", workflow) for i, item in enumerate(value)]
    raise TypeError(f"{where}: a {type(value).__name__} is not JSON data")


def _strings(value: Any) -> Iterable[str]:
    """Every string in plain JSON data."""
    stack = [value]
    while stack:
        current = stack.pop()
        if isinstance(current, str):
            yield current
        elif isinstance(current, dict):
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)


def registered_workflows() -> list[Workflow]:
    """Every workflow defined in this process, by name."""
    return [_workflows[name] for name in sorted(_workflows)]


def get_workflow(name: str) -> Workflow:
    try:
        return _workflows[name]
    except KeyError:
        raise KeyError(f"no Python workflow named {name!r}") from None
