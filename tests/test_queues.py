"""Queue routing: a node in a queue that no live worker serves says so instead of waiting
silently; nodes run only on workers that consume their queue."""

from __future__ import annotations

import uuid

import pytest

from runs.services import control
from tests.conftest import wait_for_run, wait_node
from tests.specs import run_spec

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_node_in_an_unserved_queue_is_flagged_in_the_api_and_dashboard(worker, user, user_client):
    queue = f"nobody-{uuid.uuid4().hex[:6]}"
    run = run_spec(
        user,
        [
            {
                "id": "here",
                "handler": "python",
                "config": {"function": "add", "kwargs": {"a": 1, "b": 1}},
            },
            {
                "id": "there",
                "handler": "python",
                "queue": queue,
                "dependencies": ["here"],
                "config": {"function": "add", "kwargs": {"a": 1, "b": 2}},
            },
        ],
        prefix="q",
    )
    wait_node(run.pk, "here", {"COMPLETED"})
    wait_node(run.pk, "there", {"QUEUED"})

    body = user_client.get(f"/api/v1/runs/{run.pk}/").json()
    nodes = {node["id"]: node for node in body["nodes"]}
    assert nodes["here"]["warning"] is None
    assert f"queue '{queue}', which no live worker serves" in nodes["there"]["warning"]
    assert body["warnings"] == [f"node there {nodes['there']['warning']}"]
    page = user_client.get(f"/dashboard/runs/{run.pk}/").content.decode()
    assert 'data-queue-warning="there"' in page and f"-Q {queue}" in page

    # The served queue carries no warning; cancelling settles the waiting node.
    control.cancel(run.pk, user)
    run = wait_for_run(run.pk)
    assert run.status == "CANCELLED"
    body = user_client.get(f"/api/v1/runs/{run.pk}/").json()
    assert body["warnings"] == []
