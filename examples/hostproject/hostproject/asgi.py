"""The host's ASGI app (`daphne hostproject.asgi:application`): Django for HTTP, Trellis's
WebSockets under the same /trellis/ prefix as its URLs."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hostproject.settings")
django_asgi_app = get_asgi_application()  # sets Django up; the imports below need it

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.urls import path  # noqa: E402

import runs.routing  # noqa: E402
from runs.web import TokenAuthMiddleware  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": ASGIStaticFilesHandler(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(
                TokenAuthMiddleware(
                    URLRouter([path("trellis/", URLRouter(runs.routing.websocket_urlpatterns))])
                )
            )
        ),
    }
)
