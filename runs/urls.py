from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from . import api, metrics, openapi, probes, streams

app_name = "runs"

urlpatterns = [
    path("api/v1/workflows/", api.WorkflowListView.as_view(), name="workflows"),
    path("api/v1/workflows/validate/", api.WorkflowValidateView.as_view(), name="validate"),
    path("api/v1/workflows/<str:name>/", api.WorkflowDetailView.as_view(), name="workflow"),
    path(
        "api/v1/workflows/<str:name>/versions/",
        api.WorkflowVersionsView.as_view(),
        name="workflow-versions",
    ),
    path(
        "api/v1/workflows/<str:name>/versions/<int:number>/",
        api.WorkflowVersionView.as_view(),
        name="workflow-version",
    ),
    path("api/v1/runs/", api.RunListView.as_view(), name="runs"),
    path("api/v1/runs/<uuid:run_id>/", api.RunDetailView.as_view(), name="run"),
    path("api/v1/runs/<uuid:run_id>/results/", api.RunResultsView.as_view(), name="run-results"),
    path("api/v1/runs/<uuid:run_id>/events/", api.RunEventsView.as_view(), name="run-events"),
    path("api/v1/runs/<uuid:run_id>/stream/", streams.run_stream, name="run-stream"),
    *[
        path(
            f"api/v1/runs/<uuid:run_id>/{action}/",
            api.RunControlView.as_view(action=action),
            name=f"run-{action}",
        )
        for action in ("pause", "resume", "cancel", "retry")
    ],
    *[
        path(
            f"api/v1/runs/<uuid:run_id>/nodes/<str:node_id>/{action}/",
            api.NodeActionView.as_view(action=action),
            name=f"node-{action}",
        )
        for action in ("clear", "mark", "skip")
    ],
    path("api/v1/sessions/", api.SessionListView.as_view(), name="sessions"),
    path("api/v1/sessions/<uuid:session_id>/", api.SessionDetailView.as_view(), name="session"),
    path("api/v1/workers/", api.WorkerListView.as_view(), name="workers"),
    # the OpenAPI document (with the plain Django views added: runs/openapi.py) and Swagger UI
    # (assets from drf_spectacular_sidecar, no CDN)
    path(
        "api/schema/",
        SpectacularAPIView.as_view(custom_settings=openapi.SCHEMA_SETTINGS),
        name="schema",
    ),
    path("docs", SpectacularSwaggerView.as_view(url_name="runs:schema"), name="docs"),
    re_path(r"^metrics/?$", metrics.metrics_view, name="metrics"),
    path("health", probes.health, name="health"),
    path("ready", probes.ready, name="ready"),
    # seed-004 compatibility (paths exactly as documented; a trailing slash is tolerated)
    re_path(r"^workflow/?$", api.SeedSubmitView.as_view(), name="seed-submit"),
    re_path(
        r"^workflow/trigger/(?P<execution_id>[0-9a-fA-F-]{36})/?$",
        api.SeedTriggerView.as_view(),
        name="seed-trigger",
    ),
    re_path(
        r"^workflows/(?P<execution_id>[0-9a-fA-F-]{36})/?$",
        api.SeedStatusView.as_view(),
        name="seed-status",
    ),
    re_path(
        r"^workflows/(?P<execution_id>[0-9a-fA-F-]{36})/results/?$",
        api.SeedResultsView.as_view(),
        name="seed-results",
    ),
]
