"""ASGI entry point: `daphne orchestration.asgi:application` serves HTTP (the API, the
dashboard, the admin, SSE) and WebSockets (`/ws/runs/…`)."""

import os

from django.conf import settings
from django.core.asgi import get_asgi_application

from runs.ops.embedded_redis import ensure_for_settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestration.settings")
ensure_for_settings(settings)  # without REDIS_URL, start (or find) the embedded Valkey

# Django is set up by this call; the imports below need the app registry.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from runs.routing import websocket_urlpatterns  # noqa: E402
from runs.web import TokenAuthMiddleware  # noqa: E402

# daphne does not serve static files (STACK.md, trap 5); the dashboard needs its CSS and JS.
http_app = (
    ASGIStaticFilesHandler(django_asgi_app) if settings.TRELLIS_SERVE_STATIC else django_asgi_app
)


def application_for(websocket_routes: list) -> ProtocolTypeRouter:
    """HTTP through Django, and these WebSocket routes behind the origin check and the
    session or token login (a host that mounts Trellis under a prefix passes its routes)."""
    return ProtocolTypeRouter(
        {
            "http": http_app,
            # Browsers send an Origin header; one outside ALLOWED_HOSTS is refused (cross-site
            # WebSocket hijacking), as is a missing one (STACK.md, trap 6).
            "websocket": AllowedHostsOriginValidator(
                AuthMiddlewareStack(TokenAuthMiddleware(URLRouter(websocket_routes)))
            ),
        }
    )


application = application_for(websocket_urlpatterns)
