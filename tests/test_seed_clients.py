"""The seed-004 routes as their clients use them: over HTTP against a real daphne and worker,
with documents as the reference implementation's Pydantic models serialize them, polling
until every node settles (DESIGN §10)."""

from __future__ import annotations

import time

import pytest
import requests
from rest_framework.authtoken.models import Token

from runs.models import Run, Workflow
from runs.rules.seed import SEED_STATES
from tests.test_seed_api import seed_example

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def seed_client(web_server, user):
    """A requests session that speaks to the live server with ``user``'s API token."""
    session = requests.Session()
    session.headers["Authorization"] = f"Token {Token.objects.create(user=user).key}"

    def call(method: str, path: str, **kwargs) -> requests.Response:
        return session.request(method, web_server + path, timeout=10, **kwargs)

    yield call
    session.close()


def poll_until_settled(call, execution_id: str, timeout: float = 60) -> tuple[dict, set, set]:
    """Poll ``GET /workflows/{id}`` as a seed client does, until the run and every node are
    COMPLETED or FAILED. Returns the last body and every run status and node state seen."""
    statuses: set[str] = set()
    states: set[str] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = call("GET", f"/workflows/{execution_id}").json()
        statuses.add(body["status"])
        states.update(node["state"] for node in body["nodes"].values())
        settled = all(node["state"] in ("COMPLETED", "FAILED") for node in body["nodes"].values())
        if body["status"] in ("COMPLETED", "FAILED") and settled:
            return body, statuses, states
        time.sleep(0.05)
    raise AssertionError(f"execution {execution_id} did not settle: {body}")


def fetch(node_id: str, url: str, **extra) -> dict:
    """A seed ``call_external_service`` node."""
    return {"id": node_id, "handler": "call_external_service", "config": {"url": url}, **extra}


def as_reference_serializes(doc: dict) -> dict:
    """The document as the reference's models dump it: every NodeConfig field present (null
    when unset) and every node with its dependencies list."""
    for node in doc["dag"]["nodes"]:
        config = node.get("config") or {}
        node["config"] = {"url": config.get("url"), "prompt": config.get("prompt")}
        node.setdefault("dependencies", [])
    return doc


def test_reference_serialized_example_runs_end_to_end(worker, seed_client, json_server):
    posts = [{"id": 1, "title": "hello"}]
    json_server.route("GET", "/posts", json=posts, delay=0.5)
    doc = seed_example()
    doc["dag"]["nodes"][0]["config"]["url"] = json_server.url("/posts")
    doc = as_reference_serializes(doc)
    assert doc["dag"]["nodes"][0]["config"]["prompt"] is None  # what was refused before
    assert doc["dag"]["nodes"][2]["config"] == {"url": None, "prompt": None}

    submitted = seed_client("POST", "/workflow", json=doc)
    assert submitted.status_code == 201, submitted.text
    execution_id = submitted.json()["execution_id"]
    assert submitted.json()["status"] == "PENDING"
    # Null values count as absent: nothing to warn about.
    assert submitted.json()["warnings"] == []
    before = seed_client("GET", f"/workflows/{execution_id}/results").json()
    assert before["results"] == {} and before["completed"] is False

    triggered = seed_client("POST", f"/workflow/trigger/{execution_id}")
    assert triggered.status_code == 202
    assert triggered.json()["status"] == "RUNNING"
    during = seed_client("GET", f"/workflows/{execution_id}/results").json()
    assert during["status"] == "RUNNING" and during["results"] == {}

    body, statuses, states = poll_until_settled(seed_client, execution_id)
    assert statuses <= set(SEED_STATES) and states <= set(SEED_STATES)
    assert "RUNNING" in statuses  # the half-second fetch was seen in flight
    assert body["status"] == "COMPLETED"
    assert {node["state"] for node in body["nodes"].values()} == {"COMPLETED"}
    assert body["nodes"]["get_posts"]["output"]["data"] == posts

    results = seed_client("GET", f"/workflows/{execution_id}/results").json()
    assert results["completed"] is True
    assert results["results"]["final_status"] == "workflow_completed"
    assert list(results["results"]["aggregated_results"]) == ["summarize_posts"]
    assert "result" in results["results"]["aggregated_results"]["summarize_posts"]


