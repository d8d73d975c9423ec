"""The dashboard: server-rendered pages that scripts keep live over WebSockets.

Ownership comes from the engine's service layer (``visible_runs`` and friends): a user sees
their own runs, workflows and sessions, staff see everything. Every change goes through the
same services as the API (``runs.control``, ``start_new_run``, ``deliver_event``), in POST
views protected by CSRF. Those views answer JSON to the page's scripts (``Accept:
application/json``) and redirect with a message otherwise, so the forms work without
JavaScript too.

Runs, nodes, events, workers and sessions reach the templates and the page scripts in the
API's shapes (``runs.services.shapes``), whose datetimes are ISO 8601 strings: templates write
them with the ``trellis`` filters (``isodate`` writes what Django's ``date`` wrote). The run
page's header and the node panel show relations the shapes do not carry (the session's name,
the parent run, the parsed error) and keep reading the model objects.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Max
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from runs.engine.admission import active_runs, waiting_runs
from runs.engine.definitions import spec_for_version
from runs.models import NodeRun, Run, RunEvent, WorkflowVersion
from runs.rules.limits import PayloadTooLarge
from runs.rules.spec import SpecError
from runs.rules.states import (
    RUN_CONTROLS,
    RUN_FINISHED,
    InvalidTransition,
    NodeState,
    legal_controls,
    legal_node_actions,
)
from runs.services import control
from runs.services.runs import (
    deliver_event,
    reject_event,
    rendered_config,
    start_new_run,
    validated_inputs,
    visible_runs,
    visible_sessions,
    visible_workflows,
    waiting_note,
    with_needs_input,
)
from runs.services.shapes import (
    event_payload,
    node_view,
    run_view,
    session_view,
    with_run_counts,
    worker_views,
)
from runs.services.workers import queue_usage, queue_warnings
from runs.web import json_error

from .dag import layout_for_spec
from .formatting import duration, pretty_json
from .markdown import render_markdown
from .schema_form import JSON_FIELD, fields_for, parse_form, place_errors
from .timeviews import grid_context, items_context

RUN_EVENT_LIMIT = 300  # events rendered with the run page; the script keeps appending
RUN_LOG_ROWS = 500  # rows the run page's live event log keeps (the newest; a note counts the rest)
NODE_LINKS = 50  # node links a panel list (Needs, Feeds) shows at first; "more" adds as many
NODE_LINKS_MAX = 10_000  # the most a panel list shows on request (the spec's node limit)
WORKFLOW_RUN_LIMIT = 20
NODE_LOG_LIMIT = 200

# Which run statuses each control accepts: the run-level edges of ``runs.transitions``
# (pause RUNNING→PAUSED, resume PAUSED→RUNNING, cancel →CANCELLED, retry FAILED/CANCELLED→
# RUNNING). Buttons are shown only when their action is legal now.
ACTION_VERBS = {"pause": "paused", "resume": "resumed", "cancel": "cancelled", "retry": "retried"}

# The order states are counted in the run page's summary bar.
STATE_ORDER = [
    NodeState.COMPLETED,
    NodeState.RUNNING,
    NodeState.WAITING,
    NodeState.RETRYING,
    NodeState.QUEUED,
    NodeState.READY,
    NodeState.PENDING,
    NodeState.FAILED,
    NodeState.UPSTREAM_FAILED,
    NodeState.SKIPPED,
    NodeState.CANCELLED,
]


# Stands for the hole of a URL template while it is reversed: it passes the ``uuid`` and ``str``
# converters alike, and no real id is ever this one.
URL_HOLE = str(uuid.UUID(int=0))


def url_template(viewname: str, *args: Any, hole: str) -> str:
    """The URL of ``viewname`` with ``{hole}`` as its last argument, which the page's script
    fills in (``fillUrl`` in common.js): the dashboard works wherever the host mounts it.
    ``reverse`` would quote the braces, so the route is reversed with a stand-in."""
    return reverse(viewname, args=[*args, URL_HOLE]).replace(URL_HOLE, f"{{{hole}}}")


def socket_url(route: str = "") -> str:
    """A WebSocket route of ``runs.routing``: they are mounted under the prefix of
    ``runs.urls``, plus ``ws/`` (``/ws/runs/`` standalone, ``/trellis/ws/runs/`` in a host
    that includes ``runs.urls`` at ``trellis/``)."""
    prefix = reverse("runs:runs").removesuffix("api/v1/runs/")
    return f"{prefix}ws/{route}"


def wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def last_event_id() -> int:
    return RunEvent.objects.aggregate(last=Max("id"))["last"] or 0


# --------------------------------------------------------------------------------------
# Runs


def _node_error(node: NodeRun) -> dict[str, str]:
    error = node.error if isinstance(node.error, dict) else {}
    message = str(error.get("message", "") if error else (node.error or ""))
    kind = str(error.get("type", ""))
    if kind and message.startswith(kind):
        kind = ""  # "RuntimeError: boom" already names its type
    return {"message": message, "type": kind, "traceback": str(error.get("traceback", ""))}


def _waiting_forms(
    run: Run, spec, nodes: dict[str, NodeRun], only: str | None = None
) -> list[dict]:
    """A form for every `wait_for_event` node (shown while it is WAITING), or for the node
    ``only``. The prompt (Markdown) is the rendered one the node posted as markdown when it
    started waiting, else the spec's."""
    waiting_ids = [
        nid
        for nid, node in spec.nodes.items()
        if node.handler == "wait_for_event" and only in (None, nid)
    ]
    prompts = (
        dict(
            run.events.filter(kind="node.markdown", node_id__in=waiting_ids)
            .order_by("id")
            .values_list("node_id", "data__text")
        )
        if waiting_ids
        else {}
    )
    forms = []
    for node_id in waiting_ids:
        node_spec = spec.nodes[node_id]
        config = node_spec.config if isinstance(node_spec.config, dict) else {}
        schema = config.get("schema")
        node = nodes.get(node_id)
        forms.append(
            {
                "node": node_id,
                "prompt": prompts.get(node_id) or config.get("prompt", ""),
                "waiting": node is not None and node.state == NodeState.WAITING,
                "due_at": node.due_at if node else None,
                "fields": fields_for(schema if isinstance(schema, dict) else None),
            }
        )
    return forms


