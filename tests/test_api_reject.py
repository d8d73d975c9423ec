"""Waiting for people through the API: reject a WAITING node (POST /api/v1/runs/{id}/events/
with ``reject``) and list the runs that need input (GET /api/v1/runs/?needs_input=true)."""

from __future__ import annotations

import pytest

from runs.models import NodeRun, Run, RunEvent
from tests.conftest import wait_for_run, wait_node
from tests.specs import create, py, start

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def approval_flow(after_rule: str = "all_success"):
    """prepare → approve (waits for a person) → act (with ``after_rule``) and report
    (``all_done``: runs whatever the approval's outcome)."""
    return [
        py("prepare", "add", kwargs={"a": 1, "b": 2}),
        {
            "id": "approve",
            "handler": "wait_for_event",
            "dependencies": ["prepare"],
            "config": {"prompt": "**Ship** it?"},
            "retries": 3,
        },
        py("act", "echo", ["approve"], kwargs={"ok": True}, trigger_rule=after_rule),
        py("report", "echo", ["approve"], kwargs={"done": True}, trigger_rule="all_done"),
    ]


def post_event(api, run_id, body):
    return api.post(f"/api/v1/runs/{run_id}/events/", body, format="json")


def test_reject_fails_the_waiting_node_with_the_reason_and_trigger_rules_decide(worker, api, user):
    run_id = start(api, create(api, approval_flow()))
    wait_node(run_id, "approve", {"WAITING"})

    answer = post_event(api, run_id, {"node": "approve", "reject": "  budget is frozen  "})

    assert answer.status_code == 201, answer.json()
    assert answer.json() == {"node": "approve", "state": "FAILED"}
    run = wait_for_run(run_id)
    assert run.status == "FAILED"
    approve = NodeRun.objects.get(run_id=run_id, node_id="approve")
    assert approve.state == "FAILED"
    assert approve.error["message"] == "budget is frozen"
    assert approve.error["type"] == "Rejected"
    assert approve.attempt == 1  # retries: 3, yet a rejection is not retried
    states = dict(NodeRun.objects.filter(run_id=run_id).values_list("node_id", "state"))
    assert states["act"] == "UPSTREAM_FAILED"  # all_success
    assert states["report"] == "COMPLETED"  # all_done
    event = RunEvent.objects.get(run_id=run_id, node_id="approve", data__state="FAILED")
    assert event.data["by"] == user.username
    assert event.data["action"] == "reject"
    assert event.data["error"] == "budget is frozen"


def test_reject_of_a_node_that_is_not_waiting_is_409(worker, api):
    run_id = start(api, create(api, approval_flow()))
    wait_node(run_id, "approve", {"WAITING"})

    finished = post_event(api, run_id, {"node": "prepare", "reject": "no"})
    assert finished.status_code == 409
    assert finished.json()["current"] == "COMPLETED"
    assert finished.json()["error"]

    assert post_event(api, run_id, {"node": "approve", "reject": "first"}).status_code == 201
    again = post_event(api, run_id, {"node": "approve", "reject": "second"})
    assert again.status_code == 409 and again.json()["current"] == "FAILED"
    approve = NodeRun.objects.get(run_id=run_id, node_id="approve")
    assert approve.error["message"] == "first"


@pytest.mark.parametrize(
    "body, path",
    [
        ({"node": "approve", "reject": ""}, "$.reject"),
        ({"node": "approve", "reject": "   "}, "$.reject"),
        ({"node": "approve", "reject": 5}, "$.reject"),
        ({"node": "approve", "reject": None}, "$.reject"),
        ({"node": "approve", "reject": "x" * 2001}, "$.reject"),
        ({"node": "approve", "reject": "no", "data": {"ok": 1}}, "$.reject"),
        ({"node": "ghost", "reject": "no"}, "$.node"),
    ],
)
def test_bad_rejections_are_400_and_change_nothing(worker, api, body, path):
    run_id = start(api, create(api, approval_flow()))
    wait_node(run_id, "approve", {"WAITING"})
    events_before = RunEvent.objects.filter(run_id=run_id).count()

    answer = post_event(api, run_id, body)

    assert answer.status_code == 400, answer.json()
    assert answer.json()["error"]
    assert answer.json()["errors"][0]["path"] == path
    assert NodeRun.objects.get(run_id=run_id, node_id="approve").state == "WAITING"
    assert Run.objects.get(pk=run_id).status == "RUNNING"
    assert RunEvent.objects.filter(run_id=run_id).count() == events_before


def test_needs_input_filter_lists_running_runs_with_a_waiting_node(worker, api, other_api):
    name = create(api, approval_flow())
    waiting = start(api, name)
    plain = start(api, create(api, [py("only", "add", kwargs={"a": 1, "b": 1})]))
    wait_node(waiting, "approve", {"WAITING"})
    wait_for_run(plain)

    needing = api.get("/api/v1/runs/?needs_input=true").json()["results"]
    assert [run["id"] for run in needing] == [waiting]
    assert needing[0]["needs_input"] is True
    others = {
        run["id"]: run for run in api.get("/api/v1/runs/?needs_input=false").json()["results"]
    }
    assert plain in others and waiting not in others
    assert others[plain]["needs_input"] is False
    assert api.get(f"/api/v1/runs/{waiting}/").json()["needs_input"] is True
    assert other_api.get("/api/v1/runs/?needs_input=true").json()["results"] == []

    bad = api.get("/api/v1/runs/?needs_input=maybe")
    assert bad.status_code == 400 and bad.json()["errors"][0]["path"] == "needs_input"

    assert post_event(api, waiting, {"node": "approve", "data": {}}).status_code == 201
    wait_for_run(waiting)
    assert api.get("/api/v1/runs/?needs_input=true").json()["results"] == []
    assert api.get(f"/api/v1/runs/{waiting}/").json()["needs_input"] is False
