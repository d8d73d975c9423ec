"""A run and a workflow over time: the run timeline (Gantt), the workflow grid (recent runs ×
nodes) and a map node's items. Read-only; each answer costs a fixed number of queries however
many runs, nodes or items there are.

- :func:`run_timeline`: every node of a run with its timings and the timings of its finished
  attempts, in the workflow's layer order, with the id of the last event read (the page
  applies streamed events after it).
- :func:`workflow_grid`: a workflow's latest runs (newest first) and, per node, its state in
  each of them.
- :func:`map_items`: the items of a map node's attempt as recorded by their ``node.event``
  (``map_item`` in the data; see ``runs.tasks.map_item_event``), counted per state, a page at
  a time.
"""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from django.db.models import Max, QuerySet

from ..engine.definitions import spec_for_version
from ..models import NodeRun, Run, RunEvent, Workflow
from .shapes import node_view, run_view

GRID_RUNS = 25  # columns of the workflow grid
GRID_NODES_PER_PAGE = 100  # rows of the workflow grid per page
MAP_ITEMS_PER_PAGE = 50

# What an attempt of the timeline keeps from a node's attempt history.
_ATTEMPT_KEYS = ("attempt", "state", "started_at", "finished_at")


def _layer_order(version_id: int) -> dict[str, int]:
    """Node id -> its position in the spec's layers (first layer first)."""
    spec = spec_for_version(version_id)
    ids = [node_id for layer in spec.layers for node_id in layer]
    return {node_id: position for position, node_id in enumerate(ids)}


def _page_of(items: list, page: int, per_page: int):
    """Page ``page`` of ``items``, clamped to the pages there are (at least one)."""
    return Paginator(items, per_page).get_page(max(1, page))


def run_timeline(run: Run) -> dict[str, Any]:
    """The run (its list row) and its nodes for the timeline, with ``after``: the last event
    id read before the nodes (events after it are the page's to apply). Each node is
    ``node_view(full=False)`` plus ``attempts``: its finished attempts' number, state and
    times. Two queries (the spec is cached per process)."""
    after = RunEvent.objects.filter(run=run).aggregate(last=Max("id"))["last"] or 0
    order = _layer_order(run.workflow_version_id)
    nodes = sorted(run.nodes.all(), key=lambda n: (order.get(n.node_id, len(order)), n.pk))
    rows = []
    for node in nodes:
        row = node_view(node, full=False)
        row["attempts"] = [
            {key: attempt.get(key) for key in _ATTEMPT_KEYS}
            for attempt in node.attempts or []
            if isinstance(attempt, dict)
        ]
        rows.append(row)
    return {"run": run_view(run, row=True), "after": after, "nodes": rows}


def workflow_grid(
    runs: QuerySet[Run], workflow: Workflow, *, page: int = 1, limit: int = GRID_RUNS
) -> dict[str, Any]:
    """The grid of ``workflow``'s latest ``limit`` runs among ``runs`` (the caller's visible
    runs), newest first, by node: ``runs`` (list rows), ``rows`` (``{"node", "cells"}``, one
    cell per run: ``{"run", "state"}``, state None when that run has no such node), the node
    rows of page ``page`` (``GRID_NODES_PER_PAGE`` each; ``page`` and ``pages`` say where).

    Rows follow the latest version's layers; nodes only older runs had come after, by id.
    Three queries: the runs, the latest version's spec (cached per process after the first),
    and the node states of the runs."""
    columns = list(
        runs.filter(workflow_version__workflow=workflow)
        .select_related("owner", "workflow_version__workflow")
        .order_by("-created_at")[:limit]
    )
    states: dict[tuple[str, Any], str] = {}
    for run_id, node_id, state in NodeRun.objects.filter(
        run_id__in=[run.pk for run in columns]
    ).values_list("run_id", "node_id", "state"):
        states[(node_id, run_id)] = state
    latest = workflow.versions.filter(version=workflow.latest_version).values_list("pk", flat=True)
    order = _layer_order(latest[0]) if latest else {}
    node_ids = sorted(
        set(order) | {node_id for node_id, _ in states},
        key=lambda node_id: (order.get(node_id, len(order)), node_id),
    )
    shown = _page_of(node_ids, page, GRID_NODES_PER_PAGE)
    return {
        "runs": [run_view(run, row=True) for run in columns],
        "rows": [
            {
                "node": node_id,
                "cells": [
                    {"run": str(run.pk), "state": states.get((node_id, run.pk))} for run in columns
                ],
            }
            for node_id in shown
        ],
        "nodes": len(node_ids),
        "page": shown.number,
        "pages": shown.paginator.num_pages,
    }


def map_items(
    node: NodeRun, *, page: int = 1, state: str = "", per_page: int = MAP_ITEMS_PER_PAGE
) -> dict[str, Any]:
    """The items of ``node``'s current attempt, from their ``node.event``s: ``counts`` per
    state, ``total``, and page ``page`` of ``items`` (index order, only ``state`` ones when
    given), each the event's data with its event id. An item reported twice (a redelivered
    task after a worker crash) counts once: its last report wins. Two queries."""
    events = RunEvent.objects.filter(
        run_id=node.run_id, node_id=node.node_id, kind="node.event", data__has_key="map_item"
    ).filter(data__attempt=node.attempt)
    latest: dict[int, tuple[int, str]] = {}
    for event_id, index, item_state in events.order_by("id").values_list(
        "id", "data__map_item", "data__state"
    ):
        if isinstance(index, int):
            latest[index] = (event_id, str(item_state))
    counts: dict[str, int] = {}
    for _, item_state in latest.values():
        counts[item_state] = counts.get(item_state, 0) + 1
    chosen = sorted(
        (index, event_id)
        for index, (event_id, item_state) in latest.items()
        if not state or item_state == state
    )
    shown = _page_of(chosen, page, per_page)
    ids = [event_id for _, event_id in shown]
    data = dict(RunEvent.objects.filter(id__in=ids).values_list("id", "data")) if ids else {}
    return {
        "attempt": node.attempt,
        "counts": counts,
        "total": len(latest),
        "state": state,
        "page": shown.number,
        "pages": shown.paginator.num_pages,
        "items": [{"event": event_id, **data[event_id]} for event_id in ids if event_id in data],
    }
