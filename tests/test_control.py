"""Run control through the API with a real worker: pause, resume, cancel, retry."""

from __future__ import annotations

import time

import pytest

from runs.models import NodeRun, Run, RunEvent
from tests.conftest import failed_flaky_run, nodes_of, wait_for_run, wait_node
from tests.specs import create, py, start

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def three_layers():
    return [
        py("a", "sleep", kwargs={"seconds": 1.0}),
        py("b1", "sleep", ["a"], kwargs={"seconds": 0.2}),
        py("b2", "sleep", ["a"], kwargs={"seconds": 0.2}),
        py("c", "add", ["b1", "b2"], kwargs={"a": 1, "b": 2}),
    ]


def test_pause_holds_new_nodes_and_resume_finishes(worker, api):
    run_id = start(api, create(api, three_layers()))
    wait_node(run_id, "a", {"RUNNING"})
    paused = api.post(f"/api/v1/runs/{run_id}/pause/")
    assert paused.status_code == 200 and paused.json()["status"] == "PAUSED"
    wait_node(run_id, "a", {"COMPLETED"})
    time.sleep(1.0)  # nothing may start while paused
    nodes = nodes_of(Run.objects.get(pk=run_id))
    assert nodes["b1"].state == "READY" and nodes["b2"].state == "READY"
    assert nodes["b1"].started_at is None and nodes["c"].state == "PENDING"
    assert api.post(f"/api/v1/runs/{run_id}/pause/").status_code == 409
    resumed_at = time.time()
    resumed = api.post(f"/api/v1/runs/{run_id}/resume/")
    assert resumed.status_code == 200 and resumed.json()["status"] == "RUNNING"
    run = wait_for_run(run_id)
    assert run.status == "COMPLETED"
    nodes = nodes_of(run)
    assert all(nodes[n].started_at.timestamp() >= resumed_at - 0.05 for n in ("b1", "b2", "c"))
    again = api.post(f"/api/v1/runs/{run_id}/resume/")
    assert again.status_code == 409 and again.json()["current"] == "COMPLETED"
    assert api.post(f"/api/v1/runs/{run_id}/pause/").status_code == 409


def test_cancel_mid_run_leaves_nothing_running_or_queued(worker, api):
    nodes = (
        [py("slow", "sleep", kwargs={"seconds": 5})]
        + [py(f"q{i}", "sleep", kwargs={"seconds": 2}) for i in range(6)]
        + [py("after", "add", ["slow"], kwargs={"a": 1, "b": 1})]
    )
    run_id = start(api, create(api, nodes))
    wait_node(run_id, "slow", {"RUNNING"})
    response = api.post(f"/api/v1/runs/{run_id}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "CANCELLED"
    time.sleep(1.0)
    run = Run.objects.get(pk=run_id)
    assert run.status == "CANCELLED"
    states = {n.node_id: n.state for n in NodeRun.objects.filter(run=run)}
    assert set(states.values()) <= {"CANCELLED", "COMPLETED"}, states
    assert states["slow"] == "CANCELLED" and states["after"] == "CANCELLED"
    assert api.post(f"/api/v1/runs/{run_id}/cancel/").status_code == 409


def test_retry_reruns_only_the_failed_node_and_its_descendants(worker, api, user):
    run_id, before = failed_flaky_run(api)

    response = api.post(f"/api/v1/runs/{run_id}/retry/")
    assert response.status_code == 200 and response.json()["status"] == "RUNNING"
    run = wait_for_run(run_id)
    assert run.status == "COMPLETED", run.error
    after = nodes_of(run)
    for untouched in ("a", "side"):
        assert after[untouched].attempt == 1
        assert after[untouched].started_at == before[untouched].started_at
    assert after["flaky"].attempt == 2
    assert [a["state"] for a in after["flaky"].attempts] == ["FAILED", "COMPLETED"]
    assert after["child"].output == 12
    audit = RunEvent.objects.get(run_id=run_id, kind="run.retry")
    assert audit.data["by"] == user.username and audit.data["nodes"] == ["child", "flaky"]
    assert api.post(f"/api/v1/runs/{run_id}/retry/").status_code == 409


def test_other_user_cannot_control_a_run(worker, api, other_api):
    run_id = start(api, create(api, [py("a", "sleep", kwargs={"seconds": 0.5})]))
    assert other_api.post(f"/api/v1/runs/{run_id}/cancel/").status_code == 404
    assert wait_for_run(run_id).status == "COMPLETED"
