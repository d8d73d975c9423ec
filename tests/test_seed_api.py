"""The seed-004 routes, exactly as its document describes them, against real HTTP and LLM
servers on 127.0.0.1 and a real worker."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from runs.models import Run, Workflow
from tests.conftest import wait_for_run

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SEED = (
    Path(__file__).resolve().parent.parent.parent / "shared" / "seeds" / "004_b829b90437810808.txt"
)


def seed_example() -> dict:
    """The example workflow, taken from the seed document itself."""
    text = SEED.read_text() if SEED.exists() else None
    if text:
        start = text.index("```json", text.index("### Example Workflow")) + len("```json")
        return json.loads(text[start : text.index("```", start)])
    return copy.deepcopy(FALLBACK)


FALLBACK = {
    "name": "Simple LLM Workflow",
    "dag": {
        "nodes": [
            {
                "id": "get_posts",
                "handler": "call_external_service",
                "config": {"url": "https://api.example.com/posts"},
            },
            {
                "id": "summarize_posts",
                "handler": "call_llm_service",
                "dependencies": ["get_posts"],
                "config": {"prompt": "Summarize the following posts: {{ get_posts.output.data }}"},
            },
            {"id": "output", "handler": "output", "dependencies": ["summarize_posts"]},
        ]
    },
}


def test_seed_example_runs_through_the_four_routes(worker, api, json_server, llm_server):
    posts = [{"id": 1, "title": "hello"}, {"id": 2, "title": "world"}]
    json_server.route("GET", "/posts", json=posts)
    doc = seed_example()
    doc["dag"]["nodes"][0]["config"]["url"] = json_server.url("/posts")

    submitted = api.post("/workflow", doc, format="json")
    assert submitted.status_code == 201
    body = submitted.json()
    assert body["status"] == "PENDING" and body["warnings"] == []
    execution_id = body["execution_id"]

    status = api.get(f"/workflows/{execution_id}").json()
    assert status["status"] == "PENDING"
    assert status["nodes"]["output"] == {
        "state": "PENDING",
        "output": {},
        "trellis_state": "PENDING",
    }

    override = {
        "summarize_posts": {
            "prompt": (
                "Recent Posts: {{ get_posts.output.data }}. Task: Summarize this user activity"
            )
        }
    }
    triggered = api.post(f"/workflow/trigger/{execution_id}", override, format="json")
    assert triggered.status_code == 202
    assert triggered.json() == {"execution_id": execution_id, "status": "RUNNING", "warnings": []}

    wait_for_run(execution_id)
    status = api.get(f"/workflows/{execution_id}").json()
    assert status["status"] == "COMPLETED"
    assert list(status["nodes"]) == ["get_posts", "summarize_posts", "output"]
    assert status["nodes"]["get_posts"]["state"] == "COMPLETED"
    assert status["nodes"]["get_posts"]["output"]["data"] == posts

    # Lists and dicts interpolated into text render as JSON.
    prompt = f"Recent Posts: {json.dumps(posts)}. Task: Summarize this user activity"
    sent = llm_server.completions[-1].json()
    assert sent["messages"][-1] == {"role": "user", "content": prompt}

    results = api.get(f"/workflows/{execution_id}/results").json()
    assert {"execution_id", "status", "completed", "results", "message"} <= set(results)
    assert results["status"] == "COMPLETED" and results["completed"] is True
    assert results["message"] == "Results retrieved successfully."
    assert results["results"]["final_status"] == "workflow_completed"
    aggregated = results["results"]["aggregated_results"]
    assert list(aggregated) == ["summarize_posts"]
    assert prompt in aggregated["summarize_posts"]["result"]


def test_trigger_with_unknown_node_is_400_and_run_stays_pending(api):
    doc = seed_example()
    execution_id = api.post("/workflow", doc, format="json").json()["execution_id"]
    response = api.post(f"/workflow/trigger/{execution_id}", {"nope": {"url": "x"}}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == "$.nope"
    assert Run.objects.get(pk=execution_id).status == "PENDING"


def test_trigger_twice_is_409(worker, api, json_server):
    json_server.route("GET", "/posts", json=[])
    doc = seed_example()
    doc["dag"]["nodes"][0]["config"]["url"] = json_server.url("/posts")
    execution_id = api.post("/workflow", doc, format="json").json()["execution_id"]
    assert api.post(f"/workflow/trigger/{execution_id}").status_code == 202
    again = api.post(f"/workflow/trigger/{execution_id}")
    assert again.status_code == 409
    assert again.json()["current"] in ("RUNNING", "COMPLETED")


def test_results_before_completion_say_so(api):
    execution_id = api.post("/workflow", seed_example(), format="json").json()["execution_id"]
    results = api.get(f"/workflows/{execution_id}/results").json()
    assert results["completed"] is False and results["status"] == "PENDING"
    assert results["results"] == {}


def test_invalid_seed_document_is_400_and_nothing_saved(api):
    response = api.post("/workflow", {"name": "x", "dag": {"nodes": [{"id": "a"}]}}, format="json")
    assert response.status_code == 400
    assert not Workflow.objects.exists() and not Run.objects.exists()


def test_unknown_execution_is_404(api):
    assert api.get("/workflows/00000000-0000-0000-0000-000000000000").status_code == 404
