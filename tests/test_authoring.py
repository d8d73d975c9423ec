"""Workflows written in Python (runs/authoring.py) and signatures as config schemas
(handlers/signatures.py): pure, no database."""

from __future__ import annotations

import inspect
from typing import Any, Literal, Optional

import pytest

from handlers.registry import Context, get_handler, python_function, python_function_schema
from handlers.signatures import kwargs_schema, takes_context
from runs.authoring import Workflow, get_workflow, registered_workflows
from runs.rules.spec import load_spec_text, validate_spec
from runs.rules.spec.model import NODE_KEYS, TOP_LEVEL_KEYS
from tests.testapp import workflows as testapp_workflows

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("python_workflows")]


@python_function
def create_order(sku: str, qty: int = 1) -> dict: ...


@python_function(name="notify_ops")
def notify(ctx: Context, to: str, lines: list[str], **extra: Any) -> None: ...


def restock() -> Workflow:
    """The example of DESIGN §15 and docs/examples/restock_workflow.py."""
    wf = Workflow("restock", inputs={"type": "object", "properties": {"sku": {"type": "string"}}})
    stock = wf.http("check_stock", url="https://stock.example.com/{{ inputs.sku }}")
    order = wf.call(create_order, sku=wf.inputs.sku, qty=stock.output.data.missing)
    wf.output(value=order.output)
    return wf


def test_the_documented_example_compiles_to_a_valid_spec() -> None:
    doc = restock().to_spec()
    assert doc == {
        "name": "restock",
        "inputs": {"type": "object", "properties": {"sku": {"type": "string"}}},
        "dag": {
            "nodes": [
                {
                    "id": "check_stock",
                    "handler": "call_external_service",
                    "config": {"url": "https://stock.example.com/{{ inputs.sku }}"},
                },
                {
                    "id": "create_order",
                    "handler": "python",
                    "dependencies": ["check_stock"],
                    "config": {
                        "function": "create_order",
                        "kwargs": {
                            "sku": "{{ inputs.sku }}",
                            "qty": "{{ check_stock.output.data.missing }}",
                        },
                    },
                },
                {
                    "id": "output",
                    "handler": "output",
                    "dependencies": ["create_order"],
                    "config": {"value": "{{ create_order.output }}"},
                },
            ]
        },
    }
    assert validate_spec(doc) == []


YAML_TWIN = """
name: py-restock
description: Restock a SKU (written in Python)
inputs:
  type: object
  properties:
    sku: {type: string}
    on_hand: {type: integer}
    tags: {type: array, items: {type: string}, default: []}
  required: [sku, on_hand]
defaults: {retries: 1}
dag:
  nodes:
    - id: stock_gap
      handler: python
      config:
        function: stock_gap
        kwargs: {sku: "{{ inputs.sku }}", on_hand: "{{ inputs.on_hand }}"}
    - id: place_order
      handler: python
      dependencies: [stock_gap]
      when: "{{ stock_gap.output.missing > 0 }}"
      config:
        function: place_order
        kwargs: {sku: "{{ inputs.sku }}", qty: "{{ stock_gap.output.missing }}"}
    - id: labels
      handler: python
      map: "{{ inputs.tags }}"
      config:
        function: label
        kwargs: {word: "{{ item }}", position: "{{ index }}"}
    - id: output
      handler: output
      dependencies: [place_order, labels]
      config:
        value:
          order: "{{ place_order.output }}"
          labels: "{{ labels.output }}"
          note: "restocked {{ inputs.sku }}"
"""


def test_python_workflow_and_its_yaml_twin_are_the_same_spec() -> None:
    doc = testapp_workflows.restock.to_spec()
    assert doc == load_spec_text(YAML_TWIN)
    assert validate_spec(doc) == []


def test_references_become_templates_wherever_they_sit() -> None:
    wf = Workflow("refs")
    first = wf.node("first", "input")
    node = wf.node(
        "second",
        "t",
        whole=first.output,
        keyed=first.output["k-1"][0],
        text=f"Hi {wf.inputs.name}, {wf.params.greeting}",
        nested={"list": [wf.session.count, {"deep": first.output.data}], "n": 3},
        pair=(wf.inputs.a, 1),
    )
    config = wf.to_spec()["dag"]["nodes"][1]["config"]
    assert config == {
        "whole": "{{ first.output }}",
        "keyed": "{{ first.output['k-1'][0] }}",
        "text": "Hi {{ inputs.name }}, {{ params.greeting }}",
        "nested": {"list": ["{{ session.count }}", {"deep": "{{ first.output.data }}"}], "n": 3},
        "pair": ["{{ inputs.a }}", 1],
    }
    assert node.id == "second" and str(wf.item) == "{{ item }}" and f"{wf.index}" == "{{ index }}"


