"""Django admin for every Trellis model: workflows, versions, runs, node runs, events, sessions
and workers.

States are written only by ``runs.transitions``, and runs are created only through the
scheduler, so runs, nodes, events, versions and workers are read-only here (they may be
deleted); runs are paused, resumed, cancelled and retried with admin actions that go through
``runs.control``, like the API and the dashboard. JSON fields are shown pretty-printed; runs,
nodes, events and sessions link to each other.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import date as date_filter
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timezone import template_localtime

from .engine.workers import liveness
from .models import NodeRun, Run, RunEvent, Session, Worker, Workflow, WorkflowVersion
from .rules.states import InvalidTransition
from .services import control

JSON_DISPLAY_LIMIT = 200_000  # characters; larger values are cut in the admin page
ERROR_CELL_LIMIT = 300  # characters of a node's error in the run page's node table
TIME_FORMAT = "Y-m-d H:i:s"  # local time with seconds (Django's default DATETIME_FORMAT drops them)

STATE_COLOURS = {
    "COMPLETED": "#166534",
    "FAILED": "#b42318",
    "UPSTREAM_FAILED": "#b42318",
    "RUNNING": "#1e40af",
    "QUEUED": "#1e40af",
    "RETRYING": "#92400e",
    "WAITING": "#92400e",
    "READY": "#92400e",
    "PAUSED": "#92400e",
}


def pretty_json(value: Any) -> SafeString:
    """A JSON value as indented text in a ``<pre>`` (escaped by ``format_html``)."""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    if len(text) > JSON_DISPLAY_LIMIT:
        text = text[:JSON_DISPLAY_LIMIT] + f"\n… ({len(text) - JSON_DISPLAY_LIMIT} more characters)"
    # overflow-wrap: a long string without spaces wraps instead of widening the page.
    return format_html(
        '<pre style="margin:0;white-space:pre-wrap;overflow-wrap:anywhere">{}</pre>', text
    )


def json_display(attribute: str):
    """A read-only admin field showing ``obj.<attribute>`` as formatted JSON."""

    @admin.display(description=attribute)
    def show(self, obj: Any) -> SafeString:
        return pretty_json(getattr(obj, attribute))

    return show


TIME_FIELDS = (
    "created_at",
    "updated_at",
    "queued_at",
    "started_at",
    "finished_at",
    "due_at",
    "stopped_at",
    "last_seen",
    "ts",
)


def time_display(attribute: str):
    """A column or read-only field showing ``obj.<attribute>`` as local time with seconds."""

    @admin.display(description=attribute.replace("_", " "), ordering=attribute, empty_value="—")
    def show(self, obj: Any) -> str | None:
        value = getattr(obj, attribute)
        return date_filter(template_localtime(value), TIME_FORMAT) if value else None

    return show


def _with_seconds(names):
    return type(names)(f"{n}_s" if n in TIME_FIELDS else n for n in names)


class TimesWithSeconds:
    """Every admin here shows its models' times with seconds. Django shows a model field with
    its own DATETIME_FORMAT (no seconds by default), so each time field listed in ``fields``,
    ``readonly_fields`` or ``list_display`` is shown through ``<name>_s`` instead, labelled and
    ordered as the field; filters and the date hierarchy still use the field itself. Only
    read-only fields are listed in TIME_FIELDS: they are never in an edit form."""

    def get_fields(self, request, obj=None):
        return _with_seconds(super().get_fields(request, obj))

    def get_readonly_fields(self, request, obj=None):
        return _with_seconds(super().get_readonly_fields(request, obj))

    def get_list_display(self, request):
        return _with_seconds(super().get_list_display(request))


for _name in TIME_FIELDS:
    setattr(TimesWithSeconds, f"{_name}_s", time_display(_name))


def state_badge(state: str) -> SafeString:
    return format_html(
        '<strong style="color:{}">{}</strong>', STATE_COLOURS.get(state, "#4b5563"), state
    )


def changelist_link(model: type, text: str, **filters: Any) -> SafeString:
    url = reverse(f"admin:trellis_{model._meta.model_name}_changelist")
    return format_html('<a href="{}?{}">{}</a>', url, urlencode(filters), text)


def change_link(obj: Any, text: str | None = None) -> SafeString:
    url = reverse(f"admin:trellis_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, text if text is not None else str(obj))


def duration(start, end) -> str:
    if start is None or end is None:
        return "—"
    return f"{(end - start).total_seconds():.2f} s"


class ReadOnlyAdmin(TimesWithSeconds, admin.ModelAdmin):
    """Viewable and deletable, never added or edited through the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(TimesWithSeconds, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --------------------------------------------------------------------------------------
# Workflows


class WorkflowVersionInline(ReadOnlyInline):
    model = WorkflowVersion
    fields = ("version", "created_by", "created_at", "spec_hash")
    readonly_fields = fields
    ordering = ("-version",)


@admin.register(Workflow)
class WorkflowAdmin(TimesWithSeconds, admin.ModelAdmin):
    list_display = ("name", "latest_version", "owner", "version_count", "run_links", "updated_at")
    list_filter = (("owner", admin.RelatedOnlyFieldListFilter), "updated_at")
    search_fields = ("name", "description", "owner__username")
    readonly_fields = ("name", "latest_version", "created_at", "updated_at", "run_links")
    fields = (
        "name",
        "owner",
        "description",
        "latest_version",
        "run_links",
        "created_at",
        "updated_at",
    )
    raw_id_fields = ("owner",)
    inlines = (WorkflowVersionInline,)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A workflow without a version is useless: create them through import or the API,
        # which validate the spec.
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Workflow]:
        return (
            super()
            .get_queryset(request)
            .select_related("owner")
            .annotate(version_count=Count("versions", distinct=True))
        )

    @admin.display(description="versions", ordering="version_count")
    def version_count(self, obj: Workflow) -> SafeString:
        return changelist_link(WorkflowVersion, str(obj.version_count), workflow__id__exact=obj.pk)

    @admin.display(description="runs")
    def run_links(self, obj: Workflow) -> SafeString:
        return changelist_link(Run, "runs", workflow_version__workflow__id__exact=obj.pk)


