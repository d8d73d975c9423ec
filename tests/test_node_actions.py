"""Node actions through the API with a real worker: clear, mark and skip (DESIGN §7)."""

from __future__ import annotations

import time
import uuid

import pytest
from django.test import Client
from django.urls import reverse

from runs.models import NodeRun, Run, RunEvent
from tests.conftest import failed_flaky_run, nodes_of, wait_for_run, wait_node
from tests.specs import create, py, start
from tests.testapp.handlers import count_calls

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
JSON = "application/json"


def node_url(run_id: str, node_id: str, action: str) -> str:
    return f"/api/v1/runs/{run_id}/nodes/{node_id}/{action}/"


def action_event(run_id: str, node_id: str) -> RunEvent:
    return RunEvent.objects.filter(run_id=run_id, node_id=node_id, kind="node.action").latest("id")


def test_clear_failed_node_reruns_it_and_its_downstream_only(worker, api, user):
    run_id, before = failed_flaky_run(api)

    response = api.post(node_url(run_id, "flaky", "clear"), {}, format="json")
    assert response.status_code == 200, response.json()
    run = wait_for_run(run_id)
    assert run.status == "COMPLETED", run.error
    after = nodes_of(run)
    for untouched in ("a", "side"):
        assert after[untouched].attempt == 1
        assert after[untouched].finished_at == before[untouched].finished_at
    assert after["flaky"].attempt == 2 and after["flaky"].output["calls"] == 2
    assert after["child"].output == 12
    audit = action_event(run_id, "flaky")
    assert audit.data["by"] == user.username and audit.data["nodes"] == ["flaky", "child"]
    reopened = RunEvent.objects.get(run_id=run_id, kind="run.status", data__from="FAILED")
    assert reopened.data["by"] == user.username and reopened.data["status"] == "RUNNING"


def test_clear_without_downstream_reruns_only_that_node(worker, api):
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    nodes = [
        py("a", "count", kwargs={"key": first}),
        py("b", "count", ["a"], kwargs={"key": second}),
    ]
    run_id = start(api, create(api, nodes))
    run = wait_for_run(run_id)
    assert run.status == "COMPLETED"
    before = nodes_of(run)

    response = api.post(node_url(run_id, "a", "clear"), {"downstream": False}, format="json")
    assert response.status_code == 200 and response.json()["status"] in ("RUNNING", "COMPLETED")
    run = wait_for_run(run_id)
    assert run.status == "COMPLETED", run.error
    after = nodes_of(run)
    assert count_calls(first) == 2 and count_calls(second) == 1
    assert after["a"].attempt == 2 and after["a"].output["calls"] == 2
    assert after["b"].attempt == 1 and after["b"].finished_at == before["b"].finished_at
    assert after["b"].pending_parents == 0
    assert action_event(run_id, "a").data["nodes"] == ["a"]


def test_mark_completed_on_failed_node_lets_downstream_use_its_output(worker, api, user):
    nodes = [
        py("a", "boom"),
        py("b", "echo", ["a"], kwargs={"got": "{{ a.output.value }}"}),
    ]
    run_id = start(api, create(api, nodes))
    assert wait_for_run(run_id).status == "FAILED"

    body = {"state": "COMPLETED", "output": {"value": 42}}
    response = api.post(node_url(run_id, "a", "mark"), body, format="json")
    assert response.status_code == 200, response.json()
    run = wait_for_run(run_id)
    assert run.status == "COMPLETED", run.error
    after = nodes_of(run)
    assert after["a"].state == "COMPLETED" and after["a"].output == {"value": 42}
    assert after["a"].attempt == 1  # it did not run again
    assert after["b"].output == {"got": 42}
    status = RunEvent.objects.filter(
        run_id=run_id, node_id="a", kind="node.status", data__state="COMPLETED"
    ).get()
    assert status.data["by"] == user.username and status.data["action"] == "mark"
    assert action_event(run_id, "a").data["by"] == user.username


def test_mark_failed_on_pending_node_follows_trigger_rules(worker, api, user):
    nodes = [
        py("a", "sleep", kwargs={"seconds": 1.5}),
        py("p", "add", ["a"], kwargs={"a": 1, "b": 1}),
        py("strict", "add", ["p"], kwargs={"a": 1, "b": 1}),
        py("cleanup", "add", ["p"], kwargs={"a": 2, "b": 2}, trigger_rule="all_done"),
    ]
    run_id = start(api, create(api, nodes))
    wait_node(run_id, "a", {"RUNNING"})
    body = {"state": "FAILED", "reason": "not needed today"}
    response = api.post(node_url(run_id, "p", "mark"), body, format="json")
    assert response.status_code == 200, response.json()
    assert wait_node(run_id, "strict", {"UPSTREAM_FAILED"}).attempt == 0
    assert wait_node(run_id, "cleanup", {"COMPLETED"}).output == 4
    run = wait_for_run(run_id)  # a's finish, counted off p, ends the run
    assert run.status == "FAILED" and "p" in run.error
    after = nodes_of(run)
    assert after["a"].state == "COMPLETED" and after["p"].attempt == 0
    assert after["p"].error["message"] == "not needed today"
    audit = action_event(run_id, "p")
    assert audit.data == {
        "action": "mark",
        "by": user.username,
        "state": "FAILED",
        "nodes": [],
    }