def test_failing_node_states_stay_closed_and_results_name_the_failure(
    worker, seed_client, json_server
):
    json_server.route("GET", "/slow", json={"ok": True}, delay=1.0)
    json_server.route("GET", "/broken", status=500, json={"detail": "database on fire"})
    doc = {
        "name": "seed failing",
        "dag": {
            "nodes": [
                fetch("slow", json_server.url("/slow")),
                fetch("broken", json_server.url("/broken"), retries=0),
                {
                    "id": "summarize",
                    "handler": "call_llm_service",
                    "dependencies": ["broken"],
                    "config": {"prompt": "Summarize {{ broken.output.data }}"},
                },
                {"id": "output", "handler": "output", "dependencies": ["slow", "summarize"]},
            ]
        },
    }
    execution_id = seed_client("POST", "/workflow", json=doc).json()["execution_id"]
    assert seed_client("POST", f"/workflow/trigger/{execution_id}").status_code == 202

    body, statuses, states = poll_until_settled(seed_client, execution_id)
    assert statuses <= set(SEED_STATES) and states <= set(SEED_STATES)
    assert body["status"] == "FAILED"
    nodes = body["nodes"]
    assert {node_id: node["state"] for node_id, node in nodes.items()} == {
        "slow": "COMPLETED",
        "broken": "FAILED",
        "summarize": "FAILED",
        "output": "FAILED",
    }
    # Trellis's own words ride along; the failure is in the failed node's output.
    assert nodes["summarize"]["trellis_state"] == "UPSTREAM_FAILED"
    assert "500" in nodes["broken"]["output"]["error"]
    assert nodes["summarize"]["output"]["error"] == "not run: broken did not complete"

    results = seed_client("GET", f"/workflows/{execution_id}/results").json()
    assert results["status"] == "FAILED" and results["completed"] is False
    outcome = results["results"]
    assert outcome["final_status"] == "workflow_failed"
    assert list(outcome["failed_nodes"]) == ["broken"]
    assert "500" in outcome["failed_nodes"]["broken"]
    assert outcome["error"].startswith("broken: ") and "500" in outcome["error"]
    assert "500" in results["message"]
    # Keyed by the output node's parents, failed ones with their reason.
    assert outcome["aggregated_results"]["slow"] == nodes["slow"]["output"]
    assert outcome["aggregated_results"]["summarize"] == nodes["summarize"]["output"]


def test_one_sink_without_output_node_is_keyed_by_its_id(worker, seed_client, json_server):
    json_server.route("GET", "/one", json={"n": 1})
    doc = {"name": "seed one sink", "dag": {"nodes": [fetch("only", json_server.url("/one"))]}}
    execution_id = seed_client("POST", "/workflow", json=doc).json()["execution_id"]
    seed_client("POST", f"/workflow/trigger/{execution_id}")
    body, _statuses, _states = poll_until_settled(seed_client, execution_id)
    results = seed_client("GET", f"/workflows/{execution_id}/results").json()
    assert results["results"]["aggregated_results"] == {"only": body["nodes"]["only"]["output"]}
    assert body["nodes"]["only"]["output"]["data"] == {"n": 1}


def test_unknown_config_keys_are_ignored_on_seed_routes_and_refused_on_the_api(
    worker, seed_client, json_server
):
    json_server.route("GET", "/x", json={"x": 1})
    doc = {
        "name": "seed extra keys",
        "dag": {
            "nodes": [
                fetch("fetch", json_server.url("/x")),
                {"id": "output", "handler": "output", "dependencies": ["fetch"]},
            ]
        },
    }
    doc["dag"]["nodes"][0]["config"]["cache_seconds"] = 60
    refused = seed_client("POST", "/api/v1/workflows/", json=doc)
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["path"].startswith("$.dag.nodes[0].config")
    assert not Workflow.objects.exists()

    submitted = seed_client("POST", "/workflow", json=doc)
    assert submitted.status_code == 201
    warnings = submitted.json()["warnings"]
    assert [w["path"] for w in warnings] == ["$.dag.nodes[0].config.cache_seconds"]
    assert "ignored" in warnings[0]["message"]
    execution_id = submitted.json()["execution_id"]
    stored = Run.objects.get(pk=execution_id).workflow_version.spec
    assert stored["dag"]["nodes"][0]["config"] == {"url": json_server.url("/x")}

    # A trigger body is read the same way: null overrides nothing, unknown keys are dropped.
    triggered = seed_client(
        "POST",
        f"/workflow/trigger/{execution_id}",
        json={"fetch": {"url": None, "prompt": "unused", "method": "GET"}},
    )
    assert triggered.status_code == 202, triggered.text
    assert [w["path"] for w in triggered.json()["warnings"]] == ["$.fetch.prompt"]
    body, _statuses, _states = poll_until_settled(seed_client, execution_id)
    assert body["status"] == "COMPLETED"
    assert body["nodes"]["fetch"]["output"]["data"] == {"x": 1}


def test_a_refused_seed_document_stores_nothing(seed_client):
    response = seed_client("POST", "/workflow", json={"name": "x", "dag": {"nodes": [{"id": 1}]}})
    assert response.status_code == 400
    assert response.json()["errors"]
    assert not Workflow.objects.exists() and not Run.objects.exists()
