"""Unit tests for runs.rules.spec (pure: no database, no broker)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from handlers import registry
from runs.rules.spec import (
    SpecError,
    apply_overrides,
    load_spec_text,
    parse_spec,
    spec_hash,
    validate_spec,
)
from tests.specs import stand_in

# Stand-in handlers with known schemas (t_input, t_needs_url, t_python, t_any in
# tests/specs.py), so these tests do not depend on the built-ins. They are put in the
# registry only for the duration of each test (the ``stand_in_handlers`` fixture).
pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("stand_in_handlers")]


# The seed-004 example, verbatim from seeds/004_b829b90437810808.txt.
SEED_004 = """
{
  "name": "Simple LLM Workflow",
  "dag": {
    "nodes": [
      {
        "id": "get_posts",
        "handler": "call_external_service",
        "config": {
          "url": "https://api.example.com/posts"
        }
      },
      {
        "id": "summarize_posts",
        "handler": "call_llm_service",
        "dependencies": ["get_posts"],
        "config": {
          "prompt": "Summarize the following posts: {{ get_posts.output.data }}"
        }
      },
      {
        "id": "output",
        "handler": "output",
        "dependencies": ["summarize_posts"]
      }
    ]
  }
}
"""

_BUILTIN_STAND_INS: dict[str, dict[str, Any]] = {
    "call_external_service": {"type": "object", "required": ["url"]},
    "call_llm_service": {"type": "object", "required": ["prompt"]},
    "output": {"type": "object", "properties": {"value": {}}},
    "input": {"type": "object"},
    "python": {"type": "object", "required": ["function"]},
}


@pytest.fixture
def builtins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make sure the seed-004 handler names exist (stand-ins only where a module is missing)."""
    for name, schema in _BUILTIN_STAND_INS.items():
        if name not in registry.handler_names():
            monkeypatch.setitem(registry._handlers, name, stand_in(name, schema))


# Local on purpose, not tests/specs.py: these build documents for the stand-ins (handler
# ``t_any`` by default, no config, ``dependencies`` only when given) under the fixed name
# "test", most of them at import time for the parametrized tables; the shared ``spec`` names
# each document anew and puts the top-level keys after ``dag``.
def node(node_id: str, handler: str = "t_any", *deps: str, **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"id": node_id, "handler": handler, **extra}
    if deps:
        result["dependencies"] = list(deps)
    return result


def spec(*nodes: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"name": "test", **top, "dag": {"nodes": list(nodes)}}


def paths(errors: list[dict[str, str]]) -> list[str]:
    return sorted(error["path"] for error in errors)


N0 = "$.dag.nodes[0]"
N1 = "$.dag.nodes[1]"
N2 = "$.dag.nodes[2]"
N3 = "$.dag.nodes[3]"

