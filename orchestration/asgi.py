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

from urllib.parse import parse_qs  # noqa: E402

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.db import database_sync_to_async  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth.models import AnonymousUser  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from runs.consumers import websocket_urlpatterns  # noqa: E402
from runs.streams import user_for_token  # noqa: E402

TOKEN_SUBPROTOCOL = "trellis.token."


def socket_token(scope) -> str | None:
    """The API token a WebSocket client offered, if any.

    Browsers cannot set headers on a WebSocket, so a token comes as a subprotocol
    (``new WebSocket(url, ["trellis", "trellis.token." + key])``, which stays out of access
    logs) or as ``?token=<key>``. The subprotocol wins when both are given.
    """
    for protocol in scope.get("subprotocols") or ():
        if protocol.startswith(TOKEN_SUBPROTOCOL):
            return protocol[len(TOKEN_SUBPROTOCOL) :]
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return query["token"][-1] if "token" in query else None


class TokenAuthMiddleware:
    """An API token authenticates a WebSocket (see :func:`socket_token`).

    It runs inside ``AuthMiddlewareStack``: a token, when given, decides the user (an invalid
    one means anonymous, never a fall-back to the session cookie); without one the session's
    user stays.
    """

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        key = socket_token(scope)
        if key is not None:
            user = await database_sync_to_async(user_for_token)(key)
            scope = dict(scope, user=user or AnonymousUser())
        return await self.inner(scope, receive, send)


# daphne does not serve static files (STACK.md, trap 5); the dashboard needs its CSS and JS.
http_app = (
    ASGIStaticFilesHandler(django_asgi_app) if settings.TRELLIS_SERVE_STATIC else django_asgi_app
)

application = ProtocolTypeRouter(
    {
        "http": http_app,
        # Browsers send an Origin header; one outside ALLOWED_HOSTS is refused (cross-site
        # WebSocket hijacking), as is a missing one (STACK.md, trap 6).
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(TokenAuthMiddleware(URLRouter(websocket_urlpatterns)))
        ),
    }
)
