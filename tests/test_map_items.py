"""A map node's items have their own state, duration and error: each item's outcome is a
``node.event`` (``map_item`` in its data), recorded only while its attempt holds the node,
read back through the service (``map_items``), the API's event history and the node panel."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from handlers.registry import python_function
from runs.models import NodeRun, Run, RunEvent
from runs.services.history import map_items
from runs.store.writes import record_for_attempt
from runs.tasks import run_map_item
from tests.conftest import nodes_of, wait_for_run
from tests.specs import py, run_spec, save

pytestmark = [pytest.mark.django_db(transaction=True)]


def item_events(run, node_id):
    return [
        event.data
        for event in RunEvent.objects.filter(run=run, node_id=node_id, kind="node.event").order_by(
            "id"
        )
        if "map_item" in event.data
    ]


def one_bad_item_map():
    # "x" is not a number: the python function's schema refuses that item alone.
    return [
        py("square", "add", kwargs={"a": "{{ item }}", "b": 1}, map="{{ [1, 'x', 3, 4] }}"),
    ]


@pytest.mark.integration
def test_a_map_with_one_failing_item_records_each_items_state_duration_and_error(worker, user, api):
    run = wait_for_run(run_spec(user, one_bad_item_map()).pk)
    assert run.status == "FAILED"
    node = nodes_of(run)["square"]
    assert node.state == "FAILED" and "item 1" in node.error["message"]

    events = sorted(item_events(run, "square"), key=lambda data: data["map_item"])
    assert [(e["map_item"], e["state"]) for e in events] == [
        (0, "COMPLETED"),
        (1, "FAILED"),
        (2, "COMPLETED"),
        (3, "COMPLETED"),
    ]
    for event in events:
        assert event["attempt"] == 1
        started = datetime.fromisoformat(event["started_at"])
        finished = datetime.fromisoformat(event["finished_at"])
        assert finished >= started
        assert event["duration"] == pytest.approx((finished - started).total_seconds(), abs=0.002)
    failed = events[1]
    assert failed["error"].startswith("item 1: ") and failed["error"] == node.error["message"]
    assert failed["error_type"]
    assert "error" not in events[0]

    listing = map_items(node)
    assert listing["counts"] == {"COMPLETED": 3, "FAILED": 1} and listing["total"] == 4
    assert [item["map_item"] for item in listing["items"]] == [0, 1, 2, 3]
    only_failed = map_items(node, state="FAILED")
    assert [item["map_item"] for item in only_failed["items"]] == [1]
    assert only_failed["items"][0]["error"] == failed["error"]

    # The API's event history carries them, and filters a node's item events.
    response = api.get(f"/api/v1/runs/{run.pk}/events/?node=square&kind=node.event")
    assert response.status_code == 200
    streamed = [e["data"] for e in response.json()["results"]]
    assert sorted(e["map_item"] for e in streamed) == [0, 1, 2, 3]
    assert all(e["node"] == "square" for e in response.json()["results"])


@pytest.mark.integration
def test_a_retried_map_shows_the_items_of_its_latest_attempt(worker, user):
    key = uuid.uuid4().hex[:8]
    nodes = [
        py(
            "square",
            "flaky",  # each item fails its first call (retryably), then succeeds
            kwargs={"key": f"{key}-{{{{ index }}}}", "failures": 1},
            map="{{ [1, 2] }}",
            retries=1,
            backoff=0.1,
        )
    ]
    run = wait_for_run(run_spec(user, nodes).pk)
    assert run.status == "COMPLETED", run.error
    node = nodes_of(run)["square"]
    assert node.attempt == 2
    first = [e for e in item_events(run, "square") if e["attempt"] == 1]
    assert {e["state"] for e in first} == {"FAILED"} and len(first) == 2
    listing = map_items(node)
    assert listing["attempt"] == 2 and listing["counts"] == {"COMPLETED": 2}
    assert all(item["attempt"] == 2 for item in listing["items"])


# Runs in this process (the test calls the item task directly): the reconciler re-queues the
# node, with a new dispatch token, while the item's handler runs.
@python_function()
def superseded_meanwhile(ctx, node_pk: int) -> int:
    NodeRun.objects.filter(pk=node_pk).update(dispatch_token="requeued")
    return 1


@python_function()
def quick(ctx, value: int) -> int:
    return value


def running_map_node(user, function: str, **kwargs) -> NodeRun:
    version = save(user, [py("square", function, kwargs=kwargs, map="{{ [1] }}")])
    run = Run.objects.create(workflow_version=version, owner=user, status="RUNNING")
    return NodeRun.objects.create(
        run=run, node_id="square", handler="python", state="RUNNING", dispatch_token="t1",
        attempt=1,
    )  # fmt: skip


def test_an_item_superseded_while_it_ran_records_nothing(user):
    node = running_map_node(user, "superseded_meanwhile", node_pk=0)
    # the function's node_pk must name this node: set it in the run's overrides
    Run.objects.filter(pk=node.run_id).update(
        overrides={"square": {"kwargs": {"node_pk": node.pk}}}
    )
    result = run_map_item(node.pk, "t1", 0, 1)
    assert result == {"ok": 1}  # the item ran to its end ...
    assert item_events(node.run, "square") == []  # ... but its attempt no longer held the node

    fresh = running_map_node(user, "quick", value=3)
    assert run_map_item(fresh.pk, "t1", 0, 1) == {"ok": 3}
    [event] = item_events(fresh.run, "square")
    assert event["map_item"] == 0 and event["state"] == "COMPLETED" and event["attempt"] == 1


def test_a_stale_item_records_nothing(user):
    version = save(user, [py("square", "add", kwargs={"a": 1, "b": 1}, map="{{ [1] }}")])
    run = Run.objects.create(workflow_version=version, owner=user, status="RUNNING")
    node = NodeRun.objects.create(
        run=run, node_id="square", handler="python", state="RUNNING", dispatch_token="new"
    )
    data = {"map_item": 0, "state": "COMPLETED", "attempt": 1}
    assert record_for_attempt(node, "old", "node.event", data) is False  # superseded token
    NodeRun.objects.filter(pk=node.pk).update(state="CANCELLED")
    assert record_for_attempt(node, "new", "node.event", data) is False  # no longer running
    assert not RunEvent.objects.filter(run=run, kind="node.event").exists()
    NodeRun.objects.filter(pk=node.pk).update(state="RUNNING")
    assert record_for_attempt(node, "new", "node.event", data) is True
    assert RunEvent.objects.filter(run=run, kind="node.event").count() == 1


def test_items_page_counts_a_redelivered_item_once_in_two_queries(user):
    version = save(user, [py("square", "add", kwargs={"a": 1, "b": 1}, map="{{ [1] }}")])
    run = Run.objects.create(workflow_version=version, owner=user, status="RUNNING")
    node = NodeRun.objects.create(
        run=run, node_id="square", handler="python", state="RUNNING", attempt=2
    )

    def item(index, state, attempt=2):
        RunEvent.objects.create(
            run=run,
            node_id="square",
            kind="node.event",
            data={"map_item": index, "state": state, "attempt": attempt, "duration": 0.1},
        )

    item(0, "FAILED", attempt=1)  # an earlier attempt: not shown
    for index in range(120):
        item(index, "FAILED" if index % 40 == 7 else "COMPLETED")
    item(7, "COMPLETED")  # item 7 delivered again after a crash: its last report wins
    RunEvent.objects.create(run=run, node_id="square", kind="node.event", data={"other": 1})

    with CaptureQueriesContext(connection) as queries:
        listing = map_items(node, page=3)
    assert len(queries) == 2
    assert listing["counts"] == {"COMPLETED": 118, "FAILED": 2} and listing["total"] == 120
    assert listing["pages"] == 3 and listing["page"] == 3
    assert [item["map_item"] for item in listing["items"]] == list(range(100, 120))
    assert [i["map_item"] for i in map_items(node, state="FAILED")["items"]] == [47, 87]