INVALID_SPECS = [
    pytest.param([], ["$"], id="not-an-object"),
    pytest.param({}, ["$.dag", "$.name"], id="missing-name-and-dag"),
    pytest.param(
        {"name": " ", "colour": "red", "dag": {"nodes": [node("a")]}},
        ["$.colour", "$.name"],
        id="blank-name-unknown-key",
    ),
    pytest.param({"name": "x" * 201, "dag": {"nodes": [node("a")]}}, ["$.name"], id="long-name"),
    pytest.param({"name": "x", "dag": []}, ["$.dag"], id="dag-not-object"),
    pytest.param({"name": "x", "dag": {"nodes": []}}, ["$.dag.nodes"], id="no-nodes"),
    pytest.param(
        spec(5, {"handler": "t_any"}, node("9lives"), node("has space")),
        [N0, f"{N1}.id", f"{N2}.id", f"{N3}.id"],
        id="node-shapes-and-ids",
    ),
    pytest.param(
        spec(node("inputs"), node("a"), node("a"), node("item")),
        [f"{N0}.id", f"{N2}.id", f"{N3}.id"],
        id="reserved-and-duplicate-ids",
    ),
    pytest.param(
        spec({"id": "a", "handler": "nope", "colour": 1}, {"id": "b"}),
        [f"{N0}.colour", f"{N0}.handler", f"{N1}.handler"],
        id="unknown-key-unknown-and-missing-handler",
    ),
    pytest.param(
        spec(
            {"id": "a", "handler": "t_any", "dependencies": "b"},
            node("b", "t_any", "zz", "b", "a", "a"),
            {"id": "c", "handler": "t_any", "dependencies": [3]},
        ),
        [
            f"{N0}.dependencies",
            f"{N1}.dependencies[0]",
            f"{N1}.dependencies[1]",
            f"{N1}.dependencies[3]",
            f"{N2}.dependencies[0]",
        ],
        id="bad-dependencies",
    ),
    pytest.param(
        spec(node("a", "t_any", "c"), node("b", "t_any", "a"), node("c", "t_any", "b"), node("d")),
        [f"{N0}.dependencies"],
        id="cycle",
    ),
    pytest.param(
        spec(
            node("a", "t_needs_url", config={"url": 5, "timeout": "{{ inputs.t }}"}),
            node("b", "t_needs_url", config={"timeout": 1}),
            node("c", "t_needs_url", config="https://x"),
            node("d", "t_needs_url", config={"url": "u", "headers": {"X-A": 1, "X-B": "{{ 1 }}"}}),
        ),
        [f"{N0}.config.url", f"{N1}.config", f"{N2}.config", f"{N3}.config.headers['X-A']"],
        id="handler-config-schema",
    ),
    pytest.param(
        spec(
            node(
                "a",
                retries=-1,
                backoff="slow",
                timeout=0,
                queue="bad queue",
                trigger_rule="any",
                description=5,
            )
        ),
        [
            f"{N0}.backoff",
            f"{N0}.description",
            f"{N0}.queue",
            f"{N0}.retries",
            f"{N0}.timeout",
            f"{N0}.trigger_rule",
        ],
        id="node-options",
    ),
    pytest.param(
        spec(node("a"), defaults={"retries": 1000, "colour": 1, "timeout": 10**9}),
        ["$.defaults.colour", "$.defaults.retries", "$.defaults.timeout"],
        id="defaults",
    ),
    pytest.param(spec(node("a"), defaults=[1]), ["$.defaults"], id="defaults-not-object"),
    pytest.param(
        spec(node("a"), inputs={"type": "string"}), ["$.inputs.type"], id="inputs-not-object"
    ),
    pytest.param(
        spec(node("a"), inputs={"type": "object", "properties": 5}),
        ["$.inputs.properties"],
        id="inputs-invalid-schema",
    ),
    pytest.param(spec(node("a"), schedule="every minute"), ["$.schedule"], id="schedule-words"),
    pytest.param(spec(node("a"), schedule="* * * *"), ["$.schedule"], id="schedule-4-fields"),
    pytest.param(
        spec(node("a"), max_concurrent_runs=0), ["$.max_concurrent_runs"], id="max-concurrent"
    ),
    pytest.param(
        spec(
            node("a", config={"x": "{{ broken", "y": ["ok", "{% if %}"]}),
            node("b", when="not a template", map=5),
        ),
        [f"{N0}.config.x", f"{N0}.config.y[1]", f"{N1}.map", f"{N1}.when"],
        id="template-syntax-and-shape",
    ),
    pytest.param(
        spec(node("a", config={"x": "{{ nope.output }}", "y": "{{ nodes['zz'].output }}"})),
        [f"{N0}.config.x", f"{N0}.config.y"],
        id="template-unknown-names",
    ),
    pytest.param(
        spec(
            node("a"),
            node("b"),
            node("c", "t_any", "a", config={"from_b": "{{ b.output }}"}),
            node("d", "t_any", "c", when="{{ d.output }}", config={"x": "{{ nodes['a'].output }}"}),
        ),
        [f"{N2}.config.from_b", f"{N3}.when"],
        id="template-non-ancestor",
    ),
    pytest.param(
        spec(
            node("a", config={"x": "{{ item }}"}),
            node("b", map="{{ [1, 2] }}", when="{{ index }}", config={"y": "{{ item }}"}),
            node("c", map="{{ item }}"),
        ),
        [f"{N0}.config.x", f"{N1}.when", f"{N2}.map"],
        id="item-outside-map-config",
    ),
]


@pytest.mark.parametrize(("doc", "expected_paths"), INVALID_SPECS)
def test_invalid_specs_report_exact_paths(doc: Any, expected_paths: list[str]) -> None:
    errors = validate_spec(doc)
    assert paths(errors) == sorted(expected_paths), errors
    for error in errors:
        assert set(error) == {"path", "message"}
        assert error["message"][:1].strip() and error["message"].endswith((".", "…"))
    with pytest.raises(SpecError) as info:
        parse_spec(doc)
    assert info.value.errors == errors


