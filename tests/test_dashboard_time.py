"""The dashboard's views of time (Django test client, no worker): the workflow grid's data and
its bounded queries, the run timeline's JSON and a map node's item table in the node panel."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from runs.engine.scheduler import create_run
from runs.models import NodeRun, RunEvent
from runs.services.history import GRID_NODES_PER_PAGE, run_timeline, workflow_grid
from runs.services.runs import visible_runs
from tests.specs import py, save

pytestmark = pytest.mark.django_db

CHAIN = [
    py("fetch", "add", kwargs={"a": 1, "b": 1}),
    py("square", "add", ["fetch"], kwargs={"a": "{{ item }}", "b": 1}, map="{{ [1, 2, 3] }}"),
    py("report", "add", ["square"], kwargs={"a": 1, "b": 1}),
]


def set_states(run, **states):
    for node_id, state in states.items():
        NodeRun.objects.filter(run=run, node_id=node_id).update(state=state)


def grid_of(user, version, **kwargs):
    return workflow_grid(visible_runs(user), version.workflow, **kwargs)


def test_grid_has_the_latest_runs_newest_first_by_node_with_each_state(user, other_user):
    version = save(user, CHAIN, prefix="grid")
    old, new = create_run(version, user), create_run(version, user)
    set_states(old, fetch="COMPLETED", square="FAILED", report="UPSTREAM_FAILED")
    set_states(new, fetch="COMPLETED", square="RUNNING")
    grid = grid_of(user, version)
    assert [run["id"] for run in grid["runs"]] == [str(new.pk), str(old.pk)]
    assert [row["node"] for row in grid["rows"]] == ["fetch", "square", "report"]  # layers
    cells = {row["node"]: [c["state"] for c in row["cells"]] for row in grid["rows"]}
    assert cells == {
        "fetch": ["COMPLETED", "COMPLETED"],
        "square": ["RUNNING", "FAILED"],
        "report": ["PENDING", "UPSTREAM_FAILED"],
    }
    assert all(c["run"] == str(new.pk) for c in (row["cells"][0] for row in grid["rows"]))
    # Another user's grid of the same workflow shows none of these runs.
    assert grid_of(other_user, version)["runs"] == []


def test_grid_keeps_25_runs_and_its_query_count_does_not_grow_with_runs(user):
    version = save(user, CHAIN, prefix="grid")
    create_run(version, user)
    grid_of(user, version)  # the spec is now cached, as in a serving process
    with CaptureQueriesContext(connection) as few:
        grid_of(user, version)
    for _ in range(29):
        create_run(version, user)
    with CaptureQueriesContext(connection) as many:
        grid = grid_of(user, version)
    assert len(grid["runs"]) == 25 and all(len(row["cells"]) == 25 for row in grid["rows"])
    assert len(many) == len(few) <= 3, [q["sql"] for q in many]


def test_grid_rows_of_a_big_workflow_come_a_page_at_a_time(user):
    nodes = [py(f"n{i:03}", "add", kwargs={"a": 1, "b": 1}) for i in range(130)]
    version = save(user, nodes, prefix="grid")
    create_run(version, user)
    first = grid_of(user, version)
    second = grid_of(user, version, page=2)
    assert first["nodes"] == 130 and first["pages"] == 2
    assert len(first["rows"]) == GRID_NODES_PER_PAGE and len(second["rows"]) == 30
    assert grid_of(user, version, page=99)["page"] == 2  # past the end: the last page


def test_workflow_page_draws_coloured_cells_linking_to_each_runs_node(user_client, user):
    version = save(user, CHAIN, prefix="grid")
    run = create_run(version, user)
    set_states(run, fetch="COMPLETED", square="FAILED")
    page = user_client.get(reverse("frontend:workflow", args=[version.workflow.name]))
    html = page.content.decode()
    run_url = reverse("frontend:run", args=[run.pk])
    assert f'class="tg-cell" data-state="FAILED" href="{run_url}#node=square"' in html
    assert f'class="tg-cell" data-state="COMPLETED" href="{run_url}#node=fetch"' in html
    assert f'class="tg-run state-pending" href="{run_url}"' in html
    assert 'id="workflow-grid"' in html


def test_timeline_json_has_every_node_in_layer_order_with_its_attempts(user_client, user):
    version = save(user, CHAIN, prefix="tl")
    run = create_run(version, user)
    NodeRun.objects.filter(run=run, node_id="fetch").update(
        state="COMPLETED",
        attempt=2,
        attempts=[
            {"attempt": 1, "state": "FAILED", "started_at": "2026-01-01T00:00:00+00:00",
             "finished_at": "2026-01-01T00:00:01+00:00", "error": "x", "worker": "w"},
            {"attempt": 2, "state": "COMPLETED", "started_at": "2026-01-01T00:00:02+00:00",
             "finished_at": "2026-01-01T00:00:03+00:00", "worker": "w"},
        ],
    )  # fmt: skip
    response = user_client.get(reverse("frontend:run-timeline", args=[run.pk]))
    assert response.status_code == 200
    data = response.json()
    assert data["after"] == run.events.last().id
    assert data["run"]["id"] == str(run.pk)
    assert [node["id"] for node in data["nodes"]] == ["fetch", "square", "report"]
    fetch = data["nodes"][0]
    assert [(a["attempt"], a["state"]) for a in fetch["attempts"]] == [
        (1, "FAILED"),
        (2, "COMPLETED"),
    ]
    assert set(fetch["attempts"][0]) == {"attempt", "state", "started_at", "finished_at"}
    assert "output" not in fetch and "queued_at" in fetch
    assert data == run_timeline(run)


def test_timeline_of_another_users_run_is_404(client, other_user, user):
    run = create_run(save(user, CHAIN, prefix="tl"), user)
    client.force_login(other_user)
    assert client.get(reverse("frontend:run-timeline", args=[run.pk])).status_code == 404


def add_items(run, states):
    for index, state in enumerate(states):
        data = {"map_item": index, "state": state, "attempt": 1, "duration": 0.25,
                "started_at": "2026-01-01T00:00:00+00:00",
                "finished_at": "2026-01-01T00:00:00.250000+00:00"}  # fmt: skip
        if state == "FAILED":
            data["error"] = f"item {index}: bad value"
        RunEvent.objects.create(run=run, node_id="square", kind="node.event", data=data)


def test_map_node_panel_shows_item_counts_states_durations_and_errors(user_client, user):
    run = create_run(save(user, CHAIN, prefix="items"), user)
    NodeRun.objects.filter(run=run, node_id="square").update(state="FAILED", attempt=1)
    add_items(run, ["COMPLETED", "FAILED", "COMPLETED"])
    RunEvent.objects.create(run=run, node_id="square", kind="node.event", data={"note": "mine"})
    page = user_client.get(reverse("frontend:node", args=[run.pk, "square"]))
    html = page.content.decode()
    listing = page.context["map_items"]
    assert listing["counts"] == {"COMPLETED": 2, "FAILED": 1}
    assert [item["map_item"] for item in listing["items"]] == [0, 1, 2]
    assert 'data-item="1" data-state="FAILED"' in html and "item 1: bad value" in html
    assert "0.25 s" in html
    assert 'data-testid="items-failed"' in html and "failed <b>1</b>" in html
    # Item events live in the items table, not among the node's other events.
    assert [e.data for e in page.context["custom_events"]] == [{"note": "mine"}]
    # A node that is not a map has no items table.
    fetch = user_client.get(reverse("frontend:node", args=[run.pk, "fetch"]))
    assert fetch.context["map_items"] is None and b'data-role="map-items"' not in fetch.content


def test_items_fragment_pages_and_filters_by_state(user_client, user):
    run = create_run(save(user, CHAIN, prefix="items"), user)
    NodeRun.objects.filter(run=run, node_id="square").update(state="FAILED", attempt=1)
    add_items(run, ["COMPLETED"] * 60 + ["FAILED"] * 3)
    url = reverse("frontend:node-items", args=[run.pk, "square"])
    second = user_client.get(url, {"page": 2})
    assert second.status_code == 200
    assert second.context["listing"]["page"] == 2
    assert [i["map_item"] for i in second.context["listing"]["items"]] == list(range(50, 63))
    failed = user_client.get(url, {"state": "FAILED"}).context["listing"]
    assert [i["map_item"] for i in failed["items"]] == [60, 61, 62]
    # Bad paging or filtering input falls back to the first page of every item.
    odd = user_client.get(url, {"page": "-3", "state": "NOPE"}).context["listing"]
    assert odd["page"] == 1 and odd["state"] == "" and odd["total"] == 63
    assert user_client.get(reverse("frontend:node-items", args=[run.pk, "nope"])).status_code == 404