@admin.register(WorkflowVersion)
class WorkflowVersionAdmin(ReadOnlyAdmin):
    list_display = (
        "__str__",
        "workflow_link",
        "version",
        "node_count",
        "created_by",
        "created_at",
        "run_links",
    )
    list_filter = (("workflow", admin.RelatedOnlyFieldListFilter), "created_at")
    search_fields = ("workflow__name", "spec_hash")
    list_select_related = ("workflow", "created_by")
    fields = (
        "workflow",
        "version",
        "created_by",
        "created_at",
        "spec_hash",
        "spec_pretty",
        "run_links",
    )
    readonly_fields = fields

    @admin.display(description="workflow", ordering="workflow__name")
    def workflow_link(self, obj: WorkflowVersion) -> SafeString:
        return change_link(obj.workflow)

    @admin.display(description="nodes")
    def node_count(self, obj: WorkflowVersion) -> int:
        spec = obj.spec if isinstance(obj.spec, dict) else {}
        return len((spec.get("dag") or {}).get("nodes") or [])

    spec_pretty = json_display("spec")

    @admin.display(description="runs")
    def run_links(self, obj: WorkflowVersion) -> SafeString:
        return changelist_link(Run, "runs", workflow_version__id__exact=obj.pk)


# --------------------------------------------------------------------------------------
# Runs


class NodeRunInline(ReadOnlyInline):
    model = NodeRun
    fields = (
        "node_id",
        "handler",
        "state_badge",
        "attempts_used",
        "worker",
        "started_at",
        "finished_at",
        "took",
        "error_message",
    )
    readonly_fields = fields
    ordering = ("id",)

    # Few, narrow columns: the table fits the run page on a laptop (the queue and the rest are
    # on each node's own page, one click away).
    @admin.display(description="attempt")
    def attempts_used(self, obj: NodeRun) -> str:
        return f"{obj.attempt} of {obj.max_attempts}"

    @admin.display(description="state")
    def state_badge(self, obj: NodeRun) -> SafeString:
        return state_badge(obj.state)

    @admin.display(description="duration")
    def took(self, obj: NodeRun) -> str:
        return duration(obj.started_at, obj.finished_at)

    @admin.display(description="error")
    def error_message(self, obj: NodeRun) -> SafeString | str:
        message = (obj.error or {}).get("message", "") if isinstance(obj.error, dict) else ""
        if len(message) > ERROR_CELL_LIMIT:  # the whole of it is on the node's own page
            message = message[:ERROR_CELL_LIMIT] + "…"
        # A long word wraps inside its cell instead of widening the table past the page.
        return (
            format_html('<div style="min-width:14em;overflow-wrap:anywhere">{}</div>', message)
            if message
            else ""
        )