def test_all_errors_of_a_multi_error_spec_are_reported_together() -> None:
    doc = {
        "name": "",
        "extra": True,
        "schedule": "often",
        "dag": {
            "nodes": [
                node("a", "t_needs_url", config={}),
                node("a"),
                node("b", "missing_handler", "ghost"),
                node("c", "t_any", "b", retries=101, config={"p": "{{ d.output }}"}),
                node("d", "t_any", "c", config={"bad": "{{ oops"}),
            ]
        },
    }
    assert paths(validate_spec(doc)) == sorted(
        [
            "$.name",
            "$.extra",
            "$.schedule",
            f"{N0}.config",
            f"{N1}.id",
            f"{N2}.handler",
            f"{N2}.dependencies[0]",
            f"{N3}.retries",
            "$.dag.nodes[4].config.bad",
        ]
    )
    # The ancestor check is skipped while the graph has an unknown dependency, and the
    # syntax error is still reported.
    with pytest.raises(SpecError) as info:
        parse_spec(doc)
    assert str(info.value).startswith("9 errors: ")


def test_messages_are_sentences_that_name_the_problem() -> None:
    cycle = validate_spec(
        spec(node("a", "t_any", "c"), node("b", "t_any", "a"), node("c", "t_any", "b"))
    )
    assert "cycle: a -> b -> c -> a" in cycle[0]["message"]
    unknown = validate_spec(spec(node("a", "no_such_handler")))
    assert "t_needs_url" in unknown[0]["message"]  # lists the known handlers
    upstream = validate_spec(spec(node("x"), node("y", config={"v": "{{ x.output }}"})))
    assert upstream == [
        {
            "path": f"{N1}.config.v",
            "message": "'x' is not an upstream node of 'y': a node may only read outputs of "
            "nodes that finish before it.",
        }
    ]
    duplicate = validate_spec(spec(node("a"), node("a")))
    assert "$.dag.nodes[0]" in duplicate[0]["message"]


def test_two_independent_cycles_are_both_reported() -> None:
    doc = spec(
        node("a", "t_any", "b"),
        node("b", "t_any", "a"),
        node("c", "t_any", "d"),
        node("d", "t_any", "c"),
        node("e", "t_any", "a", config={"x": "{{ zz.output }}"}),
    )
    errors = validate_spec(doc)
    assert paths(errors) == sorted(
        [f"{N0}.dependencies", f"{N2}.dependencies", "$.dag.nodes[4].config.x"]
    )


def test_limits_come_from_settings(settings) -> None:
    settings.TRELLIS_MAX_NODES = 3
    assert paths(validate_spec(spec(*(node(f"n{i}") for i in range(4))))) == ["$.dag.nodes"]
    assert validate_spec(spec(*(node(f"n{i}") for i in range(3)))) == []
    settings.TRELLIS_MAX_TEMPLATE_LENGTH = 20
    long = "{{ inputs.x }}" + " " * 10
    assert paths(validate_spec(spec(node("a", config={"t": long})))) == [f"{N0}.config.t"]
    settings.TRELLIS_MAX_NODE_TIMEOUT = 60
    assert paths(validate_spec(spec(node("a", timeout=61), node("b", timeout=60)))) == [
        f"{N0}.timeout"
    ]


def test_seed_004_example_is_valid(builtins: None) -> None:
    doc = json.loads(SEED_004)
    assert validate_spec(doc) == []
    workflow = parse_spec(doc)
    assert workflow.name == "Simple LLM Workflow"
    assert list(workflow.nodes) == ["get_posts", "summarize_posts", "output"]
    assert workflow.layers == [["get_posts"], ["summarize_posts"], ["output"]]
    assert workflow.output_nodes == ("output",)
    assert workflow.nodes["summarize_posts"].refs == frozenset({"get_posts"})
    assert workflow.nodes["output"].config == {}
    assert workflow.doc is doc


def test_seed_004_model_dump_with_nulls_is_valid(builtins: None) -> None:
    doc = json.loads(SEED_004)
    for item in doc["dag"]["nodes"]:
        item.setdefault("config", None)
        item.setdefault("dependencies", [])
    assert validate_spec(doc) == []


