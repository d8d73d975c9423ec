"""Dashboard routes. Mounted at the site root; login/logout come from ``django.contrib.auth.urls``
at ``accounts/``."""

from django.urls import path
from django.views.generic import RedirectView

from . import views

app_name = "frontend"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="frontend:runs", permanent=False), name="home"),
    path("dashboard/", views.run_list, name="runs"),
    path("dashboard/runs/<uuid:run_id>/", views.run_detail, name="run"),
    path("dashboard/workflows/", views.workflow_list, name="workflows"),
    path("dashboard/workflows/<str:name>/", views.workflow_detail, name="workflow"),
]