@login_required
@require_GET
def run_detail(request: HttpRequest, run_id) -> HttpResponse:
    """One run: the live DAG, node panel, controls, WAITING forms, event log and result."""
    run = get_object_or_404(
        visible_runs(request.user).select_related("owner", "session", "parent_node"), pk=run_id
    )
    # The event id first, then the state: whatever changes in between is replayed by the
    # socket (``?after=``) and applying an event twice is harmless; the other order loses it.
    events = list(run.events.order_by("-id")[:RUN_EVENT_LIMIT])
    events.reverse()
    cursor = events[-1].id if events else 0
    run.refresh_from_db()
    spec = spec_for_version(run.workflow_version_id)
    nodes = {node.node_id: node for node in run.nodes.all()}
    warnings = queue_warnings(nodes.values())
    picture = layout_for_spec(spec)
    picture.nodes = [
        placed if placed.is_group else replace(placed, state=_state_of(nodes.get(placed.id)))
        for placed in picture.nodes
    ]
    children = list(
        Run.objects.filter(parent_node__run=run).values("id", "status", "parent_node__node_id")
    )
    return render(
        request,
        "frontend/run_detail.html",
        {
            "run": run,
            "spec": spec,
            "picture": picture,
            "events": events,
            "initial_events": [event_payload(event) for event in events],
            "event_limit": RUN_EVENT_LIMIT,
            "actions": legal_controls(run.status),
            "all_actions": list(RUN_CONTROLS),
            "waiting_forms": _waiting_forms(run, spec, nodes),
            "duration": duration(run.started_at, run.finished_at),
            "inputs_json": pretty_json(run.inputs),
            "result_json": pretty_json(run.result) if run.result is not None else "",
            "finished": run.status in RUN_FINISHED,
            "children": children,
            "queue_warnings": warnings,
            "waiting_note": waiting_note(run),
            "state_order": STATE_ORDER,
            # The run and its nodes in the API's shapes (the row subsets: the page shows the
            # inputs, and the node panel loads outputs and errors); each node's last progress
            # beside them, since progress is an event, not a field of the node.
            "page_data": {
                "run": run_view(run, row=True),
                "after": cursor,
                "nodes": node_table(
                    node_view(node, warnings.get(node_id), full=False)
                    for node_id, node in nodes.items()
                ),
                "groups": {group.id: list(group.members) for group in picture.groups},
                "progress": _latest_progress(run),
                "actions": {name: sorted(sources) for name, (sources, _) in RUN_CONTROLS.items()},
                "stateOrder": STATE_ORDER,
                "urls": {
                    "events": reverse("runs:run-events", args=[run.pk]),
                    "socket": socket_url(f"runs/{run.pk}/"),
                    "node": url_template("frontend:node", run.pk, hole="node"),
                },
                "logLimit": RUN_LOG_ROWS,
            },
        },
    )


