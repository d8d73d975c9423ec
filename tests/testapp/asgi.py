"""The ASGI app of a host that mounts Trellis under ``/trellis/`` (tests/testapp/prefixed_urls.py
for HTTP): the WebSocket routes sit under the same prefix as ``runs.urls``, as runs/routing.py
asks. daphne serves it with ``TRELLIS_TEST_ROOT_URLCONF`` naming that URLconf."""

from channels.routing import URLRouter
from django.urls import path

# Imported before runs.routing: it sets Django up, which the consumers' models need.
from orchestration.asgi import application_for
from runs.routing import websocket_urlpatterns

application = application_for([path("trellis/", URLRouter(websocket_urlpatterns))])