def _report(modeladmin, request, refusal: str, verb: str, done, refused, noun: str) -> None:
    """Tell the admin user what an action did (``done``) and refused (``refused``)."""
    if done:
        modeladmin.message_user(
            request, f"{verb.capitalize()} {len(done)} {noun}: {', '.join(done)}.", messages.SUCCESS
        )
    if refused:
        modeladmin.message_user(
            request,
            f"Cannot {refusal.format(len(refused))}: {', '.join(refused)}.",
            messages.ERROR,
        )


def _control_action(action: str, verb: str):
    """An admin action running ``runs.control.<action>`` on each selected run; illegal ones
    (pausing a completed run, …) are refused one by one and reported, the rest go through."""

    def run_action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Run]):
        done: list[str] = []
        refused: list[str] = []
        for run_id in queryset.values_list("pk", flat=True):
            try:
                getattr(control, action)(run_id, request.user)
            except InvalidTransition as exc:
                refused.append(f"{str(run_id)[:8]} ({exc.current})")
            else:
                done.append(str(run_id)[:8])
        _report(
            modeladmin,
            request,
            f"{action} {{}} run(s) in their current status",
            verb,
            done,
            refused,
            "run(s)",
        )

    run_action.__name__ = f"{action}_runs"
    return admin.action(description=f"{action.capitalize()} selected runs")(run_action)


