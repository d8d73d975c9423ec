"""Human in the loop, sub-workflows, sessions and schedules, with a real worker."""

from __future__ import annotations

import time

import pytest
from django_celery_beat.models import PeriodicTask

from runs.models import NodeRun, Run, RunEvent, Session
from tests.conftest import wait_for_run, wait_node
from tests.specs import create, py, spec, start

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def approval_flow(timeout=None):
    config = {
        "prompt": "Approve the spend?",
        "schema": {"type": "object", "required": ["approved"]},
    }
    if timeout:
        config["timeout"] = timeout
    return [
        py("prepare", "add", kwargs={"a": 40, "b": 2}),
        {
            "id": "approve",
            "handler": "wait_for_event",
            "dependencies": ["prepare"],
            "config": config,
        },
        py(
            "act",
            "echo",
            ["approve"],
            kwargs={
                "approved": "{{ approve.output.approved }}",
                "by": "{{ approve.output.who }}",
                "amount": "{{ prepare.output }}",
            },
        ),
    ]


def test_wait_for_event_completes_from_posted_event_and_feeds_downstream(worker, api, user):
    run_id = start(api, create(api, approval_flow()))
    wait_node(run_id, "approve", {"WAITING"})
    time.sleep(0.5)
    assert Run.objects.get(pk=run_id).status == "RUNNING"
    assert NodeRun.objects.get(run_id=run_id, node_id="act").state == "PENDING"

    bad = api.post(
        f"/api/v1/runs/{run_id}/events/", {"node": "approve", "data": {"nope": 1}}, format="json"
    )
    assert bad.status_code == 400 and bad.json()["errors"][0]["path"] == "$.data"
    wrong = api.post(
        f"/api/v1/runs/{run_id}/events/", {"node": "prepare", "data": {}}, format="json"
    )
    assert wrong.status_code == 409
    ghost = api.post(f"/api/v1/runs/{run_id}/events/", {"node": "ghost", "data": {}}, format="json")
    assert ghost.status_code == 400

    sent = api.post(
        f"/api/v1/runs/{run_id}/events/",
        {"node": "approve", "data": {"approved": True, "who": "ada"}},
        format="json",
    )
    assert sent.status_code == 201 and sent.json() == {"node": "approve", "state": "COMPLETED"}
    run = wait_for_run(run_id)
    assert run.status == "COMPLETED"
    act = NodeRun.objects.get(run_id=run_id, node_id="act")
    assert act.output == {"approved": True, "by": "ada", "amount": 42}
    event = RunEvent.objects.get(run_id=run_id, node_id="approve", data__state="COMPLETED")
    assert (
        event.data["event"] == {"approved": True, "who": "ada"}
        and event.data["by"] == user.username
    )
    again = api.post(
        f"/api/v1/runs/{run_id}/events/",
        {"node": "approve", "data": {"approved": 1}},
        format="json",
    )
    assert again.status_code == 409


def test_wait_for_event_times_out(worker, api):
    run_id = start(api, create(api, approval_flow(timeout=1)))
    run = wait_for_run(run_id, timeout=20)
    assert run.status == "FAILED"
    approve = NodeRun.objects.get(run_id=run_id, node_id="approve")
    assert approve.state == "FAILED" and approve.error["type"] == "Timeout"
    assert NodeRun.objects.get(run_id=run_id, node_id="act").state == "UPSTREAM_FAILED"


def test_child_workflow_result_propagates_to_parent(worker, api):
    child = create(
        api,
        [
            {"id": "start", "handler": "input"},
            {
                "id": "out",
                "handler": "output",
                "dependencies": ["start"],
                "config": {"value": "{{ inputs.n * 10 }}"},
            },
        ],
    )
    parent = create(
        api,
        [
            py("seed", "add", kwargs={"a": 1, "b": 2}),
            {
                "id": "sub",
                "handler": "workflow",
                "dependencies": ["seed"],
                "config": {"workflow": child, "inputs": {"n": "{{ seed.output }}"}},
            },
            py("use", "add", ["sub"], kwargs={"a": "{{ sub.output }}", "b": 1}),
        ],
    )
    run_id = start(api, parent)
    run = wait_for_run(run_id)
    assert run.status == "COMPLETED", run.error
    assert NodeRun.objects.get(run_id=run_id, node_id="use").output == 31
    sub = NodeRun.objects.get(run_id=run_id, node_id="sub")
    child_run = Run.objects.get(parent_node=sub)
    assert child_run.status == "COMPLETED" and child_run.result == 30
    assert child_run.inputs == {"n": 3}


def test_failing_child_fails_the_parent_node(worker, api):
    child = create(api, [py("bad", "fail", kwargs={"message": "child broke"})])
    parent = create(api, [{"id": "sub", "handler": "workflow", "config": {"workflow": child}}])
    run = wait_for_run(start(api, parent))
    assert run.status == "FAILED"
    sub = NodeRun.objects.get(run=run, node_id="sub")
    assert sub.error["type"] == "ChildRunFailed" and "FAILED" in sub.error["message"]


