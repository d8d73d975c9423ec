"""The host's URLs: its admin and login, and Trellis under /trellis/."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    # Trellis: the API, seed routes, schema, docs and probes; then the dashboard.
    path("trellis/", include("runs.urls")),
    path("trellis/", include("frontend.urls")),
]