def _node_action(action: str, verb: str):
    """An admin action running ``runs.control.<action>_node`` (clear with its downstream, or
    skip) on each selected node; illegal ones are refused one by one and reported. Marking
    needs an output or a reason: the dashboard's node panel does it."""

    def node_action(
        modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[NodeRun]
    ):
        done: list[str] = []
        refused: list[str] = []
        for run_id, node_id in queryset.values_list("run_id", "node_id"):
            try:
                getattr(control, f"{action}_node")(run_id, node_id, request.user)
            except InvalidTransition as exc:
                refused.append(f"{node_id} ({exc.current})")
            else:
                done.append(node_id)
        _report(
            modeladmin,
            request,
            f"{action} {{}} node(s) in their current state",
            verb,
            done,
            refused,
            "node(s)",
        )

    node_action.__name__ = f"{action}_nodes"
    return admin.action(description=f"{action.capitalize()} selected nodes")(node_action)


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = (
        "short_id",
        "workflow_link",
        "version",
        "status_badge",
        "owner",
        "session_link",
        "created_at",
        "started_at",
        "finished_at",
        "took",
    )
    list_filter = (
        "status",
        ("workflow_version__workflow", admin.RelatedOnlyFieldListFilter),
        ("owner", admin.RelatedOnlyFieldListFilter),
        "created_at",
    )
    search_fields = ("id", "workflow_version__workflow__name", "owner__username", "error")
    list_select_related = ("workflow_version__workflow", "owner", "session")
    actions = (
        _control_action("pause", "paused"),
        _control_action("resume", "resumed"),
        _control_action("cancel", "cancelled"),
        _control_action("retry", "retried"),
    )
    date_hierarchy = "created_at"
    fields = (
        "id",
        "workflow_link",
        "version",
        "status_badge",
        "owner",
        "session_link",
        "parent_link",
        "dashboard_link",
        "created_at",
        "started_at",
        "finished_at",
        "took",
        "error",
        "event_links",
        "inputs_pretty",
        "params_pretty",
        "overrides_pretty",
        "result_pretty",
    )
    readonly_fields = fields
    inlines = (NodeRunInline,)

    @admin.display(description="run", ordering="id")
    def short_id(self, obj: Run) -> str:
        return str(obj.pk)[:8]

    @admin.display(description="workflow", ordering="workflow_version__workflow__name")
    def workflow_link(self, obj: Run) -> SafeString:
        return change_link(obj.workflow_version.workflow)

    @admin.display(description="version", ordering="workflow_version__version")
    def version(self, obj: Run) -> SafeString:
        return change_link(obj.workflow_version, f"v{obj.workflow_version.version}")

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Run) -> SafeString:
        return state_badge(obj.status)

    @admin.display(description="duration")
    def took(self, obj: Run) -> str:
        return duration(obj.started_at, obj.finished_at)

    @admin.display(description="session", ordering="session__name")
    def session_link(self, obj: Run) -> SafeString | str:
        return change_link(obj.session) if obj.session_id else "—"

    @admin.display(description="started by node")
    def parent_link(self, obj: Run) -> SafeString | str:
        if not obj.parent_node_id:
            return "—"
        parent = obj.parent_node
        return format_html(
            "{} of run {}",
            change_link(parent, parent.node_id),
            change_link(parent.run, str(parent.run_id)[:8]),
        )

    @admin.display(description="dashboard")
    def dashboard_link(self, obj: Run) -> SafeString:
        return format_html('<a href="/dashboard/runs/{}/">live view</a>', obj.pk)

    def get_actions(self, request: HttpRequest):
        # The controls change runs: keep them from view-only admin users. Deleting stays
        # governed by the delete permission, as usual.
        actions = super().get_actions(request)
        if not request.user.has_perm("trellis.change_run") and not request.user.is_superuser:
            for name in ("pause_runs", "resume_runs", "cancel_runs", "retry_runs"):
                actions.pop(name, None)
        return actions

    @admin.display(description="events")
    def event_links(self, obj: Run) -> SafeString:
        return format_html(
            "{} · {}",
            changelist_link(RunEvent, "events", run__id__exact=obj.pk),
            changelist_link(NodeRun, "nodes", run__id__exact=obj.pk),
        )

    inputs_pretty = json_display("inputs")
    params_pretty = json_display("params")
    overrides_pretty = json_display("overrides")
    result_pretty = json_display("result")


@admin.register(NodeRun)
class NodeRunAdmin(ReadOnlyAdmin):
    list_display = (
        "node_id",
        "run_link",
        "handler",
        "state_badge",
        "attempt",
        "queue",
        "worker",
        "started_at",
        "finished_at",
        "took",
    )
    list_filter = ("state", "handler", "queue")
    search_fields = ("node_id", "run__id", "worker", "handler")
    list_select_related = ("run",)
    fields = (
        "run_link",
        "node_id",
        "handler",
        "state_badge",
        "attempt",
        "max_attempts",
        "queue",
        "worker",
        "dispatch_token",
        "pending_parents",
        "failed_parents",
        "skipped_parents",
        "queued_at",
        "started_at",
        "finished_at",
        "due_at",
        "took",
        "event_links",
        "output_pretty",
        "error_pretty",
        "attempts_pretty",
    )
    readonly_fields = fields
    actions = (_node_action("clear", "cleared"), _node_action("skip", "skipped"))

    def get_actions(self, request: HttpRequest):
        # Node actions change runs: the same permission as the run controls.
        actions = super().get_actions(request)
        if not request.user.has_perm("trellis.change_run") and not request.user.is_superuser:
            for name in ("clear_nodes", "skip_nodes"):
                actions.pop(name, None)
        return actions

    @admin.display(description="run", ordering="run__created_at")
    def run_link(self, obj: NodeRun) -> SafeString:
        return change_link(obj.run, str(obj.run_id)[:8])

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj: NodeRun) -> SafeString:
        return state_badge(obj.state)

    @admin.display(description="duration")
    def took(self, obj: NodeRun) -> str:
        return duration(obj.started_at, obj.finished_at)

    @admin.display(description="events")
    def event_links(self, obj: NodeRun) -> SafeString:
        return changelist_link(
            RunEvent, "events of this node", run__id__exact=obj.run_id, node_id=obj.node_id
        )

    output_pretty = json_display("output")
    error_pretty = json_display("error")
    attempts_pretty = json_display("attempts")