def node_table(views) -> dict[str, list]:
    """Node views (the API's shape) as one list of keys and a row of values per node: on a
    10,000-node run the page's data is then a third of a dict per node. run.js turns the
    rows back into the same objects."""
    views = list(views)
    fields = list(views[0]) if views else []
    return {"fields": fields, "rows": [[view[key] for key in fields] for view in views]}


def _state_of(node: NodeRun | None) -> str:
    return node.state if node is not None else NodeState.PENDING


def _latest_progress(run: Run) -> dict[str, dict[str, Any]]:
    """Each node's last ``node.progress`` data (one row per node, however many were sent)."""
    progress = run.events.filter(kind="node.progress")
    last_ids = progress.values("node_id").annotate(last=Max("id")).values_list("last", flat=True)
    return dict(progress.filter(id__in=list(last_ids)).values_list("node_id", "data"))


@login_required
@require_GET
def node_panel(request: HttpRequest, run_id, node_id: str) -> HttpResponse:
    """The node panel of the run page (an HTML fragment the page's script loads). Its lists
    of nodes (Needs, Feeds) show the first ``NODE_LINKS``; ``?needs=`` and ``?feeds=`` ask
    for more (up to ``NODE_LINKS_MAX``)."""
    run = get_object_or_404(visible_runs(request.user), pk=run_id)
    limits = {}
    for name in ("needs", "feeds"):
        raw = request.GET.get(name, str(NODE_LINKS))
        if not raw.isdigit() or not 1 <= int(raw) <= NODE_LINKS_MAX:
            return json_error(f"{name} must be a whole number from 1 to {NODE_LINKS_MAX}.", 400)
        limits[name] = int(raw)
    # Read up to a fixed event id: the page appends streamed tokens after it, no more, no less.
    last_event = run.events.aggregate(last=Max("id"))["last"] or 0
    node = get_object_or_404(NodeRun, run=run, node_id=node_id)
    spec = spec_for_version(run.workflow_version_id)
    node_spec = spec.nodes.get(node_id)
    if node_spec is None:
        raise Http404("no such node in the spec")
    config, config_note = rendered_config(run, spec, spec.nodes[node.node_id], node)
    node_events = (
        run.events.filter(node_id=node_id, id__lte=last_event)
        .exclude(kind="node.status")
        .exclude(kind="node.event", data__has_key="map_item")  # the items table shows them
        .order_by("id")
    )
    logs, markdown, custom, tokens, progress, children = [], [], [], [], None, []
    for event in node_events.iterator():
        data = event.data if isinstance(event.data, dict) else {"value": event.data}
        if event.kind == "node.log":
            logs.append(event)
        elif event.kind == "node.markdown":
            markdown.append(str(data.get("text", "")))
        elif event.kind == "node.progress":
            progress = data
        elif event.kind == "node.token":
            tokens.append(str(data.get("delta", "")))
        else:
            custom.append(event)
            if data.get("child_run"):
                children.append(data["child_run"])
    attempts = [
        {**attempt, "duration": duration(attempt.get("started_at"), attempt.get("finished_at"))}
        for attempt in node.attempts or []
    ]
    return render(
        request,
        "frontend/_node_panel.html",
        {
            "run": run,
            "node": node,
            "node_spec": node_spec,
            "error": _node_error(node),
            "duration": duration(node.started_at, node.finished_at),
            "spec_config_json": pretty_json(node_spec.config),
            "config_json": pretty_json(config) if config is not None else "",
            "config_note": config_note,
            "output_json": pretty_json(node.output) if node.output is not None else "",
            "attempts": attempts,
            "logs": logs[-NODE_LOG_LIMIT:],
            "markdown": markdown,
            "custom_events": custom[-50:],
            "tokens": "".join(tokens),
            "progress": progress,
            "progress_percent": round(100 * float(progress.get("fraction", 0))) if progress else 0,
            "children": children,
            "needs": _node_links(node_spec.dependencies, limits["needs"]),
            "feeds": _node_links(spec.children.get(node_id, ()), limits["feeds"]),
            "last_event_id": last_event,
            "node_actions": legal_node_actions(run.status, node.state),
            "map_items": items_context(node) if node_spec.map else None,
            "waiting_form": _waiting_forms(run, spec, {node_id: node}, only=node_id)[0]
            if node.state == NodeState.WAITING and node_spec.handler == "wait_for_event"
            else None,
        },
    )


