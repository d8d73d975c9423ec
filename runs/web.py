"""What the HTTP and WebSocket adapters share: the one error shape, and reading credentials.

Errors have one shape everywhere (the API, SSE, ``/metrics``, the size limit):
``{"error": "<sentence>", "errors": [{"path": …, "message": …}]}``. :func:`error_body` builds
it; :func:`json_error` wraps it in a ``JsonResponse`` (DRF views wrap it in a ``Response``).

Credentials: :func:`authorization` is the one parser of the ``Authorization`` header;
:func:`request_token` (HTTP) and :func:`socket_token` (WebSocket) find an API token,
:func:`user_for_token` checks it, and :class:`TokenAuthMiddleware` applies it to WebSockets.

This module sits below the adapters (``runs.api``, ``runs.streams``, ``runs.metrics``,
``runs.consumers``) and imports none of them. It imports the ``Token`` model, so it is
imported only once the app registry is ready (by views, middleware and ``orchestration.asgi``
after ``get_asgi_application()``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, JsonResponse
from rest_framework.authtoken.models import Token

TOKEN_SUBPROTOCOL = "trellis.token."

# --------------------------------------------------------------------------------------
# Errors


def error_body(message: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """``{"error": message, "errors": errors or []}``: every error response's body."""
    return {"error": message, "errors": errors or []}


def json_error(
    message: str,
    status: int,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JsonResponse:
    """The error shape as a ``JsonResponse`` with ``status`` and extra ``headers``."""
    response = JsonResponse(error_body(message, errors), status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


# --------------------------------------------------------------------------------------
# Credentials


def authorization(request: HttpRequest) -> tuple[str, str]:
    """The ``Authorization`` header as ``(scheme, credentials)``: the scheme lower-cased, the
    credentials stripped (``"Token  abc "`` gives ``("token", "abc")``); ``("", "")`` without
    the header. Which schemes count is the caller's business."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower(), credentials.strip()


def request_token(request: HttpRequest) -> str | None:
    """The API token of an HTTP request: ``Authorization: Token <key>`` (DRF's scheme), or
    ``?token=`` as for WebSockets. The header wins when both are given; a ``Token`` header
    with no key counts as absent."""
    scheme, credentials = authorization(request)
    if scheme == "token" and credentials:
        return credentials
    return request.GET.get("token") or None


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


def user_for_token(key: str):
    """The active user owning API token ``key``, or None. Synchronous."""
    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return None
    return token.user


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
