"""``max_concurrent_runs``: extra runs wait PENDING, in order, and start as slots free."""

from __future__ import annotations

import time

import pytest

from runs.models import NodeRun, Run, RunEvent
from runs.services import control
from runs.services.runs import start_new_run
from tests.conftest import wait_for_run
from tests.specs import run_spec, save

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_runs_over_the_limit_wait_in_order_and_all_complete(worker, user, user_client):
    work = {
        "id": "work",
        "handler": "python",
        "config": {"function": "sleep", "kwargs": {"seconds": 1.0}},
    }
    version = save(user, [work], prefix="limited", max_concurrent_runs=2)
    name = version.workflow.name
    runs = [start_new_run(version, user) for _ in range(5)]
    ids = [run.pk for run in runs]
    statuses = dict(Run.objects.filter(pk__in=ids).values_list("pk", "status"))
    assert [statuses[pk] for pk in ids] == ["RUNNING", "RUNNING", "PENDING", "PENDING", "PENDING"]
    assert RunEvent.objects.filter(run_id__in=ids, kind="run.waiting").count() == 3

    waiting = user_client.get(f"/api/v1/runs/{ids[4]}/").json()
    assert waiting["status"] == "PENDING"
    assert (
        "max_concurrent_runs" in waiting["waiting"]
        and "allows 2 concurrent runs" in waiting["waiting"]
    )
    assert user_client.get(f"/api/v1/runs/{ids[0]}/").json()["waiting"] is None
    page = user_client.get(f"/dashboard/workflows/{name}/").content.decode()
    assert "At most 2 concurrent runs: 2 running or paused, 3 waiting for a slot." in page
    assert 'id="run-waiting"' in user_client.get(f"/dashboard/runs/{ids[4]}/").content.decode()

    # The last waiting run is cancelled: it never starts, and frees no slot.
    control.cancel(ids[4], user)
    most = 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        active = Run.objects.filter(pk__in=ids, status__in=["RUNNING", "PAUSED"]).count()
        most = max(most, active)
        if Run.objects.filter(pk__in=ids[:4], status="COMPLETED").count() == 4:
            break
        time.sleep(0.02)
    assert most <= 2, f"{most} runs were active at once"
    finished = [wait_for_run(pk) for pk in ids[:4]]
    assert [run.status for run in finished] == ["COMPLETED"] * 4
    # Admitted in the order they were triggered.
    started = sorted(finished, key=lambda run: run.started_at)
    assert [run.pk for run in started] == ids[:4]
    cancelled = Run.objects.get(pk=ids[4])
    assert cancelled.status == "CANCELLED" and cancelled.started_at is None


def test_reconciler_admits_a_waiting_run_whose_hook_was_missed(worker, user):
    from runs.engine.scheduler import admit_all

    # Long enough that the first run still holds the slot when the second one starts.
    nap = {
        "id": "a",
        "handler": "python",
        "config": {"function": "sleep", "kwargs": {"seconds": 1}},
    }
    version = save(user, [nap], prefix="limited", max_concurrent_runs=1)
    first = start_new_run(version, user)
    second = start_new_run(version, user)
    assert Run.objects.get(pk=second.pk).status == "PENDING"
    wait_for_run(first.pk)
    wait_for_run(second.pk)  # admitted by the hook when the first ended
    # A run left waiting although a slot is free (its hook was lost with a process that
    # died between commit and hook): the reconciler's pass starts it.
    from runs.engine.scheduler import create_run
    from runs.store.writes import now

    stranded = create_run(version, user)
    Run.objects.filter(pk=stranded.pk).update(waiting_since=now())
    assert admit_all() == 1
    assert wait_for_run(stranded.pk).status == "COMPLETED"
    assert admit_all() == 0


@pytest.fixture
def limited_worker(worker):
    """A worker on the `lim` queue, with TRELLIS_QUEUE_LIMITS=lim=2 and room for 4 nodes."""
    from tests.conftest import WorkerProcess

    env = dict(worker.env, TRELLIS_QUEUE_LIMITS="lim=2", TRELLIS_QUEUE_RETRY_SECONDS="0.2")
    process = WorkerProcess(env, concurrency=4, queues="lim", name="lim")
    process.start()
    yield process
    process.stop()


def test_a_queue_limit_caps_running_nodes_across_workers(
    limited_worker, user, user_client, settings
):
    settings.TRELLIS_QUEUE_LIMITS = {"lim": 2}  # what the web process shows
    nodes = [
        {
            "id": f"n{i}",
            "handler": "python",
            "config": {"function": "sleep", "kwargs": {"seconds": 0.6}},
        }
        for i in range(6)
    ]
    run = run_spec(user, nodes, prefix="lim", defaults={"queue": "lim"})
    most, seen_usage = 0, None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        running = NodeRun.objects.filter(run=run, state="RUNNING").count()
        if running > most:
            most = running
            seen_usage = user_client.get("/api/v1/workers/").json()["queue_limits"]
        if Run.objects.get(pk=run.pk).status == "COMPLETED":
            break
        time.sleep(0.02)
    run = wait_for_run(run.pk)
    assert run.status == "COMPLETED", run.error
    assert most == 2, f"{most} nodes of the limited queue ran at once (4 worker slots, limit 2)"
    assert seen_usage == [
        {"queue": "lim", "limit": 2, "running": 2, "queued": seen_usage[0]["queued"]}
    ]
    nodes = NodeRun.objects.filter(run=run)
    assert all(node.attempt == 1 for node in nodes)  # a deferral is not an attempt
    page = user_client.get("/dashboard/workers/").content.decode()
    assert 'id="queue-limits"' in page and 'data-queue="lim"' in page
