"""The WebSocket routes, for a Channels ``URLRouter``.

Standalone, ``orchestration.asgi`` mounts them at the root (``/ws/runs/…``). A host project
mounts them under the same prefix as ``runs.urls``::

    URLRouter([path("trellis/", URLRouter(runs.routing.websocket_urlpatterns))])

The dashboard finds the sockets there: it hands its scripts the prefix of ``runs.urls``
(reversed from ``runs:runs``) plus ``ws/`` (``frontend.views.socket_url``).
"""

from django.urls import path

from .consumers import RunEventsConsumer, RunListConsumer

websocket_urlpatterns = [
    path("ws/runs/", RunListConsumer.as_asgi(), name="ws-runs"),
    path("ws/runs/<uuid:run_id>/", RunEventsConsumer.as_asgi(), name="ws-run"),
]
