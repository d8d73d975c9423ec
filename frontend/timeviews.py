"""The dashboard's views of time: the run timeline's data (JSON for timeline.js), a map node's
items (an HTML fragment of the node panel, paged) and the workflow grid's context. The data
comes from ``runs.services.history``; these only check who may see it and pick the page."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from runs.models import NodeRun, Workflow
from runs.rules.states import NodeState
from runs.services.history import map_items, run_timeline, workflow_grid
from runs.services.runs import visible_runs

ITEM_STATES = (str(NodeState.COMPLETED), str(NodeState.FAILED))


def _page(request: HttpRequest, name: str = "page") -> int:
    """A page number from the query string; anything that is not a positive integer is 1."""
    value = request.GET.get(name, "1")
    return int(value) if value.isdigit() and int(value) > 0 else 1


@login_required
@require_GET
def timeline(request: HttpRequest, run_id) -> JsonResponse:
    """The run's nodes with their timings and attempts, and the event id they are as of."""
    run = get_object_or_404(visible_runs(request.user).select_related("owner"), pk=run_id)
    return JsonResponse(run_timeline(run))


def items_context(node: NodeRun, page: int = 1, state: str = "") -> dict[str, Any]:
    """What ``_map_items.html`` needs: the page of items with their durations and counts."""
    listing = map_items(node, page=page, state=state if state in ITEM_STATES else "")
    listing["count_list"] = [(str(name), listing["counts"].get(name, 0)) for name in ITEM_STATES]
    return listing


@login_required
@require_GET
def node_items(request: HttpRequest, run_id, node_id: str) -> HttpResponse:
    """One page of a map node's items (``?page=``, ``?state=COMPLETED|FAILED``)."""
    run = get_object_or_404(visible_runs(request.user), pk=run_id)
    node = get_object_or_404(NodeRun, run=run, node_id=node_id)
    listing = items_context(node, _page(request), request.GET.get("state", ""))
    return render(
        request, "frontend/_map_items.html", {"run": run, "node": node, "listing": listing}
    )


def grid_context(request: HttpRequest, workflow: Workflow) -> dict[str, Any]:
    """The workflow grid of the workflow page (``?grid_page=`` pages its node rows)."""
    return workflow_grid(visible_runs(request.user), workflow, page=_page(request, "grid_page"))