def test_unknown_child_workflow_fails_the_node_clearly(worker, api):
    parent = create(api, [{"id": "sub", "handler": "workflow", "config": {"workflow": "nope"}}])
    run = wait_for_run(start(api, parent))
    assert run.status == "FAILED"
    assert (
        "no workflow named 'nope'" in NodeRun.objects.get(run=run, node_id="sub").error["message"]
    )


def test_cancelling_the_parent_cancels_the_child(worker, api):
    child = create(api, [py("slow", "sleep", kwargs={"seconds": 20})])
    parent = create(api, [{"id": "sub", "handler": "workflow", "config": {"workflow": child}}])
    run_id = start(api, parent)
    sub = wait_node(run_id, "sub", {"WAITING"})
    child_run = Run.objects.get(parent_node=sub)
    wait_node(child_run.pk, "slow", {"RUNNING"})
    assert api.post(f"/api/v1/runs/{run_id}/cancel/").status_code == 200
    assert wait_for_run(child_run.pk, timeout=10).status == "CANCELLED"
    assert NodeRun.objects.get(run=child_run, node_id="slow").state == "CANCELLED"
    assert Run.objects.get(pk=run_id).status == "CANCELLED"


def test_session_counter_incremented_by_three_concurrent_runs_is_exact(worker, api):
    session = api.post(
        "/api/v1/sessions/", {"name": "counter", "state": {"count": 0}}, format="json"
    )
    assert session.status_code == 201
    session_id = session.json()["id"]
    name = create(
        api,
        [
            py(
                "bump",
                "bump_session",
                kwargs={"key": "count", "times": 10, "pause": 0.01, "gap": 0.05},
            ),
            {
                "id": "seen",
                "handler": "output",
                "dependencies": ["bump"],
                "config": {"value": "{{ session.count }}"},
            },
        ],
    )
    run_ids = [
        api.post("/api/v1/runs/", {"workflow": name, "session": session_id}, format="json").json()[
            "id"
        ]
        for _ in range(3)
    ]
    runs = [wait_for_run(run_id) for run_id in run_ids]
    assert [r.status for r in runs] == ["COMPLETED"] * 3
    starts = sorted(
        NodeRun.objects.filter(run__in=runs, node_id="bump"), key=lambda n: n.started_at
    )
    assert starts[1].started_at < starts[0].finished_at, "the runs did not overlap"
    final = api.get(f"/api/v1/sessions/{session_id}/").json()
    assert final["state"] == {"count": 30} and final["revision"] == 30
    assert max(r.result for r in runs) == 30  # the template saw the session state
    listed = api.get(f"/api/v1/runs/?session={session_id}").json()["results"]
    assert sorted(r["id"] for r in listed) == sorted(run_ids)


def test_session_api_patch_merges_and_others_get_404(api, other_api):
    session_id = api.post("/api/v1/sessions/", {"state": {"a": 1}}, format="json").json()["id"]
    patched = api.patch(f"/api/v1/sessions/{session_id}/", {"state": {"b": 2}}, format="json")
    assert patched.status_code == 200 and patched.json()["state"] == {"a": 1, "b": 2}
    replaced = api.patch(
        f"/api/v1/sessions/{session_id}/", {"state": {"c": 3}, "replace": True}, format="json"
    )
    assert replaced.json()["state"] == {"c": 3}
    assert (
        api.patch(f"/api/v1/sessions/{session_id}/", {"state": "x"}, format="json").status_code
        == 400
    )
    assert other_api.get(f"/api/v1/sessions/{session_id}/").status_code == 404
    assert other_api.get("/api/v1/sessions/").json()["results"] == []
    assert Session.objects.get(pk=session_id).state == {"c": 3}


def test_schedule_becomes_a_periodic_task_and_follows_new_versions(worker, api):
    doc = spec(
        [{"id": "out", "handler": "output", "config": {"value": "hi {{ inputs.who }}"}}],
        prefix="cron",
        schedule="*/15 * * * *",
        inputs={"type": "object", "properties": {"who": {"type": "string", "default": "beat"}}},
    )
    name = doc["name"]
    assert api.post("/api/v1/workflows/", doc, format="json").status_code == 201
    task = PeriodicTask.objects.get(name=f"trellis:workflow:{name}")
    assert task.task == "trellis.start_scheduled_run" and task.crontab.minute == "*/15"

    # What beat does when the time comes: send the task; the worker starts the run.
    from runs.tasks import start_scheduled_run

    start_scheduled_run.apply_async((name,))
    deadline = time.monotonic() + 20
    while (
        time.monotonic() < deadline
        and not Run.objects.filter(workflow_version__workflow__name=name).exists()
    ):
        time.sleep(0.1)
    run = wait_for_run(Run.objects.get(workflow_version__workflow__name=name).pk)
    assert run.status == "COMPLETED" and run.result == "hi beat"

    api.post("/api/v1/workflows/", {**doc, "schedule": "0 6 * * 1"}, format="json")
    assert PeriodicTask.objects.get(name=f"trellis:workflow:{name}").crontab.hour == "6"
    unscheduled = {k: v for k, v in doc.items() if k != "schedule"}
    api.post("/api/v1/workflows/", unscheduled, format="json")
    assert not PeriodicTask.objects.filter(name=f"trellis:workflow:{name}").exists()