def test_a_node_id_with_a_dash_is_read_through_nodes() -> None:
    wf = Workflow("dash")
    stock = wf.node("check-stock", "input")
    wf.output(value=stock.output.data)
    assert wf.to_spec()["dag"]["nodes"][1] == {
        "id": "output",
        "handler": "output",
        "dependencies": ["check-stock"],
        "config": {"value": "{{ nodes['check-stock'].output.data }}"},
    }


def test_dependencies_follow_references_deduplicated_in_document_order() -> None:
    wf = Workflow("deps")
    a = wf.node("a", "input")
    wf.node("b", "input")
    c = wf.node("c", "input")
    join = wf.node(
        "join",
        "t",
        after=[a, "b"],
        x=c.output,
        y=[c.output.n, a.output],
        raw="{{ b.output }} and {{ c.output }}",  # a hand-written template counts too
        when=f"{a.output.ok}",
    )
    wf.node("late", "t", map=join.output.items, v=wf.item)
    nodes = {n["id"]: n for n in wf.to_spec()["dag"]["nodes"]}
    assert nodes["join"]["dependencies"] == ["a", "b", "c"]
    assert nodes["late"]["dependencies"] == ["join"]
    assert "dependencies" not in nodes["a"]
    assert nodes["join"]["when"] == "{{ a.output.ok }}"


def test_every_node_key_has_a_keyword() -> None:
    wf = Workflow("keys")
    start = wf.input()
    options = {
        "when": "{{ inputs.go }}",
        "retries": 2,
        "backoff": 0.5,
        "timeout": 30,
        "queue": "io",
        "trigger_rule": "all_done",
        "description": "the call",
    }
    built = {"id", "handler", "dependencies", "config"}
    assert set(options) | {"map"} == set(NODE_KEYS) - built  # this test covers every key
    wf.http("get", url="https://x.example", config={"timeout": 5}, after=[start], **options)
    wf.call(create_order, id="each", map=start.output.data.skus, sku=wf.item, timeout=9)
    node = wf.to_spec()["dag"]["nodes"][1]
    assert node == {
        "id": "get",
        "handler": "call_external_service",
        "dependencies": ["input"],
        "config": {"url": "https://x.example", "timeout": 5},
        **options,
    }
    each = wf.to_spec()["dag"]["nodes"][2]
    assert each["map"] == "{{ input.output.data.skus }}" and each["timeout"] == 9
    assert each["config"] == {"function": "create_order", "kwargs": {"sku": "{{ item }}"}}


def test_every_top_level_key_has_a_keyword() -> None:
    keywords = set(inspect.signature(Workflow).parameters)
    assert keywords | {"dag"} == set(TOP_LEVEL_KEYS)
    wf = Workflow(
        "top",
        description="d",
        inputs={"type": "object"},
        defaults={"retries": 1, "queue": "io"},
        schedule="*/5 * * * *",
        max_concurrent_runs=2,
    )
    wf.output(value=1)
    doc = wf.to_spec()
    assert doc["schedule"] == "*/5 * * * *" and doc["max_concurrent_runs"] == 2
    assert validate_spec(doc) == []


def test_sugar_for_the_other_handlers() -> None:
    child = Workflow("child")
    wf = Workflow("sugar")
    wf.llm("ask", prompt="Summarize {{ inputs.text }}", model="m")
    wf.wait_for_event("approve", prompt="OK?", wait_timeout=60, schema={"type": "object"})
    wf.subworkflow("sub", child, inputs={"x": wf.inputs.x}, version=2)
    wf.call("notify_ops", to="ops", lines=["a"], extra_key=True)
    nodes = wf.to_spec()["dag"]["nodes"]
    assert [(n["handler"], n["config"]) for n in nodes] == [
        ("call_llm_service", {"prompt": "Summarize {{ inputs.text }}", "model": "m"}),
        ("wait_for_event", {"timeout": 60, "prompt": "OK?", "schema": {"type": "object"}}),
        ("workflow", {"workflow": "child", "inputs": {"x": "{{ inputs.x }}"}, "version": 2}),
        (
            "python",
            {
                "function": "notify_ops",
                "kwargs": {"to": "ops", "lines": ["a"], "extra_key": True},
            },
        ),
    ]