def test_skip_failed_node_lets_downstream_follow_trigger_rules(worker, api, user):
    nodes = [
        py("a", "boom"),
        py("joined", "add", ["a"], kwargs={"a": 1, "b": 2}, trigger_rule="none_failed"),
        py("strict", "add", ["a"], kwargs={"a": 1, "b": 2}),
    ]
    run_id = start(api, create(api, nodes))
    assert wait_for_run(run_id).status == "FAILED"

    response = api.post(node_url(run_id, "a", "skip"))
    assert response.status_code == 200, response.json()
    run = wait_for_run(run_id)
    assert run.status == "COMPLETED", run.error
    after = nodes_of(run)
    assert after["a"].state == "SKIPPED"
    assert after["joined"].state == "COMPLETED" and after["joined"].output == 3
    assert after["strict"].state == "SKIPPED"
    assert action_event(run_id, "a").data["by"] == user.username


def test_illegal_node_actions_are_409_and_change_nothing(worker, api, other_api):
    nodes = [
        py("a", "sleep", kwargs={"seconds": 2}),
        py("b", "add", ["a"], kwargs={"a": 1, "b": 1}),
        py("r", "add", kwargs={"a": 1, "b": 1}),
        py("c", "sleep", ["r"], kwargs={"seconds": 2}),
    ]
    run_id = start(api, create(api, nodes))
    wait_node(run_id, "a", {"RUNNING"})
    wait_node(run_id, "c", {"RUNNING"})
    events = RunEvent.objects.filter(run_id=run_id).count()
    states = {n.node_id: n.state for n in NodeRun.objects.filter(run_id=run_id)}
    illegal = [
        ("a", "mark", {"state": "COMPLETED", "output": 1}, "RUNNING"),
        ("a", "skip", {}, "RUNNING"),
        ("a", "clear", {}, "RUNNING"),
        ("b", "clear", {}, "PENDING"),
        ("r", "clear", {}, "RUNNING"),  # its downstream node c is running
        ("r", "mark", {"state": "FAILED", "reason": "x"}, "COMPLETED"),
    ]
    for node_id, action, body, current in illegal:
        response = api.post(node_url(run_id, node_id, action), body, format="json")
        assert response.status_code == 409, (node_id, action, response.json())
        assert response.json()["current"] == current and response.json()["error"]
    assert RunEvent.objects.filter(run_id=run_id).count() == events
    assert {n.node_id: n.state for n in NodeRun.objects.filter(run_id=run_id)} == states

    assert api.post(node_url(run_id, "nope", "skip")).status_code == 404
    assert other_api.post(node_url(run_id, "b", "skip")).status_code == 404
    bad = api.post(node_url(run_id, "b", "mark"), {"state": "DONE"}, format="json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["path"] == "$.state"
    no_reason = api.post(node_url(run_id, "b", "mark"), {"state": "FAILED"}, format="json")
    assert no_reason.status_code == 400 and no_reason.json()["errors"][0]["path"] == "$.reason"
    bad_flag = api.post(node_url(run_id, "b", "clear"), {"downstream": "maybe"}, format="json")
    assert bad_flag.status_code == 400
    assert NodeRun.objects.get(run_id=run_id, node_id="b").state == "PENDING"

    assert api.post(f"/api/v1/runs/{run_id}/cancel/").status_code == 200
    time.sleep(0.2)
    cancelled = api.post(node_url(run_id, "r", "clear"))
    assert cancelled.status_code == 409 and cancelled.json()["current"] == "CANCELLED"
    assert Run.objects.get(pk=run_id).status == "CANCELLED"


def test_dashboard_shows_legal_node_actions_and_marks_a_node(worker, api, user, user_client):
    nodes = [
        py("a", "boom"),
        py("b", "echo", ["a"], kwargs={"got": "{{ a.output.value }}"}),
    ]
    run_id = start(api, create(api, nodes))
    assert wait_for_run(run_id).status == "FAILED"
    failed = user_client.get(reverse("frontend:node", args=[run_id, "a"])).content.decode()
    for action in ("clear", "mark", "skip"):
        assert f'data-testid="{action}-a"' in failed
    upstream = user_client.get(reverse("frontend:node", args=[run_id, "b"])).content.decode()
    assert 'data-testid="clear-b"' in upstream and 'data-testid="mark-b"' in upstream
    assert 'data-testid="skip-b"' not in upstream  # UPSTREAM_FAILED cannot be skipped

    url = reverse("frontend:node-action", args=[run_id, "a", "mark"])
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(url, {"state": "COMPLETED", "output": "{}"}).status_code == 403
    bad = user_client.post(url, {"state": "COMPLETED", "output": "{nope"}, HTTP_ACCEPT=JSON)
    assert bad.status_code == 400 and "output" in bad.json()["errors"]
    assert NodeRun.objects.get(run_id=run_id, node_id="a").state == "FAILED"

    marked = user_client.post(
        url, {"state": "COMPLETED", "output": '{"value": 7}'}, HTTP_ACCEPT=JSON
    )
    assert marked.status_code == 200 and marked.json()["ok"], marked.json()
    run = wait_for_run(run_id)
    assert run.status == "COMPLETED", run.error
    assert nodes_of(run)["b"].output == {"got": 7}
    assert action_event(run_id, "a").data["by"] == user.username
    done = user_client.get(reverse("frontend:node", args=[run_id, "a"])).content.decode()
    assert 'data-testid="clear-a"' in done and 'data-testid="skip-a"' not in done
    again = user_client.post(
        reverse("frontend:node-action", args=[run_id, "a", "skip"]), HTTP_ACCEPT=JSON
    )
    assert again.status_code == 409 and again.json()["current"] == "COMPLETED"
