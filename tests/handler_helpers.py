"""Calling handlers directly in tests: a Context with defaults, and a call that first checks
the config against the handler's schema (as spec validation would)."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from handlers.registry import Context, get_handler


def make_ctx(**overrides: Any) -> Context:
    values: dict[str, Any] = {
        "run_id": "r",
        "node_id": "n",
        "attempt": 1,
        "inputs": {},
        "upstream": {},
    }
    values.update(overrides)
    return Context(**values)


def run_handler(name: str, config: dict[str, Any], ctx: Context | None = None) -> Any:
    handler = get_handler(name)
    Draft202012Validator(handler.config_schema).validate(config)
    return handler.run(ctx or make_ctx(), config)
