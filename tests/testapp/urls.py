"""Trellis's URLs plus routes that fail on purpose, for the tests of error answers."""

from django.urls import path

from orchestration.urls import urlpatterns as trellis_urlpatterns


def broken_view(request):
    raise RuntimeError("a bug in a view")


urlpatterns = [
    path("api/v1/broken/", broken_view),
    path("dashboard/broken/", broken_view),
    *trellis_urlpatterns,
]
