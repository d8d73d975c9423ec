"""Resource API for workflows: create, versions, validate, errors, ownership."""

from __future__ import annotations

import re

import pytest

from runs.models import Workflow, WorkflowVersion
from tests.specs import spec

pytestmark = pytest.mark.django_db

SIMPLE = {
    "name": "simple",
    "dag": {
        "nodes": [
            {"id": "start", "handler": "input"},
            {"id": "out", "handler": "output", "dependencies": ["start"]},
        ]
    },
}


def test_anonymous_is_401(client):
    response = client.get("/api/v1/workflows/")
    assert response.status_code == 401
    assert response.json()["error"]


def test_create_then_identical_spec_does_not_add_a_version(api):
    first = api.post("/api/v1/workflows/", SIMPLE, format="json")
    assert first.status_code == 201
    assert first.json() == {"name": "simple", "version": 1, "created": True}
    again = api.post("/api/v1/workflows/", SIMPLE, format="json")
    assert again.status_code == 200
    assert again.json()["version"] == 1 and again.json()["created"] is False
    changed = {**SIMPLE, "description": "now with words"}
    third = api.post("/api/v1/workflows/", changed, format="json")
    assert third.status_code == 201 and third.json()["version"] == 2
    versions = api.get("/api/v1/workflows/simple/versions/").json()["results"]
    assert [v["version"] for v in versions] == [2, 1]
    assert api.get("/api/v1/workflows/simple/versions/1/").json()["spec"] == SIMPLE
    detail = api.get("/api/v1/workflows/simple/").json()
    assert detail["latest_version"] == 2 and detail["spec"]["description"] == "now with words"


def test_yaml_body_is_accepted(api):
    body = "name: from-yaml\ndag:\n  nodes:\n    - id: start\n      handler: input\n"
    response = api.post("/api/v1/workflows/", body, content_type="application/yaml")
    assert response.status_code == 201, response.json()
    assert Workflow.objects.filter(name="from-yaml").exists()


def test_validate_returns_plan_by_layers(api):
    doc = {
        "name": "diamond",
        "dag": {
            "nodes": [
                {"id": "a", "handler": "input"},
                {"id": "b", "handler": "output", "dependencies": ["a"]},
                {"id": "c", "handler": "output", "dependencies": ["a"]},
                {"id": "d", "handler": "output", "dependencies": ["b", "c"]},
            ]
        },
    }
    response = api.post("/api/v1/workflows/validate/", doc, format="json")
    assert response.status_code == 200
    assert response.json() == {"valid": True, "errors": [], "plan": [["a"], ["b", "c"], ["d"]]}
    assert not Workflow.objects.exists()


def _nodes(*nodes):
    return spec(nodes, name="bad")


INVALID = [
    ("not an object", ["a list"], ["$"]),
    ("no name", {"dag": {"nodes": [{"id": "a", "handler": "input"}]}}, ["$.name"]),
    ("no dag", {"name": "x"}, ["$.dag"]),
    ("empty nodes", {"name": "x", "dag": {"nodes": []}}, ["$.dag.nodes"]),
    ("node without id", _nodes({"handler": "input"}), ["$.dag.nodes[0].id"]),
    ("bad id", _nodes({"id": "has space", "handler": "input"}), ["$.dag.nodes[0].id"]),
    (
        "duplicate ids",
        _nodes({"id": "a", "handler": "input"}, {"id": "a", "handler": "input"}),
        ["$.dag.nodes[1].id"],
    ),
    ("unknown handler", _nodes({"id": "a", "handler": "teleport"}), ["$.dag.nodes[0].handler"]),
    (
        "unknown dependency",
        _nodes({"id": "a", "handler": "input", "dependencies": ["ghost"]}),
        ["$.dag.nodes[0].dependencies[0]"],
    ),
    (
        "self dependency",
        _nodes({"id": "a", "handler": "input", "dependencies": ["a"]}),
        ["$.dag.nodes[0].dependencies[0]"],
    ),
    (
        "missing url",
        _nodes({"id": "a", "handler": "call_external_service", "config": {}}),
        ["$.dag.nodes[0].config"],
    ),
    (
        "template syntax",
        _nodes({"id": "a", "handler": "output", "config": {"value": "{{ oops( }}"}}),
        ["$.dag.nodes[0].config.value"],
    ),
    (
        "reference to a non-ancestor",
        _nodes(
            {"id": "a", "handler": "input"},
            {"id": "b", "handler": "output", "config": {"value": "{{ a.output }}"}},
        ),
        ["$.dag.nodes[1].config.value"],
    ),
    (
        "unknown name in template",
        _nodes({"id": "a", "handler": "output", "config": {"value": "{{ nowhere }}"}}),
        ["$.dag.nodes[0].config.value"],
    ),
    (
        "bad trigger rule and retries",
        _nodes({"id": "a", "handler": "input", "trigger_rule": "sometimes", "retries": -1}),
        ["$.dag.nodes[0].trigger_rule", "$.dag.nodes[0].retries"],
    ),
    (
        "bad inputs schema",
        {
            "name": "x",
            "inputs": {"type": "wrong"},
            "dag": {"nodes": [{"id": "a", "handler": "input"}]},
        },
        ["$.inputs"],
    ),
]


