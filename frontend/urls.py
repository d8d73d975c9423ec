"""Dashboard routes (DESIGN §11). Standalone they sit at the site root; a host project
includes them under any prefix (DESIGN §14), so templates and scripts only use reversed URLs.
Login and logout are the host's (``django.contrib.auth.urls`` names, when it has them)."""

from django.templatetags.static import static
from django.urls import path
from django.views.generic import RedirectView

from . import run_list, timeviews, views

app_name = "frontend"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="frontend:runs", permanent=False), name="home"),
    path("favicon.ico", RedirectView.as_view(url=static("frontend/favicon.svg"))),
    path("dashboard/", run_list.run_list, name="runs"),
    path("dashboard/runs/<uuid:run_id>/", views.run_detail, name="run"),
    path("dashboard/runs/<uuid:run_id>/nodes/<str:node_id>/", views.node_panel, name="node"),
    # Before the node-action and run-action routes, whose last segment is any word.
    path(
        "dashboard/runs/<uuid:run_id>/nodes/<str:node_id>/items/",
        timeviews.node_items,
        name="node-items",
    ),
    path("dashboard/runs/<uuid:run_id>/timeline/", timeviews.timeline, name="run-timeline"),
    path(
        "dashboard/runs/<uuid:run_id>/nodes/<str:node_id>/event/",
        views.run_send_event,
        name="send-event",
    ),
    path(
        "dashboard/runs/<uuid:run_id>/nodes/<str:node_id>/reject/",
        views.run_reject_event,
        name="reject-event",
    ),
    path(
        "dashboard/runs/<uuid:run_id>/nodes/<str:node_id>/markdown/",
        views.node_markdown,
        name="node-markdown",
    ),
    path(
        "dashboard/runs/<uuid:run_id>/nodes/<str:node_id>/<str:node_action>/",
        views.node_action,
        name="node-action",
    ),
    path("dashboard/runs/<uuid:run_id>/<str:action>/", views.run_action, name="run-action"),
    path("dashboard/workflows/", views.workflow_list, name="workflows"),
    path("dashboard/workflows/<str:name>/", views.workflow_detail, name="workflow"),
    path("dashboard/workers/", views.worker_list, name="workers"),
    path("dashboard/sessions/", views.session_list, name="sessions"),
]