def test_diamond_layers_children_and_refs() -> None:
    doc = spec(
        node("start", "t_input"),
        node("right", "t_any", "start", config={"v": "{{ start.output }}"}),
        node("left", "t_any", "start"),
        node(
            "join",
            "t_any",
            "left",
            "right",
            trigger_rule="none_failed",
            config={"both": ["{{ left.output }}", "{{ nodes['start'].output }}"]},
        ),
    )
    workflow = parse_spec(doc)
    assert workflow.layers == [["start"], ["right", "left"], ["join"]]  # document order
    assert workflow.children == {
        "start": ("right", "left"),
        "right": ("join",),
        "left": ("join",),
        "join": (),
    }
    assert workflow.output_nodes == ("join",)  # no output handler: the sinks
    assert workflow.roots == ("start",)
    assert workflow.nodes["join"].dependencies == ("left", "right")
    assert workflow.nodes["join"].refs == frozenset({"left", "start"})  # start: a grandparent
    assert workflow.nodes["join"].trigger_rule == "none_failed"
    assert workflow.nodes["left"].refs == frozenset()


def test_dependencies_may_point_forward_in_document_order() -> None:
    doc = spec(node("c", "t_any", "b"), node("b", "t_any", "a"), node("a"))
    workflow = parse_spec(doc)
    assert workflow.layers == [["a"], ["b"], ["c"]]
    assert workflow.children == {"c": (), "b": ("c",), "a": ("b",)}
    assert list(workflow.nodes) == ["c", "b", "a"]  # document order is kept


def test_ancestor_check_walks_past_the_parents() -> None:
    doc = spec(
        node("root"),
        node("side"),
        node("mid", "t_any", "root"),
        node("leaf", "t_any", "mid", "side", config={"a": "{{ root.output }}"}),
        node("other", "t_any", "side", config={"a": "{{ mid.output }}"}),
    )
    assert paths(validate_spec(doc)) == ["$.dag.nodes[4].config.a"]


def test_sibling_reference_in_diamond_is_rejected() -> None:
    doc = spec(
        node("start"),
        node("left", "t_any", "start"),
        node("right", "t_any", "start", config={"v": "{{ left.output }}"}),
    )
    assert paths(validate_spec(doc)) == [f"{N2}.config.v"]


def test_effective_options_node_then_defaults_then_settings(settings) -> None:
    settings.TRELLIS_DEFAULT_RETRIES = 2
    settings.TRELLIS_DEFAULT_BACKOFF = 0.5
    settings.TRELLIS_DEFAULT_NODE_TIMEOUT = 30
    doc = spec(
        node("a"),
        node("b", "t_any", "a", retries=7, queue="gpu", timeout=5.5),
        defaults={"retries": 3, "trigger_rule": "all_done"},
    )
    workflow = parse_spec(doc)
    a, b = workflow.nodes["a"], workflow.nodes["b"]
    assert (a.retries, a.backoff, a.timeout, a.queue, a.trigger_rule) == (
        3,
        0.5,
        30.0,
        "default",
        "all_done",
    )
    assert (b.retries, b.timeout, b.queue) == (7, 5.5, "gpu")
    assert workflow.defaults == {"retries": 3, "trigger_rule": "all_done"}


def test_full_featured_spec_parses(builtins: None) -> None:
    doc = {
        "name": "full",
        "description": "everything at once",
        "inputs": {
            "type": "object",
            "properties": {"topic": {"type": "string"}},
            "required": ["topic"],
        },
        "defaults": {"retries": 1, "backoff": 1.0, "timeout": 60, "queue": "default"},
        "schedule": "*/15 * * * *",
        "max_concurrent_runs": 2,
        "dag": {
            "nodes": [
                {"id": "get-posts", "handler": "t_needs_url", "config": {"url": "https://x"}},
                {
                    "id": "each",
                    "handler": "t_python",
                    "dependencies": ["get-posts"],
                    "map": "{{ nodes['get-posts'].output.data }}",
                    "when": "{{ nodes['get-posts'].output.data | length > 0 }}",
                    "config": {
                        "function": "f",
                        "kwargs": {"post": "{{ item }}", "i": "{{ index }}", "t": "{{ inputs }}"},
                    },
                },
                {"id": "result", "handler": "output", "dependencies": ["each"]},
            ]
        },
    }
    workflow = parse_spec(doc)
    assert workflow.schedule == "*/15 * * * *"
    assert workflow.inputs_schema == doc["inputs"]
    assert workflow.max_concurrent_runs == 2
    assert workflow.nodes["each"].map == "{{ nodes['get-posts'].output.data }}"
    assert workflow.nodes["each"].refs == frozenset({"get-posts"})
    assert workflow.output_nodes == ("result",)