def _node_links(node_ids, limit: int) -> dict[str, Any]:
    """The first ``limit`` of a list of node ids, how many there are, and the next limit."""
    node_ids = list(node_ids)
    return {
        "shown": node_ids[:limit],
        "total": len(node_ids),
        "hidden": max(0, len(node_ids) - limit),
        "next": min(NODE_LINKS_MAX, limit + NODE_LINKS * 4),
    }


def _status_and_event(run: Run) -> tuple[str, int]:
    """The run's last event id, read before its status: the status is at least that new. The
    page applies an answer's status only when the socket has not already brought a later run
    event (the worker can move the run on before the answer arrives)."""
    event = RunEvent.objects.filter(run=run).aggregate(last=Max("id"))["last"] or 0
    run.refresh_from_db(fields=["status"])
    return run.status, event


def _answer(
    request: HttpRequest, run: Run, ok: bool, message: str, code: int = 200, **extra: Any
) -> HttpResponse:
    """JSON for the page's scripts (HTTP ``code``), else a message and back to the run page."""
    if wants_json(request):
        return JsonResponse({"ok": ok, "message": message, **extra}, status=code)
    (messages.success if ok else messages.error)(request, message)
    return redirect("frontend:run", run_id=run.pk)


@login_required
@require_POST
def run_action(request: HttpRequest, run_id, action: str) -> HttpResponse:
    """Pause, resume, cancel or retry through ``runs.control``; illegal ones are refused."""
    if action not in RUN_CONTROLS:
        raise Http404("no such action")
    run = get_object_or_404(visible_runs(request.user), pk=run_id)
    try:
        run = getattr(control, action)(run.pk, request.user)
    except InvalidTransition as exc:
        status, event = _status_and_event(run)
        return _answer(
            request,
            run,
            False,
            f"Cannot {action} a run that is {exc.current}.",
            409,
            status=status,
            actions=legal_controls(status),
            event=event,
        )
    status, event = _status_and_event(run)
    return _answer(
        request,
        run,
        True,
        f"Run {ACTION_VERBS[action]}.",
        status=status,
        actions=legal_controls(status),
        event=event,
    )


