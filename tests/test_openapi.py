"""The OpenAPI document at /api/schema/: typed bodies, tags, summaries, the plain Django views
(SSE stream, /metrics, probes) and the run list's filters; and live answers that match it."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import requests
from rest_framework.authtoken.models import Token

from runs.rules.states import RUN_STATES
from tests.specs import spec

pytestmark = pytest.mark.django_db

TAGS = {"workflows", "runs", "events", "sessions", "workers", "seed-004", "probes", "metrics"}
METHODS = {"get", "post", "put", "patch", "delete", "head"}
STREAM = "/api/v1/runs/{run_id}/stream/"


@pytest.fixture
def document(client) -> dict:
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    return json.loads(response.content)


def operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def resolve(document: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def is_typed(document: dict, schema: dict) -> bool:
    """An object with named properties (through ``$ref`` and ``allOf``), or a typed array."""
    schema = resolve(document, schema)
    if "allOf" in schema:
        return all(is_typed(document, part) for part in schema["allOf"])
    if schema.get("type") == "array":
        return is_typed(document, schema["items"])
    return bool(schema.get("properties"))


def test_every_json_body_is_typed(document):
    untyped = []
    for path, method, operation in operations(document):
        bodies = [("request", operation.get("requestBody", {}).get("content", {}))]
        bodies += [(code, r.get("content", {})) for code, r in operation["responses"].items()]
        for where, content in bodies:
            schema = content.get("application/json", {}).get("schema")
            if schema is not None and not is_typed(document, schema):
                untyped.append((method, path, where))
    # The seed trigger's body is keyed by node ids: a map of objects, typed as such.
    trigger = document["paths"]["/workflow/trigger/{execution_id}/"]["post"]["requestBody"]
    assert untyped == [("post", "/workflow/trigger/{execution_id}/", "request")]
    assert trigger["content"]["application/json"]["schema"]["additionalProperties"]["type"] == (
        "object"
    )


def test_every_operation_has_a_resource_tag_a_summary_and_an_explicit_id(document):
    ids = []
    for path, method, operation in operations(document):
        assert len(operation["tags"]) == 1 and operation["tags"][0] in TAGS, (method, path)
        assert operation.get("summary"), (method, path)
        ids.append(operation["operationId"])
    assert len(ids) == len(set(ids)) >= 29
    # Explicit ids, not drf-spectacular's path-derived ones (`api_v1_runs_create`).
    assert not [i for i in ids if i.startswith("api_")]
    assert {"runs_list", "runs_create", "runs_pause", "run_stream", "seed_trigger"} <= set(ids)
    assert {tag["name"] for tag in document["tags"]} == TAGS


def test_errors_are_the_error_shape_and_409_carries_current(document):
    error = resolve(document, {"$ref": "#/components/schemas/Error"})
    assert set(error["required"]) == {"error", "errors"}
    conflict = document["paths"]["/api/v1/runs/{run_id}/pause/"]["post"]["responses"]["409"]
    conflict = resolve(document, conflict["content"]["application/json"]["schema"])
    assert "current" in conflict["required"]
    for path, method, operation in operations(document):
        if path in ("/health", "/ready"):
            continue
        assert "401" in operation["responses"], (method, path)
        for code, response in operation["responses"].items():
            if code.startswith("4"):
                schema = resolve(document, response["content"]["application/json"]["schema"])
                assert {"error", "errors"} <= set(schema["required"]), (method, path, code)


def test_stream_metrics_and_probes_are_documented(document):
    stream = document["paths"][STREAM]["get"]
    assert stream["tags"] == ["events"]
    assert "text/event-stream" in stream["responses"]["200"]["content"]
    params = {(p["in"], p["name"]) for p in stream["parameters"]}
    assert {("path", "run_id"), ("header", "Last-Event-ID"), ("query", "after")} <= params
    assert "RunEvent" in stream["description"] and "Last-Event-ID" in stream["description"]
    event = document["components"]["schemas"]["RunEvent"]
    assert set(event["properties"]) == {"id", "run", "ts", "kind", "node", "data"}

    metrics = document["paths"]["/metrics"]["get"]
    assert metrics["tags"] == ["metrics"]
    assert "text/plain" in metrics["responses"]["200"]["content"]
    assert {"metricsToken": []} in metrics["security"] and {"401", "403"} <= set(
        metrics["responses"]
    )
    assert document["components"]["securitySchemes"]["metricsToken"]["scheme"] == "bearer"
    assert document["paths"]["/health"]["get"]["security"] == []
    assert set(document["paths"]["/ready"]["get"]["responses"]) == {"200", "503"}
    assert "/api/schema/" not in document["paths"]


def test_run_list_filters_are_query_parameters(document):
    params = {p["name"]: p for p in document["paths"]["/api/v1/runs/"]["get"]["parameters"]}
    assert {"status", "workflow", "session", "created_after", "cursor", "limit"} <= set(params)
    assert all(params[name]["in"] == "query" for name in params)
    assert set(params["status"]["schema"]["enum"]) == set(RUN_STATES)
    assert params["session"]["schema"]["format"] == "uuid"
    assert params["created_after"]["schema"]["format"] == "date-time"


def test_bad_filter_values_answer_400_naming_each_parameter(api):
    response = api.get("/api/v1/runs/?status=BOGUS&session=nope&created_after=yesterday")
    assert response.status_code == 400
    assert response.json() == {
        "error": "unknown status 'BOGUS'",
        "errors": [
            {"path": "status", "message": "unknown status 'BOGUS'"},
            {"path": "session", "message": "not a session id"},
            {"path": "created_after", "message": "not an ISO 8601 date-time"},
        ],
    }
    # Empty values filter nothing, as before.
    assert api.get("/api/v1/runs/?status=&session=&created_after=").status_code == 200


# --------------------------------------------------------------------------------------
# Live answers of a real daphne and worker, validated against the document it serves


GREET = spec(
    [
        {"id": "start", "handler": "input"},
        {
            "id": "out",
            "handler": "output",
            "dependencies": ["start"],
            "config": {"value": "{{ inputs.name }}"},
        },
    ],
    name="openapi-greet",
    inputs={"type": "object", "properties": {"name": {"type": "string"}}},
)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_live_answers_match_the_document(web_server, worker, user):
    # Imported here, as in test_schemathesis.py: schemathesis takes seconds to import.
    import schemathesis

    schema = schemathesis.openapi.from_url(f"{web_server}/api/schema/")
    document = requests.get(f"{web_server}/api/schema/?format=json", timeout=30).json()
    session = requests.Session()
    session.headers["Authorization"] = f"Token {Token.objects.create(user=user).key}"
    checked: list[tuple[str, str, int]] = []

    def call(method: str, template: str, *, expect: int, path: str | None = None, **kwargs):
        response = session.request(method, web_server + (path or template), timeout=60, **kwargs)
        assert response.status_code == expect, (method, path or template, response.text)
        operation = document["paths"][template][method.lower()]
        assert str(expect) in operation["responses"], (method, template, expect)
        schema[template][method].validate_response(response)  # raises on a mismatch
        checked.append((method, template, expect))
        return response.json() if "json" in response.headers["Content-Type"] else response

    # Workflows
    call("POST", "/api/v1/workflows/", json=GREET, expect=201)
    call("POST", "/api/v1/workflows/", json=GREET, expect=200)
    call("POST", "/api/v1/workflows/", json={"name": "x", "dag": {"nodes": []}}, expect=400)
    call("GET", "/api/v1/workflows/", expect=200)
    named = "/api/v1/workflows/{name}/"
    call("GET", named, path="/api/v1/workflows/openapi-greet/", expect=200)
    call("GET", named, path="/api/v1/workflows/nothing-here/", expect=404)
    versions = "/api/v1/workflows/openapi-greet/versions/"
    call("GET", "/api/v1/workflows/{name}/versions/", path=versions, expect=200)
    call("GET", "/api/v1/workflows/{name}/versions/{number}/", path=versions + "1/", expect=200)
    call("POST", "/api/v1/workflows/validate/", json=GREET, expect=200)
    call("POST", "/api/v1/workflows/validate/", json={"dag": 1}, expect=200)

    # Runs
    started = {"workflow": "openapi-greet", "inputs": {"name": "Ada"}, "wait": True}
    run = call("POST", "/api/v1/runs/", json=started, expect=201)
    assert run["status"] == "COMPLETED" and run["nodes"], run
    call("POST", "/api/v1/runs/", json={"workflow": "openapi-greet", "inputs": {}}, expect=201)
    call("POST", "/api/v1/runs/", json={"workflow": "no-such-workflow"}, expect=400)
    call("GET", "/api/v1/runs/", path="/api/v1/runs/?status=COMPLETED&limit=1", expect=200)
    call("GET", "/api/v1/runs/", path="/api/v1/runs/?status=BOGUS", expect=400)
    one = f"/api/v1/runs/{run['id']}/"
    call("GET", "/api/v1/runs/{run_id}/", path=one, expect=200)
    call("GET", "/api/v1/runs/{run_id}/", path=f"/api/v1/runs/{uuid.uuid4()}/", expect=404)
    call("GET", "/api/v1/runs/{run_id}/results/", path=one + "results/", expect=200)
    conflict = call("POST", "/api/v1/runs/{run_id}/pause/", path=one + "pause/", expect=409)
    assert conflict["current"] == "COMPLETED"
    events = call("GET", "/api/v1/runs/{run_id}/events/", path=one + "events/", expect=200)
    assert events["results"], events
    sent = {"node": "nowhere", "data": {}}
    call("POST", "/api/v1/runs/{run_id}/events/", path=one + "events/", json=sent, expect=400)

    # The stream of a finished run: every event, then the end; nothing after the last one.
    stream = session.get(web_server + one + "stream/", timeout=30)
    assert stream.status_code == 200
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    data = [json.loads(line[6:]) for line in stream.text.splitlines() if line[:6] == "data: "]
    assert data == events["results"]
    event_fields = set(document["components"]["schemas"]["RunEvent"]["required"])
    assert all(set(event) == event_fields for event in data)
    last = {"Last-Event-ID": str(data[-1]["id"])}
    assert session.get(web_server + one + "stream/", headers=last, timeout=30).status_code == 204

    # Sessions and workers
    created = call("POST", "/api/v1/sessions/", json={"name": "s", "state": {"a": 1}}, expect=201)
    call("GET", "/api/v1/sessions/", expect=200)
    it = f"/api/v1/sessions/{created['id']}/"
    call("GET", "/api/v1/sessions/{session_id}/", path=it, expect=200)
    call("PATCH", "/api/v1/sessions/{session_id}/", path=it, json={"state": {"b": 2}}, expect=200)
    workers = call("GET", "/api/v1/workers/", expect=200)
    assert workers["results"], workers

    # Seed-004: triggered without inputs, `{{ inputs.name }}` fails, so the results carry the
    # failure's fields too (`error`, `failed_nodes`).
    seed_doc = {**GREET, "name": "openapi-seed"}
    execution = call("POST", "/workflow/", json=seed_doc, expect=201)["execution_id"]
    call(
        "GET",
        "/workflows/{execution_id}/results/",
        path=f"/workflows/{execution}/results/",
        expect=200,
    )
    trigger = f"/workflow/trigger/{execution}/"
    call("POST", "/workflow/trigger/{execution_id}/", path=trigger, json={}, expect=202)
    call("POST", "/workflow/trigger/{execution_id}/", path=trigger, json={}, expect=409)
    deadline = time.monotonic() + 30
    while call("GET", "/workflows/{execution_id}/", path=f"/workflows/{execution}/", expect=200)[
        "status"
    ] not in ("COMPLETED", "FAILED"):
        assert time.monotonic() < deadline, "the seed execution did not finish"
        time.sleep(0.1)
    done = call(
        "GET",
        "/workflows/{execution_id}/results/",
        path=f"/workflows/{execution}/results/",
        expect=200,
    )
    assert done["results"]["final_status"] == "workflow_failed", done
    assert list(done["results"]["failed_nodes"]) == ["out"], done

    # Probes, metrics (alice is not staff), and no credentials at all
    call("GET", "/health", expect=200)
    call("GET", "/ready", expect=200)
    call("GET", "/metrics", expect=403)
    anonymous = requests.get(f"{web_server}/api/v1/runs/", timeout=30)
    assert anonymous.status_code == 401
    schema["/api/v1/runs/"]["GET"].validate_response(anonymous)

    assert len({(method, template) for method, template, _ in checked}) >= 22, checked
