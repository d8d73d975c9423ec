"""A host project that mounts Trellis under ``trellis/`` (DESIGN §14): its own admin and
``django.contrib.auth.urls`` at ``accounts/``, the API and the dashboard under the prefix.
The WebSocket routes sit under the same prefix in tests/testapp/asgi.py."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("trellis/", include("runs.urls")),
    path("trellis/", include("frontend.urls")),
]
