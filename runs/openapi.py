"""The OpenAPI document's settings, and the routes that are plain Django views in it.

drf-spectacular describes DRF views only. The SSE stream (``runs.streams.run_stream``, an
async view: DRF's ``APIView`` cannot serve it), ``/metrics`` and the probes are plain Django
views on purpose, so they are added to the document by a postprocessing hook rather than
wrapped in DRF views: a wrapper would change their authentication, throttling and content
negotiation, and the point here is to describe them, not to change them.

The hook and the settings travel with the schema view (``runs/urls.py`` passes
:data:`SCHEMA_SETTINGS` as its ``custom_settings``), so a host project that includes
``runs.urls`` serves the same document without copying anything into its own settings.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.urls import get_script_prefix, reverse
from drf_spectacular.settings import spectacular_settings

TAGS = [
    {"name": "workflows", "description": "Workflow definitions and their versions."},
    {"name": "runs", "description": "Start, list, read and control runs."},
    {"name": "events", "description": "A run's events: history, sending one, the SSE stream."},
    {"name": "sessions", "description": "Sessions: state shared by runs."},
    {"name": "workers", "description": "Celery workers with liveness, and queue limits."},
    {"name": "seed-004", "description": "The seed-004 compatible routes (DESIGN §10)."},
    {"name": "probes", "description": "Liveness and readiness, without credentials."},
    {"name": "metrics", "description": "Prometheus metrics."},
]

ANY_RUN = uuid.UUID(int=0)

JSON = "application/json"


def _path(name: str, **kwargs: Any) -> str:
    """A route's path as the document writes it: no script prefix (the server's), and
    ``{name}`` for each path parameter."""
    path = reverse(f"runs:{name}", kwargs=kwargs)[len(get_script_prefix()) - 1 :]
    for key, value in kwargs.items():
        path = path.replace(str(value), "{" + key + "}")
    return path


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _ref(component: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{component}"}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


STREAM_DESCRIPTION = """\
Server-sent events (`text/event-stream`): the run's events after the resume point, then live
ones, until the run is finished and its final events (`run.result` for a completed or failed
run) are sent; then the response ends. Each message is

    id: <resume point>
    event: <kind>
    data: <the event as JSON: RunEvent>

`id:` is the highest event id sent so far, to give back as `Last-Event-ID` (EventSource does
it by itself) or `?after=`. `: keepalive` comments fill silences (every
TRELLIS_STREAM_HEARTBEAT_SECONDS), and the stream opens with `retry: 2000`. Authentication:
`Authorization: Token <key>`, `?token=<key>` (EventSource cannot set headers) or the session
cookie."""

METRICS_DESCRIPTION = """\
Prometheus text exposition, computed from the database and Redis at scrape time. For a staff
session, a staff user's API token (`Authorization: Token <key>`), or
`Authorization: Bearer <TRELLIS_METRICS_TOKEN>` when that setting is set. A `Bearer` or
`Token` header decides alone: when it is wrong the answer is 401, even with a staff session;
`?token=` is not read here."""


def _stream_operation() -> dict[str, Any]:
    resume = {"type": "integer", "minimum": 0}
    return {
        "operationId": "run_stream",
        "summary": "A run's events as server-sent events (resumable)",
        "description": STREAM_DESCRIPTION,
        "tags": ["events"],
        "parameters": [
            {
                "name": "run_id",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "format": "uuid"},
            },
            {
                "name": "Last-Event-ID",
                "in": "header",
                "required": False,
                "description": "resume after this event id (wins over `after`)",
                "schema": resume,
            },
            {
                "name": "after",
                "in": "query",
                "required": False,
                "description": "resume after this event id (0: from the start)",
                "schema": resume,
            },
            {
                "name": "token",
                "in": "query",
                "required": False,
                "description": "an API token, for clients that cannot set headers",
                "schema": {"type": "string"},
            },
        ],
        "responses": {
            "200": {
                "description": "The stream; each `data:` line is a RunEvent.",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            "204": {"description": "The run is finished and no event follows the resume point."},
            "400": _error("`Last-Event-ID` or `after` is not a non-negative integer."),
            "401": _error("No credentials, or invalid ones."),
            "404": _error("No such run, or not visible to this user."),
        },
        "security": [{"tokenAuth": []}, {"cookieAuth": []}],
    }


def _metrics_operation() -> dict[str, Any]:
    return {
        "operationId": "metrics",
        "summary": "Prometheus metrics (staff or the metrics token)",
        "description": METRICS_DESCRIPTION,
        "tags": ["metrics"],
        "responses": {
            "200": {
                "description": "The Prometheus text exposition format.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            "401": _error("No credentials, or a wrong Bearer or Token header."),
            "403": _error("Signed in, but not staff."),
        },
        "security": [{"metricsToken": []}, {"tokenAuth": []}, {"cookieAuth": []}],
    }


def _probe_operations() -> dict[str, dict[str, Any]]:
    checks = {
        "type": "object",
        "description": "`ok`, or the sentence of what went wrong",
        "properties": {"database": {"type": "string"}, "redis": {"type": "string"}},
        "required": ["database", "redis"],
    }
    ready = {
        "type": "object",
        "properties": {"status": {"type": "string", "enum": ["ready"]}, "checks": checks},
        "required": ["status", "checks"],
    }
    not_ready = {
        "allOf": [
            _ref("Error"),
            {"type": "object", "properties": {"checks": checks}, "required": ["checks"]},
        ]
    }
    alive = {
        "type": "object",
        "properties": {"status": {"type": "string", "enum": ["ok"]}},
        "required": ["status"],
    }
    return {
        "health": {
            "operationId": "health",
            "summary": "Liveness: 200 while the process serves",
            "tags": ["probes"],
            "responses": {"200": _json(alive, "The process serves.")},
            "security": [],
        },
        "ready": {
            "operationId": "ready",
            "summary": "Readiness: do the database and Redis answer",
            "tags": ["probes"],
            "responses": {
                "200": _json(ready, "The database and Redis answer."),
                "503": _json(not_ready, "Something is down; `errors` names what."),
            },
            "security": [],
        },
    }


def add_plain_views(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: add the SSE stream, ``/metrics`` and the probes,
    and drop the schema view's own path (the document describes Trellis's API)."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    assert "Error" in schemas and "RunEvent" in schemas, "the API's views define them"
    paths = result.setdefault("paths", {})
    paths.pop(_path("schema"), None)
    paths[_path("run-stream", run_id=ANY_RUN)] = {"get": _stream_operation()}
    paths[_path("metrics")] = {"get": _metrics_operation()}
    for name, operation in _probe_operations().items():
        paths[_path(name)] = {"get": operation}
    result["components"].setdefault("securitySchemes", {})["metricsToken"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "TRELLIS_METRICS_TOKEN (for /metrics only)",
    }
    return result


def _dotted(hook: Any) -> str:
    return hook if isinstance(hook, str) else f"{hook.__module__}.{hook.__qualname__}"


SCHEMA_SETTINGS = {
    "TAGS": TAGS,
    # custom_settings take import strings. The project's hooks (drf-spectacular's enum hook
    # by default) run first: that one rebuilds the components from its registry, which
    # would drop the security scheme added here.
    "POSTPROCESSING_HOOKS": [
        *(_dotted(hook) for hook in spectacular_settings.POSTPROCESSING_HOOKS),
        _dotted(add_plain_views),
    ],
}