@admin.register(RunEvent)
class RunEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "ts", "run_link", "kind", "node_link", "summary")
    list_filter = ("kind", "ts")
    search_fields = ("run__id", "node_id", "kind")
    fields = ("id", "ts", "run_link", "kind", "node_link", "data_pretty")
    readonly_fields = fields
    # No select_related: the run link needs only run_id, the node link only node_id.

    @admin.display(description="run", ordering="run_id")
    def run_link(self, obj: RunEvent) -> SafeString:
        url = reverse("admin:trellis_run_change", args=[obj.run_id])
        return format_html('<a href="{}">{}</a>', url, str(obj.run_id)[:8])

    @admin.display(description="node", ordering="node_id")
    def node_link(self, obj: RunEvent) -> SafeString | str:
        if not obj.node_id:
            return ""
        return changelist_link(NodeRun, obj.node_id, run__id__exact=obj.run_id, node_id=obj.node_id)

    @admin.display(description="data")
    def summary(self, obj: RunEvent) -> str:
        text = json.dumps(obj.data, ensure_ascii=False, default=str)
        return text if len(text) <= 120 else text[:117] + "..."

    data_pretty = json_display("data")


# --------------------------------------------------------------------------------------
# Sessions and workers


@admin.register(Session)
class SessionAdmin(TimesWithSeconds, admin.ModelAdmin):
    """Sessions: the name is editable; the state is changed by handlers and the API (atomic
    updates with a revision), so it is shown, not edited, here."""

    list_display = ("__str__", "short_id", "owner", "revision", "run_links", "updated_at")
    list_filter = (("owner", admin.RelatedOnlyFieldListFilter), "updated_at")
    search_fields = ("id", "name", "owner__username")
    list_select_related = ("owner",)
    fields = (
        "id",
        "name",
        "owner",
        "revision",
        "created_at",
        "updated_at",
        "run_links",
        "state_pretty",
    )
    readonly_fields = (
        "id",
        "owner",
        "revision",
        "created_at",
        "updated_at",
        "run_links",
        "state_pretty",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # created through the API, with an owner

    def get_queryset(self, request: HttpRequest) -> QuerySet[Session]:
        return super().get_queryset(request).annotate(run_count=Count("runs"))

    @admin.display(description="id", ordering="id")
    def short_id(self, obj: Session) -> str:
        return str(obj.pk)[:8]

    @admin.display(description="runs", ordering="run_count")
    def run_links(self, obj: Session) -> SafeString:
        count = getattr(obj, "run_count", None)
        text = f"{count} run(s)" if count is not None else "runs"
        return changelist_link(Run, text, session__id__exact=obj.pk)

    state_pretty = json_display("state")


@admin.register(Worker)
class WorkerAdmin(ReadOnlyAdmin):
    """Heartbeat rows of worker processes (written by the workers themselves)."""

    list_display = (
        "hostname",
        "liveness_badge",
        "pid",
        "queue_list",
        "concurrency",
        "node_links",
        "started_at",
        "last_seen",
    )
    list_filter = ("stopped_at", "last_seen")
    search_fields = ("hostname",)
    fields = (
        "hostname",
        "liveness_badge",
        "pid",
        "queue_list",
        "concurrency",
        "pool_pids",
        "started_at",
        "last_seen",
        "stopped_at",
        "node_links",
    )
    readonly_fields = fields

    @admin.display(description="liveness")
    def liveness_badge(self, obj: Worker) -> SafeString:
        state = liveness(obj)
        colour = {"alive": "#166534", "stale": "#92400e", "dead": "#b42318"}[state]
        return format_html('<strong style="color:{}">{}</strong>', colour, state)

    @admin.display(description="queues")
    def queue_list(self, obj: Worker) -> str:
        return ", ".join(obj.queues or [])

    @admin.display(description="nodes")
    def node_links(self, obj: Worker) -> SafeString:
        return changelist_link(NodeRun, "nodes it ran", worker=obj.hostname)
