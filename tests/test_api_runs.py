"""Resource API for runs: start (inputs validated), list with filters, detail, results, events."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from runs.models import Run
from tests.conftest import wait_for_run

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

GREET = {
    "name": "greet",
    "inputs": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "times": {"type": "integer", "minimum": 1, "default": 2},
        },
        "required": ["name"],
    },
    "dag": {
        "nodes": [
            {"id": "start", "handler": "input"},
            {
                "id": "out",
                "handler": "output",
                "dependencies": ["start"],
                "config": {"value": "{{ (inputs.name ~ '! ') * inputs.times }}"},
            },
        ]
    },
}


@pytest.fixture
def greet(api):
    assert api.post("/api/v1/workflows/", GREET, format="json").status_code == 201


def test_start_run_and_read_result(worker, api, greet):
    response = api.post(
        "/api/v1/runs/", {"workflow": "greet", "inputs": {"name": "Ada"}}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "RUNNING" and body["inputs"] == {"name": "Ada", "times": 2}
    run = wait_for_run(body["id"])
    assert run.status == "COMPLETED"
    detail = api.get(f"/api/v1/runs/{body['id']}/").json()
    assert [n["id"] for n in detail["nodes"]] == ["start", "out"]
    assert all(n["state"] == "COMPLETED" and n["attempt"] == 1 for n in detail["nodes"])
    assert detail["nodes"][0]["output"] == {"data": {"name": "Ada", "times": 2}}
    results = api.get(f"/api/v1/runs/{body['id']}/results/").json()
    assert results == {
        "id": body["id"],
        "status": "COMPLETED",
        "completed": True,
        "result": "Ada! Ada! ",
        "error": "",
    }
    events = api.get(f"/api/v1/runs/{body['id']}/events/").json()["results"]
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "run.status" and kinds[-1] == "run.result"
    assert {e["run"] for e in events} == {body["id"]}  # the streams' event shape
    later = api.get(f"/api/v1/runs/{body['id']}/events/?after={events[2]['id']}").json()["results"]
    assert [e["id"] for e in later] == [e["id"] for e in events[3:]]


def test_wait_returns_the_finished_run(worker, api, greet):
    response = api.post(
        "/api/v1/runs/",
        {"workflow": "greet", "inputs": {"name": "Bo", "times": 1}, "wait": True},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["status"] == "COMPLETED"
    assert response.json()["result"] == "Bo! "


@pytest.mark.parametrize(
    "body,path",
    [
        ({"workflow": "greet", "inputs": {}}, "$.inputs"),
        ({"workflow": "greet", "inputs": {"name": ""}}, "$.inputs.name"),
        ({"workflow": "greet", "inputs": {"name": "x", "times": 0}}, "$.inputs.times"),
        ({"workflow": "greet", "inputs": "not an object"}, "$.inputs"),
        ({"workflow": "nope"}, "$.workflow"),
        ({"workflow": "greet", "version": 9, "inputs": {"name": "x"}}, "$.version"),
        ({"inputs": {"name": "x"}}, "$.workflow"),
        (
            {"workflow": "greet", "inputs": {"name": "x"}, "overrides": {"ghost": {"a": 1}}},
            "$.ghost",
        ),
    ],
)
def test_bad_run_start_is_400_and_creates_nothing(api, greet, body, path):
    response = api.post("/api/v1/runs/", body, format="json")
    assert response.status_code == 400, response.json()
    assert any(e["path"].startswith(path) for e in response.json()["errors"]), response.json()
    assert not Run.objects.exists()


def test_list_filters_and_ownership(worker, api, other_api, greet):
    ids = [
        api.post(
            "/api/v1/runs/", {"workflow": "greet", "inputs": {"name": n}}, format="json"
        ).json()["id"]
        for n in ("a", "b")
    ]
    for run_id in ids:
        wait_for_run(run_id)
    listed = api.get("/api/v1/runs/?status=COMPLETED&workflow=greet").json()["results"]
    assert sorted(r["id"] for r in listed) == sorted(ids)
    assert api.get("/api/v1/runs/?status=FAILED").json()["results"] == []
    assert api.get("/api/v1/runs/?status=BOGUS").status_code == 400
    assert api.get("/api/v1/runs/?created_after=yesterday").status_code == 400

    assert other_api.get("/api/v1/runs/").json()["results"] == []
    assert other_api.get(f"/api/v1/runs/{ids[0]}/").status_code == 404
    assert other_api.get(f"/api/v1/runs/{ids[0]}/results/").status_code == 404
    assert other_api.get(f"/api/v1/runs/{ids[0]}/events/").status_code == 404


def test_token_auth_works(user, greet):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=user)
    client = APIClient()
    assert client.get("/api/v1/runs/").status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.get("/api/v1/runs/").status_code == 200