def test_build_time_errors_are_clear() -> None:
    wf = Workflow("errors")
    wf.call(create_order, sku="a")
    with pytest.raises(ValueError, match="workflow 'errors' already has a node 'create_order'"):
        wf.call(create_order, sku="b")
    with pytest.raises(ValueError, match="not a registered python function"):
        wf.call(lambda sku: sku)
    with pytest.raises(ValueError, match="no python function registered as 'nope'"):
        wf.call("nope")
    with pytest.raises(ValueError, match="'later', which is not a node"):
        wf.node("x", "input", after=["later"])
    other = Workflow("other").node("theirs", "input")
    with pytest.raises(ValueError, match="a workflow reads only its own"):
        wf.node("y", "t", v=other.output)
    with pytest.raises(TypeError, match="reference its output"):
        wf.node("z", "t", v=other)
    with pytest.raises(TypeError, match="a set is not JSON data"):
        wf.node("s", "t", v={1})


def test_workflows_register_by_name_and_a_redefinition_replaces() -> None:
    first = Workflow("b-flow")
    Workflow("a-flow")
    again = Workflow("b-flow", description="second")
    assert [w.name for w in registered_workflows()] == ["a-flow", "b-flow"]
    assert get_workflow("b-flow") is again is not first
    with pytest.raises(KeyError, match="no Python workflow named 'zzz'"):
        get_workflow("zzz")


# -- signatures ------------------------------------------------------------------------


def test_a_signature_becomes_a_kwargs_schema() -> None:
    def fn(
        ctx,
        sku: str,
        qty: int = 1,
        price: float | None = None,
        tags: list[str] = (),  # type: ignore[assignment]
        prices: dict[str, float] | None = None,
        mode: Literal["fast", "slow"] = "fast",
        flag: Optional[bool] = None,  # noqa: UP045 - the typing spelling must work too
        anything=None,
        thing: object = None,
        *args: int,
        only: bool,
        **rest: Any,
    ) -> None: ...

    assert kwargs_schema(fn) == {
        "type": "object",
        "properties": {
            "sku": {"type": "string"},
            "qty": {"type": "integer"},
            "price": {"type": ["number", "null"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "prices": {
                "anyOf": [
                    {"type": "object", "additionalProperties": {"type": "number"}},
                    {"type": "null"},
                ]
            },
            "mode": {"enum": ["fast", "slow"]},
            "flag": {"type": ["boolean", "null"]},
            "anything": {},
            "thing": {},
            "only": {"type": "boolean"},
        },
        "additionalProperties": True,
        "required": ["sku", "only"],
    }
    assert takes_context(fn) is True


def test_ctx_is_optional_and_recognised_by_name_or_hint() -> None:
    def plain(a: int) -> None: ...

    def hinted(context: Context, a: int) -> None: ...

    assert (takes_context(plain), takes_context(hinted)) == (False, True)
    assert kwargs_schema(plain) == kwargs_schema(hinted)
    assert kwargs_schema(plain)["additionalProperties"] is False
    assert python_function_schema("create_order")["required"] == ["sku"]


def _problems(kwargs: dict[str, Any]) -> list[dict[str, str]]:
    wf = Workflow("check")
    wf.input()
    wf.call("create_order", after=["input"], kwargs=kwargs)
    return validate_spec(wf.to_spec())


def test_the_checker_holds_kwargs_to_the_signature() -> None:
    assert _problems({"sku": "a", "qty": 2}) == []
    assert _problems({"sku": "{{ input.output.data.sku }}", "qty": "{{ inputs.n }}"}) == []
    wrong_type = _problems({"sku": "a", "qty": "two"})
    assert [p["path"] for p in wrong_type] == ["$.dag.nodes[1].config.kwargs.qty"]
    assert "'two' is not of type 'integer'" in wrong_type[0]["message"]
    unknown = _problems({"sku": "a", "colour": "red"})
    assert [p["path"] for p in unknown] == ["$.dag.nodes[1].config.kwargs"]
    assert "'colour' was unexpected" in unknown[0]["message"]
    missing = _problems({"qty": 1})
    assert "'sku' is a required property" in missing[0]["message"]
    # A template name or a function without a recorded schema: only the base schema applies.
    schema = get_handler("python").config_schema
    assert get_handler("python").config_schema_for({"function": "{{ inputs.f }}"}) is schema