NODE_ACTION_VERBS = {"clear": "cleared", "mark": "marked", "skip": "skipped"}


@login_required
@require_POST
def node_action(request: HttpRequest, run_id, node_id: str, node_action: str) -> HttpResponse:
    """Clear, mark or skip one node through ``runs.control`` (the panel shows the legal ones).
    Form fields: clear ``only_this`` (a checkbox: not its downstream); mark ``state``
    (COMPLETED or FAILED), ``output`` (JSON text, COMPLETED) and ``reason`` (FAILED)."""
    if node_action not in NODE_ACTION_VERBS:
        raise Http404("no such node action")
    run = get_object_or_404(visible_runs(request.user), pk=run_id)
    get_object_or_404(NodeRun, run=run, node_id=node_id)
    try:
        if node_action == "clear":
            control.clear_node(
                run.pk, node_id, request.user, downstream="only_this" not in request.POST
            )
        elif node_action == "skip":
            control.skip_node(run.pk, node_id, request.user)
        else:
            target, errors = request.POST.get("state", "COMPLETED"), {}
            output, reason = None, request.POST.get("reason", "").strip()
            if target not in (NodeState.COMPLETED, NodeState.FAILED):
                errors["state"] = ["COMPLETED or FAILED"]
            elif target == NodeState.FAILED and not reason:
                errors["reason"] = ["a FAILED mark needs a reason"]
            elif target == NodeState.COMPLETED and request.POST.get("output", "").strip():
                try:
                    output = json.loads(request.POST["output"])
                except ValueError as exc:
                    errors["output"] = [f"not JSON: {exc}"]
            if errors:
                message = "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items())
                return _answer(request, run, False, f"Not marked: {message}", 400, errors=errors)
            control.mark_node(run.pk, node_id, target, request.user, output=output, reason=reason)
    except InvalidTransition as exc:
        sentence = str(exc)
        return _answer(
            request, run, False, f"{sentence[:1].upper()}{sentence[1:]}.", 409, current=exc.current
        )
    status, event = _status_and_event(run)
    return _answer(
        request,
        run,
        True,
        f"{node_id} {NODE_ACTION_VERBS[node_action]}.",
        status=status,
        actions=legal_controls(status),
        event=event,
    )


@login_required
@require_POST
def run_send_event(request: HttpRequest, run_id, node_id: str) -> HttpResponse:
    """Send data to a WAITING `wait_for_event` node (completes it)."""
    run = get_object_or_404(visible_runs(request.user), pk=run_id)
    spec = spec_for_version(run.workflow_version_id)
    node_spec = spec.nodes.get(node_id)
    if node_spec is None or node_spec.handler != "wait_for_event":
        raise Http404("no such waiting node")
    schema = node_spec.config.get("schema")
    schema = schema if isinstance(schema, dict) else None
    data, field_errors, _ = parse_form(schema, request.POST)
    if not field_errors:
        try:
            deliver_event(run, node_id, data, request.user)
        except SpecError as exc:
            names = [f.name for f in fields_for(schema)]
            field_errors, general = place_errors(exc.errors, names, prefix="$.data", schema=schema)
            if general:
                field_errors.setdefault(names[0] if names else JSON_FIELD, []).extend(general)
        except InvalidTransition as exc:
            return _answer(request, run, False, f"{node_id} is {exc.current}, not waiting.", 409)
        except PayloadTooLarge as exc:
            return _answer(request, run, False, f"Not sent: {exc.message}", 413)
    if field_errors:
        # Each message names its field ("comment must match the pattern ^[a-z ]*$.").
        message = " ".join(m for problems in field_errors.values() for m in problems)
        return _answer(request, run, False, f"Not sent: {message}", 400, errors=field_errors)
    return _answer(request, run, True, f"Sent to {node_id}.")