@pytest.mark.parametrize("label,doc,paths", INVALID, ids=[case[0] for case in INVALID])
def test_invalid_spec_is_400_with_every_error_and_nothing_saved(api, label, doc, paths):
    response = api.post("/api/v1/workflows/", doc, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["error"]
    reported = [error["path"] for error in body["errors"]]
    for path in paths:
        assert any(
            r == path or r.startswith(path + ".") or r.startswith(path + "[") for r in reported
        ), f"{path} not in {reported}"
    assert all(error["message"] for error in body["errors"])
    assert not Workflow.objects.exists() and not WorkflowVersion.objects.exists()


def test_cycle_reports_its_path_together_with_other_errors(api):
    doc = _nodes(
        {"id": "a", "handler": "input", "dependencies": ["c"]},
        {"id": "b", "handler": "input", "dependencies": ["a"]},
        {"id": "c", "handler": "input", "dependencies": ["b"]},
        {"id": "d", "handler": "nonexistent"},
    )
    response = api.post("/api/v1/workflows/", doc, format="json")
    assert response.status_code == 400
    messages = " | ".join(e["message"] for e in response.json()["errors"])
    assert "cycle" in messages and "->" in messages
    assert any(e["path"] == "$.dag.nodes[3].handler" for e in response.json()["errors"])
    assert not Workflow.objects.exists()


def test_invalid_json_body_is_400(api):
    response = api.post("/api/v1/workflows/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "error" in response.json()


def test_other_users_workflow_is_404_and_its_name_is_not_theirs(api, other_api):
    api.post("/api/v1/workflows/", SIMPLE, format="json")
    assert other_api.get("/api/v1/workflows/simple/").status_code == 404
    assert other_api.get("/api/v1/workflows/").json()["results"] == []
    response = other_api.post(
        "/api/v1/workflows/", {**SIMPLE, "description": "hijack"}, format="json"
    )
    assert response.status_code == 403
    assert WorkflowVersion.objects.count() == 1


def test_openapi_schema_and_docs_are_served_locally(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/runs/" in schema.content and b"/workflow/trigger/" in schema.content
    docs = client.get("/docs")
    assert docs.status_code == 200
    page = docs.content.decode()
    # Swagger UI's files come from this server: no absolute URL anywhere in the page.
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets and all(url.startswith("/static/") for url in assets), assets
    assert not re.findall(r"(?:https?:)?//[\w.-]+\.\w+/", page), page
    assert "swagger-ui" in page


def test_python_kwargs_that_do_not_fit_the_signature_are_400(api):
    # place_order(ctx, sku: str, qty: int = 1) in tests/testapp/workflows.py
    def doc(kwargs):
        return spec(
            [
                {"id": "start", "handler": "input"},
                {
                    "id": "buy",
                    "handler": "python",
                    "dependencies": ["start"],
                    "config": {"function": "place_order", "kwargs": kwargs},
                },
            ],
            name="py-kwargs",
        )

    response = api.post("/api/v1/workflows/", doc({"sku": "a", "qty": "two"}), format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [e["path"] for e in errors] == ["$.dag.nodes[1].config.kwargs.qty"]
    unknown = api.post("/api/v1/workflows/", doc({"sku": "a", "size": 3}), format="json")
    assert unknown.status_code == 400
    assert "'size' was unexpected" in unknown.json()["errors"][0]["message"]
    assert not Workflow.objects.filter(name="py-kwargs").exists()
    fits = doc({"sku": "{{ start.output.data.sku }}", "qty": "{{ inputs.n }}"})
    assert api.post("/api/v1/workflows/", fits, format="json").status_code == 201
