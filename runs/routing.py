"""The WebSocket routes, for a Channels ``URLRouter``.

Standalone, ``orchestration.asgi`` mounts them at the root (``/ws/runs/…``). A host project
mounts them under the same prefix as ``runs.urls`` (the dashboard finds the sockets there)::

    URLRouter([path("trellis/", URLRouter(runs.routing.websocket_urlpatterns))])
"""

from django.urls import path

from .consumers import RunEventsConsumer, RunListConsumer

websocket_urlpatterns = [
    path("ws/runs/", RunListConsumer.as_asgi(), name="ws-runs"),
    path("ws/runs/<uuid:run_id>/", RunEventsConsumer.as_asgi(), name="ws-run"),
]
