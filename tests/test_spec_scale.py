"""Spec validation at scale: a 10,000-node chain validates and parses in seconds.

Pure like tests/test_spec.py, but kept out of the fast ``unit`` loop for its few seconds."""

from __future__ import annotations

import time
from typing import Any

import pytest

from runs.rules.spec import parse_spec, validate_spec
from tests.specs import spec

pytestmark = pytest.mark.usefixtures("stand_in_handlers")


def _chain(count: int, *, skip: int = 1) -> dict[str, Any]:
    nodes = [{"id": "n0", "handler": "t_python", "config": {"function": "f"}}]
    for i in range(1, count):
        ref = f"n{max(0, i - skip)}"
        nodes.append(
            {
                "id": f"n{i}",
                "handler": "t_python",
                "dependencies": [f"n{i - 1}"],
                "config": {"function": "f", "kwargs": {"x": f"{{{{ {ref}.output.value }}}}"}},
            }
        )
    return spec(nodes, name="test")


@pytest.mark.parametrize("skip", [1, 3])
def test_ten_thousand_node_chain_is_fast(skip: int) -> None:
    doc = _chain(10_000, skip=skip)
    started = time.perf_counter()
    errors = validate_spec(doc)
    validated = time.perf_counter()
    workflow = parse_spec(doc)
    parsed = time.perf_counter()
    print(
        f"\n10,000-node chain (refs {skip} back): validate {validated - started:.3f}s, "
        f"parse {parsed - validated:.3f}s"
    )
    assert errors == []
    assert len(workflow.layers) == 10_000
    assert workflow.nodes["n9999"].refs == frozenset({f"n{9999 - skip}"})
    assert workflow.output_nodes == ("n9999",)
