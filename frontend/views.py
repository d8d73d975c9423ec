"""Server-rendered dashboard pages. Ownership comes from the engine's service layer: a user sees
their own runs and workflows, staff see everything."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from runs.models import RunState
from runs.services import visible_runs, visible_workflows

RUN_LIST_LIMIT = 100
RUN_EVENT_LIMIT = 100
WORKFLOW_RUN_LIMIT = 20
REFRESH_SECONDS = 2


def duration(start: datetime | None, end: datetime | None) -> str:
    """``0.42 s``, ``12.0 s``, ``3 min 05 s``, ``2 h 01 min``; empty when not started."""
    if start is None or end is None:
        return ""
    seconds = max(0.0, (end - start).total_seconds())
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


@login_required
def run_list(request: HttpRequest) -> HttpResponse:
    """The latest runs visible to the user, optionally filtered by status."""
    runs = visible_runs(request.user).select_related("owner")
    status = request.GET.get("status", "")
    if status in RunState.values:
        runs = runs.filter(status=status)
    else:
        status = ""
    rows = list(runs.order_by("-created_at")[:RUN_LIST_LIMIT])
    for run in rows:
        run.duration = duration(run.started_at, run.finished_at)
    return render(
        request,
        "frontend/runs.html",
        {
            "runs": rows,
            "status": status,
            "statuses": RunState.values,
            "limit": RUN_LIST_LIMIT,
            "refresh": REFRESH_SECONDS if any(r.status == RunState.RUNNING for r in rows) else None,
        },
    )


@login_required
def run_detail(request: HttpRequest, run_id) -> HttpResponse:
    """One run: its nodes with state, attempts, timings and errors; its result and events."""
    run = get_object_or_404(visible_runs(request.user).select_related("owner"), pk=run_id)
    nodes = list(run.nodes.order_by("id"))
    for node in nodes:
        node.duration = duration(node.started_at, node.finished_at)
        error = node.error if isinstance(node.error, dict) else {}
        node.error_message = error.get("message", "") if error else (node.error or "")
        node.error_type = error.get("type", "")
        node.traceback = error.get("traceback", "")
        node.output_json = pretty_json(node.output) if node.output is not None else ""
    events = list(run.events.order_by("-id")[:RUN_EVENT_LIMIT])
    events.reverse()
    return render(
        request,
        "frontend/run_detail.html",
        {
            "run": run,
            "nodes": nodes,
            "events": events,
            "event_limit": RUN_EVENT_LIMIT,
            "duration": duration(run.started_at, run.finished_at),
            "inputs_json": pretty_json(run.inputs),
            "result_json": pretty_json(run.result) if run.result is not None else "",
            # Until the live view arrives: reload while nodes are moving.
            "refresh": REFRESH_SECONDS if run.status == RunState.RUNNING else None,
        },
    )


@login_required
def workflow_list(request: HttpRequest) -> HttpResponse:
    workflows = (
        visible_workflows(request.user)
        .select_related("owner")
        .annotate(run_count=Count("versions__runs"))
        .order_by("name")
    )
    return render(request, "frontend/workflows.html", {"workflows": workflows})


@login_required
def workflow_detail(request: HttpRequest, name: str) -> HttpResponse:
    """A workflow's versions, one version's spec (``?version=N``, default latest), recent runs."""
    workflow = get_object_or_404(visible_workflows(request.user).select_related("owner"), name=name)
    versions = list(
        workflow.versions.select_related("created_by")
        .annotate(run_count=Count("runs"))
        .order_by("-version")
    )
    number = request.GET.get("version")
    if number is None:
        shown = versions[0] if versions else None
    else:
        shown = next((v for v in versions if str(v.version) == number), None)
        if shown is None:
            raise Http404(f"{name} has no version {number}")
    runs = list(
        visible_runs(request.user)
        .filter(workflow_version__workflow=workflow)
        .select_related("owner")
        .order_by("-created_at")[:WORKFLOW_RUN_LIMIT]
    )
    for run in runs:
        run.duration = duration(run.started_at, run.finished_at)
    spec = shown.spec if shown else {}
    nodes = spec.get("dag", {}).get("nodes", []) if isinstance(spec, dict) else []
    return render(
        request,
        "frontend/workflow_detail.html",
        {
            "workflow": workflow,
            "versions": versions,
            "shown": shown,
            "nodes": nodes,
            "spec_json": pretty_json(spec),
            "inputs_json": pretty_json(spec.get("inputs")) if spec.get("inputs") else "",
            "runs": runs,
        },
    )