@login_required
@require_POST
def run_reject_event(request: HttpRequest, run_id, node_id: str) -> HttpResponse:
    """Reject what a WAITING `wait_for_event` node asks for: it fails with the posted
    ``reason`` (required), and its downstream follows the trigger rules."""
    run = get_object_or_404(visible_runs(request.user), pk=run_id)
    get_object_or_404(NodeRun, run=run, node_id=node_id)
    reason = request.POST.get("reason", "").strip()
    try:
        reject_event(run, node_id, reason, request.user)
    except SpecError as exc:
        errors = {"reason": [error["message"] for error in exc.errors]}
        return _answer(
            request, run, False, f"Not rejected: {errors['reason'][0]}", 400, errors=errors
        )
    except InvalidTransition as exc:
        return _answer(request, run, False, f"{node_id} is {exc.current}, not waiting.", 409)
    event = RunEvent.objects.filter(run=run).aggregate(last=Max("id"))["last"] or 0
    run.refresh_from_db(fields=["status"])
    return _answer(
        request,
        run,
        True,
        f"{node_id} rejected.",
        status=run.status,
        actions=legal_controls(run.status),
        event=event,
    )


@login_required
@require_GET
def node_markdown(request: HttpRequest, run_id, node_id: str) -> HttpResponse:
    """The node's latest ``node.markdown`` text as sanitized HTML (a fragment): what the run
    page shows as a waiting node's prompt when the event arrives live."""
    run = get_object_or_404(visible_runs(request.user), pk=run_id)
    text = (
        run.events.filter(kind="node.markdown", node_id=node_id)
        .order_by("-id")
        .values_list("data__text", flat=True)
        .first()
    )
    return HttpResponse(render_markdown(text or ""), content_type="text/html; charset=utf-8")


# --------------------------------------------------------------------------------------
# Workflows


@login_required
@require_GET
def workflow_list(request: HttpRequest) -> HttpResponse:
    workflows = list(
        visible_workflows(request.user)
        .select_related("owner")
        .annotate(run_count=Count("versions__runs"))
        .order_by("name")
    )
    latest = {}
    for run in (
        visible_runs(request.user)
        .filter(workflow_version__workflow__in=workflows)
        .order_by("workflow_version__workflow_id", "-created_at")
        .only("id", "status", "created_at", "workflow_version__workflow_id")
    ):
        latest.setdefault(run.workflow_version.workflow_id, run)
    for workflow in workflows:
        workflow.last_run = latest.get(workflow.pk)
        spec = (
            workflow.versions.filter(version=workflow.latest_version)
            .values_list("spec", flat=True)
            .first()
            or {}
        )
        workflow.node_count = len(((spec or {}).get("dag") or {}).get("nodes") or [])
    return render(request, "frontend/workflows.html", {"workflows": workflows})


