"""Queue routing: a node in a queue that no live worker serves says so instead of waiting
silently; nodes run only on workers that consume their queue."""

from __future__ import annotations

import time
import uuid

import pytest
from django.test import Client

from runs.models import NodeRun
from runs.services import control
from runs.services.runs import start_new_run
from runs.services.workflows import save_workflow
from tests.conftest import wait_for_run

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _wait_state(run, node_id, state, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        node = NodeRun.objects.get(run=run, node_id=node_id)
        if node.state == state:
            return node
        time.sleep(0.05)
    raise AssertionError(f"{node_id} is {node.state}, not {state}")


def test_a_node_in_an_unserved_queue_is_flagged_in_the_api_and_dashboard(worker, user):
    queue = f"nobody-{uuid.uuid4().hex[:6]}"
    version, _ = save_workflow(
        {
            "name": f"q-{uuid.uuid4().hex[:6]}",
            "dag": {
                "nodes": [
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
                ]
            },
        },
        user,
    )
    run = start_new_run(version, user)
    _wait_state(run, "here", "COMPLETED")
    _wait_state(run, "there", "QUEUED")

    client = Client()
    client.force_login(user)
    body = client.get(f"/api/v1/runs/{run.pk}/").json()
    nodes = {node["id"]: node for node in body["nodes"]}
    assert nodes["here"]["warning"] is None
    assert f"queue '{queue}', which no live worker serves" in nodes["there"]["warning"]
    assert body["warnings"] == [f"node there {nodes['there']['warning']}"]
    page = client.get(f"/dashboard/runs/{run.pk}/").content.decode()
    assert 'data-queue-warning="there"' in page and f"-Q {queue}" in page

    # The served queue carries no warning; cancelling settles the waiting node.
    control.cancel(run.pk, user)
    run = wait_for_run(run.pk)
    assert run.status == "CANCELLED"
    body = client.get(f"/api/v1/runs/{run.pk}/").json()
    assert body["warnings"] == []
