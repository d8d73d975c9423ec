"""The REST API: the resource API under /api/v1/ and the seed-004 compatible routes.

Views are thin: they parse and check requests, call the service layer and shape responses.
Every error has one shape (``runs.web.error_body``):
``{"error": "<sentence>", "errors": [{"path", "message"}]}``.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from django.http import Http404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import BaseParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from .middleware import too_large_response
from .models import NodeRun, Run, RunEvent, Session, WorkflowVersion
from .parsers import LimitedJSONParser
from .rules.limits import PayloadTooLarge, json_size
from .rules.seed import SEED_RUN_STATUS
from .rules.spec import SpecError, load_spec_text, parse_spec, validate_spec
from .rules.states import RUN_FINISHED, InvalidTransition
from .serializers import (
    ConflictSerializer,
    ErrorSerializer,
    EventDeliveredSerializer,
    EventSerializer,
    NodeClearSerializer,
    NodeMarkSerializer,
    NodeSkipSerializer,
    RunDetailSerializer,
    RunEventListSerializer,
    RunFilter,
    RunResultSerializer,
    RunSerializer,
    RunStartSerializer,
    SeedExecutionSerializer,
    SeedResultsSerializer,
    SeedStatusSerializer,
    SessionCreateSerializer,
    SessionListSerializer,
    SessionPatchSerializer,
    SessionSerializer,
    ValidationResultSerializer,
    WorkerListSerializer,
    WorkflowDetailSerializer,
    WorkflowSavedSerializer,
    WorkflowSerializer,
    WorkflowSpecSerializer,
    WorkflowVersionListSerializer,
    WorkflowVersionSerializer,
    filter_errors,
)
from .services import control, seed
from .services.runs import (
    deliver_event,
    find_version,
    reject_event,
    start_new_run,
    visible_runs,
    visible_sessions,
    visible_workflows,
    with_needs_input,
)
from .services.sessions import update_session
from .services.shapes import event_payload, iso, run_view, session_view, worker_views
from .services.workers import queue_usage
from .services.workflows import save_workflow
from .web import error_body

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------
# Errors


def _flatten(detail: Any, path: str = "$") -> list[dict[str, Any]]:
    if isinstance(detail, dict):
        return [item for key, value in detail.items() for item in _flatten(value, f"{path}.{key}")]
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return [{"path": path, "message": str(item)} for item in detail]
        return [item for i, value in enumerate(detail) for item in _flatten(value, f"{path}[{i}]")]
    return [{"path": path, "message": str(detail)}]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, reshaped; plus the engine's own errors mapped to their status codes."""
    if isinstance(exc, SpecError):
        count = len(exc.errors)
        message = exc.errors[0]["message"] if count == 1 else f"{count} problems found"
        return Response(error_body(message, exc.errors), status=400)
    if isinstance(exc, InvalidTransition):
        return Response({**error_body(str(exc)), "current": exc.current}, status=409)
    if isinstance(exc, PermissionError):
        return Response(error_body(str(exc)), status=403)
    if isinstance(exc, RequestDataTooBig):
        return too_large_response(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    if isinstance(exc, PayloadTooLarge):
        return Response(
            error_body(exc.message, [{"path": exc.path, "message": exc.message}]), status=413
        )
    if isinstance(exc, ObjectDoesNotExist):
        exc = Http404()
    if isinstance(exc, DjangoValidationError):  # a value the database would not take
        return Response(error_body("; ".join(exc.messages) or "invalid value"), status=400)
    if isinstance(exc, DataError):  # e.g. a NUL character, which PostgreSQL cannot store
        logger.warning("request refused by the database: %s", exc)
        return Response(
            error_body("a value in the request cannot be stored (NUL characters, for one, cannot)"),
            status=400,
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        message = errors[0]["message"] if len(errors) == 1 else f"{len(errors)} problems found"
        response.data = error_body(message, errors)
    elif isinstance(exc, Http404 | exceptions.NotFound):
        response.data = error_body("Not found.")
    else:
        detail = getattr(exc, "detail", str(exc))
        response.data = error_body(str(detail))
    return response


class TrellisAPIView(APIView):
    """Every API view's base: Trellis's authentication, permissions, parser, error shape and
    schema, set here rather than read from ``REST_FRAMEWORK``, so a host project's DRF
    defaults (say, ``AllowAny``) never loosen or reshape Trellis's API. Throttles stay the
    project's (the standalone stack sets them from ``TRELLIS_THROTTLE_*``)."""

    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]
    parser_classes = [LimitedJSONParser]
    schema = AutoSchema()

    def get_exception_handler(self):
        return exception_handler


class SpecParser(BaseParser):
    """Workflow specs as YAML (JSON bodies go through the JSON parser)."""

    media_type = "application/yaml"

    def parse(self, stream, media_type=None, parser_context=None):
        return load_spec_text(stream.read())


class YamlTextParser(SpecParser):
    media_type = "text/yaml"


SPEC_PARSERS = [LimitedJSONParser, SpecParser, YamlTextParser]

# --------------------------------------------------------------------------------------
# Workflow and version shapes (runs, nodes, events, sessions and workers have theirs in
# runs.services.shapes, shared with the streams and the dashboard)


def version_view(version: WorkflowVersion, *, spec: bool = True) -> dict[str, Any]:
    data = {
        "workflow": version.workflow.name,
        "version": version.version,
        "created_at": iso(version.created_at),
        "created_by": version.created_by.get_username() if version.created_by_id else None,
    }
    if spec:
        data["spec"] = version.spec
    return data


def workflow_view(workflow) -> dict[str, Any]:
    return {
        "name": workflow.name,
        "description": workflow.description,
        "latest_version": workflow.latest_version,
        "owner": workflow.owner.get_username(),
        "created_at": iso(workflow.created_at),
        "updated_at": iso(workflow.updated_at),
    }


# --------------------------------------------------------------------------------------
# How the OpenAPI document describes errors: one shape, with `current` on 409


ERROR_MEANINGS = {
    400: "Invalid request: `errors` names each problem with its path.",
    401: "No credentials, or invalid ones.",
    403: "Not yours (a user sees only what they own unless staff).",
    404: "Not found (or not visible to this user).",
    409: "Illegal transition; `current` is the state now.",
    413: "The request body is larger than TRELLIS_MAX_REQUEST_BYTES.",
}


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    """The documented error answers of an operation, each in the error shape."""
    return {
        code: OpenApiResponse(
            ConflictSerializer if code == 409 else ErrorSerializer, ERROR_MEANINGS[code]
        )
        for code in codes
    }


def api_schema(tag: str, operation_id: str, summary: str, responses: dict, *errors: int, **extra):
    """``extend_schema`` with what every Trellis operation states: its resource tag, a stable
    operation id, a summary, its answers and its error codes (401 for all: each needs a user)."""
    return extend_schema(
        tags=[tag],
        operation_id=operation_id,
        summary=summary,
        responses={**responses, **error_responses(401, *errors)},
        **extra,
    )


# --------------------------------------------------------------------------------------
# Workflows


class WorkflowPagination(CursorPagination):
    ordering = "name"
    page_size = 50


class RunPagination(CursorPagination):
    ordering = "-created_at"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500


class WorkflowListView(TrellisAPIView):
    parser_classes = SPEC_PARSERS
    pagination_class = WorkflowPagination  # also read by drf-spectacular: the page's shape

    @api_schema(
        "workflows", "workflows_list", "List workflows", {200: WorkflowSerializer(many=True)}
    )
    def get(self, request: Request) -> Response:
        paginator = self.pagination_class()
        queryset = visible_workflows(request.user).select_related("owner")
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response([workflow_view(w) for w in page])

    @api_schema(
        "workflows",
        "workflows_create",
        "Create a workflow, or add a version (body: the spec, JSON or YAML)",
        {
            201: OpenApiResponse(WorkflowSavedSerializer, "A new workflow or a new version."),
            200: OpenApiResponse(WorkflowSavedSerializer, "The spec equals the latest version."),
        },
        400,
        403,
        413,
        request=WorkflowSpecSerializer,
    )
    def post(self, request: Request) -> Response:
        version, created = save_workflow(_spec_body(request), request.user)
        body = {"name": version.workflow.name, "version": version.version, "created": created}
        return Response(body, status=201 if created else 200)


def _sized_spec(request: Request) -> Any:
    """The request's spec, refused (400, as DESIGN §2 says) when over TRELLIS_MAX_SPEC_BYTES.
    YAML bodies were measured as text by their parser; JSON ones are measured here."""
    data = request.data
    limit = settings.TRELLIS_MAX_SPEC_BYTES
    if (size := json_size(data)) > limit:
        message = (
            f"the spec is {size} bytes, more than the limit of {limit} (TRELLIS_MAX_SPEC_BYTES)."
        )
        raise SpecError([{"path": "$", "message": message}])
    return data


def _spec_body(request: Request) -> Any:
    data = _sized_spec(request)
    if not isinstance(data, dict):
        raise SpecError([{"path": "$", "message": "the spec must be a JSON object"}])
    return data


class WorkflowValidateView(TrellisAPIView):
    parser_classes = SPEC_PARSERS

    @api_schema(
        "workflows",
        "workflows_validate",
        "Validate a spec (a dry run: every problem, and the plan by layer)",
        {200: ValidationResultSerializer},
        400,
        413,
        request=WorkflowSpecSerializer,
    )
    def post(self, request: Request) -> Response:
        doc = _sized_spec(request)
        errors = validate_spec(doc)
        plan = parse_spec(doc).layers if not errors else []
        return Response({"valid": not errors, "errors": errors, "plan": plan})


class WorkflowDetailView(TrellisAPIView):
    @api_schema(
        "workflows",
        "workflows_retrieve",
        "A workflow and its latest version",
        {200: WorkflowDetailSerializer},
        404,
    )
    def get(self, request: Request, name: str) -> Response:
        workflow = visible_workflows(request.user).get(name=name)
        data = workflow_view(workflow)
        data["spec"] = find_version(workflow, None).spec
        return Response(data)


class WorkflowVersionsView(TrellisAPIView):
    @api_schema(
        "workflows",
        "workflow_versions_list",
        "Versions of a workflow",
        {200: WorkflowVersionListSerializer},
        404,
    )
    def get(self, request: Request, name: str) -> Response:
        workflow = visible_workflows(request.user).get(name=name)
        versions = workflow.versions.select_related("workflow", "created_by").order_by("-version")
        return Response({"results": [version_view(v, spec=False) for v in versions]})


class WorkflowVersionView(TrellisAPIView):
    @api_schema(
        "workflows",
        "workflow_versions_retrieve",
        "One version of a workflow",
        {200: WorkflowVersionSerializer},
        404,
    )
    def get(self, request: Request, name: str, number: int) -> Response:
        workflow = visible_workflows(request.user).get(name=name)
        return Response(version_view(find_version(workflow, number)))


# --------------------------------------------------------------------------------------
# Runs


class RunListView(TrellisAPIView):
    pagination_class = RunPagination
    # drf-spectacular lists the filterset's filters as query parameters through the backend;
    # the view applies the filterset itself so that a bad value answers in the error shape
    # with the parameter's name as its path (the backend would raise DRF's own shape).
    filter_backends = [DjangoFilterBackend]
    filterset_class = RunFilter
    queryset = Run.objects.none()  # the model, for the schema; get() reads visible_runs

    @api_schema("runs", "runs_list", "List runs", {200: RunSerializer(many=True)}, 400)
    def get(self, request: Request) -> Response:
        runs = with_needs_input(visible_runs(request.user).select_related("owner"))
        filterset = self.filterset_class(request.query_params, queryset=runs, request=request)
        if not filterset.is_valid():
            errors = filter_errors(filterset)
            return Response(error_body(errors[0]["message"], errors), status=400)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(filterset.qs, request, view=self)
        return paginator.get_paginated_response([run_view(run) for run in page])

    @api_schema(
        "runs",
        "runs_create",
        "Start a run (with `wait`, answer once it finished or `timeout` passed)",
        {
            201: OpenApiResponse(
                RunSerializer,
                "Started; with `wait` and a finished run, the run with its `nodes`, "
                "`warnings` and `result` (as `GET /api/v1/runs/{id}/`).",
            ),
            202: OpenApiResponse(RunSerializer, "With `wait`: still running at `timeout`."),
        },
        400,
        403,
        413,
        request=RunStartSerializer,
    )
    def post(self, request: Request) -> Response:
        body = RunStartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        workflow = visible_workflows(request.user).filter(name=data["workflow"]).first()
        if workflow is None:
            return Response(
                error_body(
                    f"no workflow named {data['workflow']!r}",
                    [{"path": "$.workflow", "message": "unknown workflow"}],
                ),
                status=400,
            )
        try:
            version = find_version(workflow, data.get("version"))
        except WorkflowVersion.DoesNotExist:
            return Response(
                error_body(
                    f"workflow {workflow.name!r} has no version {data['version']}",
                    [{"path": "$.version", "message": "unknown version"}],
                ),
                status=400,
            )
        session = None
        if data.get("session"):
            session = visible_sessions(request.user).filter(pk=data["session"]).first()
            if session is None:
                return Response(
                    error_body(
                        "no such session", [{"path": "$.session", "message": "unknown session"}]
                    ),
                    status=400,
                )
        run = start_new_run(
            version,
            request.user,
            inputs=data["inputs"],
            params=data["params"],
            overrides=data["overrides"],
            session=session,
        )
        if data["wait"]:
            deadline = time.monotonic() + data["timeout"]
            while time.monotonic() < deadline:
                run.refresh_from_db(fields=["status"])
                if run.status in RUN_FINISHED:
                    break
                time.sleep(0.05)
            run = visible_runs(request.user).get(pk=run.pk)
            if run.status not in RUN_FINISHED:
                return Response(run_view(run), status=202)
            return Response(run_view(run, nodes=True), status=201)
        return Response(run_view(run), status=201)


def _run_for(request: Request, run_id) -> Run:
    try:  # seed-004 routes take any 36 hex digits and dashes, not only UUIDs
        run_id = uuid.UUID(str(run_id))
    except ValueError:
        raise Http404 from None
    return visible_runs(request.user).select_related("owner").get(pk=run_id)


class RunDetailView(TrellisAPIView):
    @api_schema("runs", "runs_retrieve", "A run with its nodes", {200: RunDetailSerializer}, 404)
    def get(self, request: Request, run_id) -> Response:
        return Response(run_view(_run_for(request, run_id), nodes=True))


class RunResultsView(TrellisAPIView):
    @api_schema(
        "runs",
        "runs_results",
        "A run's result (`completed` says whether it is final)",
        {200: RunResultSerializer},
        404,
    )
    def get(self, request: Request, run_id) -> Response:
        run = _run_for(request, run_id)
        return Response(
            {
                "id": str(run.pk),
                "status": run.status,
                "completed": run.status in RUN_FINISHED,
                "result": run.result,
                "error": run.error,
            }
        )


class RunEventsView(TrellisAPIView):
    @api_schema(
        "events",
        "run_events_list",
        "A run's event history",
        {200: RunEventListSerializer},
        400,
        404,
        parameters=[
            OpenApiParameter("after", int, description="only events with a higher id"),
            OpenApiParameter("limit", int, description="at most this many (1000; 5000 at most)"),
            OpenApiParameter("node", str, description="only this node's events"),
            OpenApiParameter("kind", str, description="only events of this kind"),
        ],
    )
    def get(self, request: Request, run_id) -> Response:
        run = _run_for(request, run_id)
        try:
            after = int(request.query_params.get("after", 0))
            limit = min(int(request.query_params.get("limit", 1000)), 5000)
        except ValueError:
            return Response(error_body("after and limit must be integers"), status=400)
        events = RunEvent.objects.filter(run=run, id__gt=after)
        for field, param in (("node_id", "node"), ("kind", "kind")):
            if param in request.query_params:
                events = events.filter(**{field: request.query_params[param]})
        events = events.order_by("id")[:limit]
        return Response({"results": [event_payload(e) for e in events]})

    @api_schema(
        "events",
        "run_events_create",
        "Send an event to a WAITING `wait_for_event` node, or reject it",
        {201: EventDeliveredSerializer},
        400,
        403,
        404,
        409,
        413,
        request=EventSerializer,
    )
    def post(self, request: Request, run_id) -> Response:
        """Send an event: completes the WAITING `wait_for_event` node it names with ``data``,
        or fails it with the reason given as ``reject``."""
        run = _run_for(request, run_id)
        body = EventSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        node_id = body.validated_data["node"]
        try:
            if "reject" in body.validated_data:
                node = reject_event(run, node_id, body.validated_data["reject"], request.user)
            else:
                node = deliver_event(run, node_id, body.validated_data["data"], request.user)
        except NodeRun.DoesNotExist:
            return Response(
                error_body(
                    f"run has no node {body.validated_data['node']!r}",
                    [{"path": "$.node", "message": "unknown node"}],
                ),
                status=400,
            )
        return Response({"node": node.node_id, "state": node.state}, status=201)


CONTROL_SUMMARIES = {
    "pause": "Pause a run (running nodes finish; nothing new starts)",
    "resume": "Resume a paused run",
    "cancel": "Cancel a run",
    "retry": "Retry a failed or cancelled run (completed outputs are reused)",
}


class RunControlSchema(AutoSchema):
    """The four control routes share one view class (``as_view(action=…)``), so their
    operation ids and summaries come from the view's action, not from a decorator."""

    def get_operation_id(self) -> str:
        return f"runs_{self.view.action}"

    def get_summary(self) -> str:
        return CONTROL_SUMMARIES[self.view.action]


class RunControlView(TrellisAPIView):
    """POST /api/v1/runs/{id}/<action>/: pause, resume, cancel, retry (409 when illegal)."""

    action = ""
    schema = RunControlSchema()

    @extend_schema(
        tags=["runs"],
        request=None,
        responses={200: RunSerializer, **error_responses(401, 403, 404, 409)},
    )
    def post(self, request: Request, run_id) -> Response:
        run = _run_for(request, run_id)
        getattr(control, self.action)(run.pk, request.user)
        return Response(run_view(_run_for(request, run_id)))


NODE_ACTION_BODIES = {
    "clear": NodeClearSerializer,
    "mark": NodeMarkSerializer,
    "skip": NodeSkipSerializer,
}
NODE_ACTION_SUMMARIES = {
    "clear": "Clear a finished node: it (and by default its downstream) runs again",
    "mark": "Mark a node COMPLETED (with an output) or FAILED (with a reason) by hand",
    "skip": "Skip a pending, ready, queued or failed node (downstream follows trigger rules)",
}


class NodeActionSchema(AutoSchema):
    """The three node-action routes share one view class, as the run controls do."""

    def get_operation_id(self) -> str:
        return f"run_nodes_{self.view.action}"

    def get_summary(self) -> str:
        return NODE_ACTION_SUMMARIES[self.view.action]

    def get_request_serializer(self):
        return NODE_ACTION_BODIES[self.view.action]


class NodeActionView(TrellisAPIView):
    """POST /api/v1/runs/{id}/nodes/{node}/<action>/: clear, mark, skip (409 when illegal;
    404 for an unknown node). Answers the run with its nodes."""

    action = ""
    schema = NodeActionSchema()

    @extend_schema(
        tags=["runs"],
        responses={200: RunDetailSerializer, **error_responses(400, 401, 404, 409, 413)},
    )
    def post(self, request: Request, run_id, node_id: str) -> Response:
        run = _run_for(request, run_id)
        body = NODE_ACTION_BODIES[self.action](data=request.data or {})
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if self.action == "clear":
            control.clear_node(run.pk, node_id, request.user, downstream=data["downstream"])
        elif self.action == "mark":
            control.mark_node(
                run.pk,
                node_id,
                data["state"],
                request.user,
                output=data.get("output"),
                reason=data.get("reason", ""),
            )
        else:
            control.skip_node(run.pk, node_id, request.user)
        return Response(run_view(_run_for(request, run_id), nodes=True))


# --------------------------------------------------------------------------------------
# Sessions and workers


class SessionListView(TrellisAPIView):
    @api_schema(
        "sessions", "sessions_list", "List sessions (newest 500)", {200: SessionListSerializer}
    )
    def get(self, request: Request) -> Response:
        sessions = visible_sessions(request.user).select_related("owner")[:500]
        return Response({"results": [session_view(s) for s in sessions]})

    @api_schema(
        "sessions",
        "sessions_create",
        "Create a session",
        {201: SessionSerializer},
        400,
        413,
        request=SessionCreateSerializer,
    )
    def post(self, request: Request) -> Response:
        body = SessionCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        session = Session.objects.create(owner=request.user, **body.validated_data)
        return Response(session_view(session), status=201)


class SessionDetailView(TrellisAPIView):
    @api_schema(
        "sessions", "sessions_retrieve", "A session and its state", {200: SessionSerializer}, 404
    )
    def get(self, request: Request, session_id) -> Response:
        return Response(session_view(visible_sessions(request.user).get(pk=session_id)))

    @api_schema(
        "sessions",
        "sessions_partial_update",
        "Rename a session, or merge into (or replace) its state",
        {200: SessionSerializer},
        400,
        404,
        413,
        request=SessionPatchSerializer,
    )
    def patch(self, request: Request, session_id) -> Response:
        session = visible_sessions(request.user).get(pk=session_id)
        body = SessionPatchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if "state" in data:
            patch, replace = data["state"], data["replace"]

            def change(state: dict[str, Any]) -> dict[str, Any]:
                return dict(patch) if replace else {**state, **patch}

            update_session(session.pk, change)
        if "name" in data:
            Session.objects.filter(pk=session.pk).update(name=data["name"])
        return Response(session_view(visible_sessions(request.user).get(pk=session.pk)))


class WorkerListView(TrellisAPIView):
    @api_schema(
        "workers",
        "workers_list",
        "Workers with liveness, and the queue limits in use",
        {200: WorkerListSerializer},
    )
    def get(self, request: Request) -> Response:
        return Response({"results": worker_views(), "queue_limits": queue_usage()})


# --------------------------------------------------------------------------------------
# Seed-004 compatible routes

# The trigger body: node configs by node id (null or empty: no overrides). Not a serializer:
# its keys are the workflow's node ids.
SEED_OVERRIDES = {
    "application/json": {
        "type": "object",
        "nullable": True,
        "description": "`{node_id: {config keys}}`: configs replaced by node id",
        "additionalProperties": {"type": "object", "nullable": True, "additionalProperties": {}},
    }
}


class SeedSubmitView(TrellisAPIView):
    parser_classes = SPEC_PARSERS

    @api_schema(
        "seed-004",
        "seed_submit",
        "seed-004: submit a workflow; returns a PENDING execution",
        {201: SeedExecutionSerializer},
        400,
        403,
        413,
        request=WorkflowSpecSerializer,
    )
    def post(self, request: Request) -> Response:
        run, warnings = seed.submit(_spec_body(request), request.user)
        body = {"execution_id": str(run.pk), "status": SEED_RUN_STATUS[run.status]}
        return Response({**body, "warnings": warnings}, status=201)


class SeedTriggerView(TrellisAPIView):
    @api_schema(
        "seed-004",
        "seed_trigger",
        "seed-004: trigger an execution; the body overrides node configs by node id",
        {202: SeedExecutionSerializer},
        400,
        404,
        409,
        413,
        request=SEED_OVERRIDES,
    )
    def post(self, request: Request, execution_id) -> Response:
        run, warnings = seed.trigger(_run_for(request, execution_id), request.data)
        body = {"execution_id": str(run.pk), "status": SEED_RUN_STATUS[run.status]}
        return Response({**body, "warnings": warnings}, status=202)


class SeedStatusView(TrellisAPIView):
    @api_schema(
        "seed-004", "seed_status", "seed-004: execution status", {200: SeedStatusSerializer}, 404
    )
    def get(self, request: Request, execution_id) -> Response:
        return Response(seed.status(_run_for(request, execution_id)))


class SeedResultsView(TrellisAPIView):
    @api_schema(
        "seed-004", "seed_results", "seed-004: execution results", {200: SeedResultsSerializer}, 404
    )
    def get(self, request: Request, execution_id) -> Response:
        return Response(seed.results(_run_for(request, execution_id)))
