"""The ``input`` and ``output`` handlers, and the config schemas of every built-in handler."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from handlers.registry import get_handler
from tests.handler_helpers import make_ctx

pytestmark = pytest.mark.unit

BUILTINS = ["input", "output", "call_external_service", "call_llm_service", "python"]


def test_input_returns_the_run_inputs() -> None:
    inputs = {"topic": "trees", "n": 3}
    assert get_handler("input").run(make_ctx(inputs=inputs), {}) == {"data": inputs}


def test_output_defaults_to_the_dependencies_outputs() -> None:
    # seed 004: aggregated_results == {"summarize_posts": {"result": "..."}}
    ctx = make_ctx(
        upstream={"summarize_posts": {"result": "a summary"}, "get_posts": {"data": [1]}},
        dependencies=("summarize_posts",),
    )
    assert get_handler("output").run(ctx, {}) == {"summarize_posts": {"result": "a summary"}}


def test_output_keeps_dependency_order_and_missing_ones() -> None:
    ctx = make_ctx(upstream={"b": 2, "a": 1}, dependencies=("a", "b", "skipped"))
    out = get_handler("output").run(ctx, {})
    assert out == {"a": 1, "b": 2, "skipped": None}
    assert list(out) == ["a", "b", "skipped"]


@pytest.mark.parametrize("value", ["text", 0, None, [1, 2], {"x": {"y": True}}])
def test_output_value(value: Any) -> None:
    ctx = make_ctx(upstream={"a": 1}, dependencies=("a",))
    assert get_handler("output").run(ctx, {"value": value}) == value


@pytest.mark.parametrize("name", BUILTINS)
def test_config_schemas_are_valid_and_closed(name: str) -> None:
    handler = get_handler(name)
    schema = handler.config_schema
    Draft202012Validator.check_schema(schema)
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert handler.__doc__ and handler.description
    assert not Draft202012Validator(schema).is_valid({"unknown_key": 1})


def test_input_and_output_schemas() -> None:
    assert Draft202012Validator(get_handler("input").config_schema).is_valid({})
    output = Draft202012Validator(get_handler("output").config_schema)
    assert output.is_valid({})
    assert output.is_valid({"value": {"anything": [1, "two"]}})
