"""The seed-004 rules (runs.rules.seed): the closed state vocabulary and lenient configs.
Pure: no settings, database or broker."""

from __future__ import annotations

import pytest

from runs.rules.seed import (
    SEED_NODE_STATE,
    SEED_RUN_STATUS,
    SEED_STATES,
    relax_document,
    relax_overrides,
)
from runs.rules.spec import validate_spec
from runs.rules.states import NODE_FINISHED, NodeState, RunState

pytestmark = pytest.mark.unit


def test_every_trellis_state_has_a_seed_word_from_the_closed_set():
    assert set(SEED_RUN_STATUS) == set(RunState)
    assert set(SEED_NODE_STATE) == set(NodeState)
    assert set(SEED_RUN_STATUS.values()) == set(SEED_STATES)
    assert set(SEED_NODE_STATE.values()) == set(SEED_STATES)


def test_finished_nodes_read_completed_or_failed():
    assert {SEED_NODE_STATE[state] for state in NODE_FINISHED} == {"COMPLETED", "FAILED"}
    assert SEED_NODE_STATE[NodeState.UPSTREAM_FAILED] == "FAILED"
    for state in set(NodeState) - NODE_FINISHED:
        assert SEED_NODE_STATE[state] in ("PENDING", "RUNNING"), state


def reference_dump() -> dict:
    return {
        "name": "Simple LLM Workflow",
        "dag": {
            "nodes": [
                {
                    "id": "get_posts",
                    "handler": "call_external_service",
                    "dependencies": [],
                    "config": {"url": "https://api.example.com/posts", "prompt": None},
                },
                {
                    "id": "summarize_posts",
                    "handler": "call_llm_service",
                    "dependencies": ["get_posts"],
                    "config": {"url": None, "prompt": "Summarize {{ get_posts.output.data }}"},
                },
                {
                    "id": "output",
                    "handler": "output",
                    "dependencies": ["summarize_posts"],
                    "config": None,
                },
            ]
        },
    }


def test_null_config_values_count_as_absent():
    doc = reference_dump()
    assert validate_spec(doc)  # strict: refused as it is
    relaxed, warnings = relax_document(doc)
    assert warnings == []
    assert validate_spec(relaxed) == []
    nodes = relaxed["dag"]["nodes"]
    assert nodes[0]["config"] == {"url": "https://api.example.com/posts"}
    assert nodes[1]["config"] == {"prompt": "Summarize {{ get_posts.output.data }}"}
    assert "config" not in nodes[2]
    assert doc["dag"]["nodes"][0]["config"]["prompt"] is None  # the input is not changed


def test_unknown_config_keys_are_dropped_with_a_warning_each():
    doc = reference_dump()
    doc["dag"]["nodes"][0]["config"]["cache"] = True
    doc["dag"]["nodes"][1]["config"]["url"] = "https://llm.example.com"
    relaxed, warnings = relax_document(doc)
    assert [w["path"] for w in warnings] == [
        "$.dag.nodes[0].config.cache",
        "$.dag.nodes[1].config.url",
    ]
    assert "'url' is not a setting of the 'call_llm_service' handler" in warnings[1]["message"]
    assert validate_spec(relaxed) == []


def test_what_is_not_a_config_problem_is_left_to_the_checker():
    doc = {"name": "x", "dag": {"nodes": [{"id": "a", "handler": "nope", "config": {"k": 1}}]}}
    relaxed, warnings = relax_document(doc)
    assert warnings == [] and relaxed == doc
    assert relax_document([1, 2]) == ([1, 2], [])
    assert relax_document({"dag": "x"}) == ({"dag": "x"}, [])


def test_trigger_overrides_drop_nulls_and_unknown_keys():
    doc = reference_dump()
    overrides = {
        "summarize_posts": {"prompt": "Other", "url": "https://x", "model": None},
        "missing": {"url": "x"},
        "get_posts": "not an object",
    }
    relaxed, warnings = relax_overrides(doc, overrides)
    assert relaxed == {
        "summarize_posts": {"prompt": "Other"},
        "missing": {"url": "x"},  # left for apply_overrides to refuse
        "get_posts": "not an object",
    }
    assert [w["path"] for w in warnings] == ["$.summarize_posts.url"]