def test_apply_overrides_merges_config() -> None:
    doc = spec(
        node("get", "t_needs_url", config={"url": "https://a", "timeout": 3}),
        node("use", "t_any", "get", config={"prompt": "old", "keep": 1}),
    )
    original = copy.deepcopy(doc)
    merged = apply_overrides(
        doc, {"use": {"prompt": "Recent: {{ get.output.data }}"}, "get": {"url": "https://b"}}
    )
    assert merged["dag"]["nodes"][1]["config"] == {
        "prompt": "Recent: {{ get.output.data }}",
        "keep": 1,
    }
    assert merged["dag"]["nodes"][0]["config"] == {"url": "https://b", "timeout": 3}
    assert doc == original  # the input is not modified
    assert apply_overrides(doc, None) == doc
    assert apply_overrides(doc, {}) == doc


def test_apply_overrides_rejects_unknown_nodes_and_bad_values() -> None:
    doc = spec(node("get", "t_needs_url", config={"url": "https://a"}), node("use", "t_any", "get"))
    with pytest.raises(SpecError) as info:
        apply_overrides(doc, {"nope": {"x": 1}, "use": "text", "get-x": {}})
    assert paths(info.value.errors) == sorted(["$.nope", "$.use", "$['get-x']"])
    with pytest.raises(SpecError) as info:
        apply_overrides(doc, ["not", "an", "object"])
    assert paths(info.value.errors) == ["$"]
    # The merged document must still be valid.
    with pytest.raises(SpecError) as info:
        apply_overrides(doc, {"get": {"url": 5}, "use": {"x": "{{ later.output }}"}})
    assert paths(info.value.errors) == [f"{N0}.config.url", f"{N1}.config.x"]


def test_load_spec_text_json_and_yaml() -> None:
    assert load_spec_text(SEED_004) == json.loads(SEED_004)
    assert load_spec_text(SEED_004.encode()) == json.loads(SEED_004)
    yaml_text = """
name: from-yaml
schedule: "0 * * * *"
dag:
  nodes:
    - id: a
      handler: t_any
      config:
        when: 2024-01-01
    - id: b
      handler: t_any
      dependencies: [a]
      config:
        prompt: "{{ a.output }}"
        1: numeric key
"""
    doc = load_spec_text(yaml_text)
    assert doc["dag"]["nodes"][1]["config"] == {"prompt": "{{ a.output }}", "1": "numeric key"}
    assert doc["dag"]["nodes"][0]["config"]["when"] == "2024-01-01"  # dates become strings
    assert validate_spec(doc) == []


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (b"\xff\xfe{}", "UTF-8"),
        ('{"name": "x",', "not valid JSON"),
        ("name: [unclosed", "not valid YAML on line"),
        ("   ", "empty"),
    ],
)
def test_load_spec_text_errors(text: str | bytes, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec_text(text)
    assert info.value.errors[0]["path"] == "$"
    assert fragment in info.value.errors[0]["message"]


def test_load_spec_text_size_limit_and_alias_bomb(settings) -> None:
    settings.TRELLIS_MAX_SPEC_BYTES = 1024
    with pytest.raises(SpecError, match="limit of 1024"):
        load_spec_text(b"{" + b" " * 1024 + b"}")
    with pytest.raises(SpecError, match="limit of 1024"):
        load_spec_text("{" + " " * 1024 + "}")
    settings.TRELLIS_MAX_SPEC_BYTES = 1024 * 1024
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        refs = ", ".join([f"*{chr(96 + level)}"] * 10)
        bomb.append(f"{chr(97 + level)}: &{chr(97 + level)} [{refs}]")
    with pytest.raises(SpecError, match="too many values"):
        load_spec_text("\n".join(bomb))


def test_spec_hash_is_canonical() -> None:
    one = {"name": "x", "dag": {"nodes": [{"id": "a", "handler": "t_any"}]}}
    two = json.loads('{"dag": {"nodes": [{"handler": "t_any", "id": "a"}]}, "name": "x"}')
    assert spec_hash(one) == spec_hash(two)
    assert len(spec_hash(one)) == 64
    two["name"] = "y"
    assert spec_hash(one) != spec_hash(two)


def test_spec_error_string() -> None:
    error = SpecError([{"path": "$.name", "message": "bad."}, {"path": "$", "message": "x."}])
    assert str(error) == "2 errors: $.name: bad.…"
    assert str(SpecError([{"path": "$", "message": "one."}])) == "1 error: $: one."