@login_required
def workflow_detail(request: HttpRequest, name: str) -> HttpResponse:
    """A workflow: its start-run form (from the ``inputs`` schema), the DAG picture, versions,
    spec and recent runs. POST starts a run; invalid inputs re-render the form with an
    error at each field, and nothing is started."""
    workflow = get_object_or_404(visible_workflows(request.user).select_related("owner"), name=name)
    versions = list(
        workflow.versions.select_related("created_by")
        .annotate(run_count=Count("runs"))
        .order_by("-version")
    )
    number = request.POST.get("version") or request.GET.get("version")
    if number is None:
        shown = versions[0] if versions else None
    else:
        shown = next((v for v in versions if str(v.version) == str(number)), None)
    if shown is None:
        raise Http404(f"{name} has no version {number}")
    spec = spec_for_version(shown.pk)
    schema = spec.inputs_schema
    field_errors: dict[str, list[str]] = {}
    form_errors: list[str] = []
    posted_values = None
    status = 200
    sessions = list(visible_sessions(request.user).order_by("-created_at")[:100])
    if request.method == "POST":
        run, field_errors, form_errors, posted_values = _start_from_form(
            request, shown, schema, sessions
        )
        if run is not None:
            messages.success(request, "Run started.")
            return redirect("frontend:run", run_id=run.pk)
        status = 400
    elif request.method != "GET":
        return HttpResponse(status=405)
    fields = fields_for(schema, posted_values, field_errors)
    runs = [
        run_view(run, row=True)
        for run in with_needs_input(visible_runs(request.user))
        .filter(workflow_version__workflow=workflow)
        .select_related("owner")
        .order_by("-created_at")[:WORKFLOW_RUN_LIMIT]
    ]
    picture = layout_for_spec(spec)
    return render(
        request,
        "frontend/workflow_detail.html",
        {
            "workflow": workflow,
            "versions": versions,
            "shown": shown,
            "is_latest": shown.version == workflow.latest_version,
            "spec": spec,
            "picture": picture,
            "nodes": list(spec.nodes.values()),
            "spec_json": pretty_json(shown.spec),
            "inputs_json": pretty_json(schema) if schema else "",
            "fields": fields,
            "form_errors": form_errors,
            "sessions": sessions,
            "chosen_session": request.POST.get("session", ""),
            "runs": runs,
            "grid": grid_context(request, workflow),
            "concurrency": {
                "limit": spec.max_concurrent_runs,
                "active": active_runs(workflow.pk),
                "waiting": waiting_runs(workflow.pk).count(),
            }
            if spec.max_concurrent_runs
            else None,
        },
        status=status,
    )


def _start_from_form(request, version: WorkflowVersion, schema, sessions):
    """Parse and validate the start-run form; start the run only when everything is valid."""
    data, field_errors, raw = parse_form(schema, request.POST)
    form_errors: list[str] = []
    session = None
    if chosen := request.POST.get("session"):
        session = next((s for s in sessions if str(s.pk) == chosen), None)
        if session is None:
            form_errors.append("Unknown session.")
    names = [f.name for f in fields_for(schema)]
    try:
        # Every error at once, before anything starts: the schema's, for the fields that
        # parsed, next to the parse errors of the others.
        validated_inputs(version, data)
    except SpecError as exc:
        schema_errors, general = place_errors(exc.errors, names, schema=schema)
        for name, problems in schema_errors.items():
            field_errors.setdefault(name, problems)
        form_errors += general
    if field_errors or form_errors:
        return None, field_errors, form_errors, raw
    try:
        run = start_new_run(version, request.user, inputs=data, session=session)
    except SpecError as exc:  # e.g. a limit checked only at start
        field_errors, general = place_errors(exc.errors, names, schema=schema)
        return None, field_errors, form_errors + general, raw
    return run, {}, [], raw


# --------------------------------------------------------------------------------------
# Workers and sessions


LIVENESS_ORDER = {"alive": 0, "stale": 1, "dead": 2}


@login_required
@require_GET
def worker_list(request: HttpRequest) -> HttpResponse:
    """Workers with liveness from their heartbeats (the script refreshes the table)."""
    rows = sorted(worker_views(), key=lambda w: (LIVENESS_ORDER[w["liveness"]], w["hostname"]))
    return render(
        request,
        "frontend/workers.html",
        {
            "workers": rows,
            "alive": sum(1 for r in rows if r["liveness"] == "alive"),
            "slots": sum(r["concurrency"] for r in rows if r["liveness"] == "alive"),
            "busy": sum(r["nodes_running"] for r in rows if r["liveness"] == "alive"),
            "queued": NodeRun.objects.filter(state=NodeState.QUEUED).count(),
            "queue_limits": queue_usage(),
            "page_data": {"urls": {"workers": reverse("runs:workers")}},
        },
    )


@login_required
@require_GET
def session_list(request: HttpRequest) -> HttpResponse:
    sessions = with_run_counts(visible_sessions(request.user).select_related("owner"))
    rows = [session_view(s, run_counts=True) for s in sessions.order_by("-updated_at")[:200]]
    return render(request, "frontend/sessions.html", {"sessions": rows})
