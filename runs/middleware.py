"""The API's HTTP middleware.

- :func:`request_size_limit` refuses request bodies over ``DATA_UPLOAD_MAX_MEMORY_SIZE``
  (``TRELLIS_MAX_REQUEST_BYTES``) before they are read, with 413 and the API's error shape.
- :func:`json_errors` makes every error under the API's paths JSON in that shape: Django's
  own 404 and 405 pages (an unknown path, a malformed id, a wrong method) and its 500 page,
  ``DEBUG`` on or off. Django has logged a 500 before this sees it.
"""

from __future__ import annotations

from http import HTTPStatus

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.utils.decorators import sync_and_async_middleware

from .web import json_error


def too_large_response(limit: int) -> JsonResponse:
    """413 for a body over ``limit`` bytes: here before the body is read, and from the API's
    exception handler when Django raises ``RequestDataTooBig`` while reading it."""
    message = f"the request body is larger than {limit} bytes (TRELLIS_MAX_REQUEST_BYTES)."
    return json_error(message, 413, [{"path": "$", "message": message}])


def _refusal(request: HttpRequest) -> JsonResponse | None:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    length = request.META.get("CONTENT_LENGTH") or ""
    if limit is not None and length.isdigit() and int(length) > limit:
        return too_large_response(limit)
    return None


@sync_and_async_middleware
def request_size_limit(get_response):
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest):
            return _refusal(request) or await get_response(request)

    else:

        def middleware(request: HttpRequest):
            return _refusal(request) or get_response(request)

    return middleware


# The paths whose every answer is JSON (DESIGN §10): the resource API, the seed-004 routes
# (``/workflow``, ``/workflow/trigger/…``, ``/workflows/…``) and the probes.
API_PATH_PREFIXES = ("/api/", "/workflow", "/health", "/ready")
JSON_TYPES = ("application/json", "application/problem+json")
KEPT_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After")


def _error_sentence(request: HttpRequest, status: int) -> str:
    if status == 404:
        return f"Not found: nothing is served at {request.path}."
    if status == 405:
        return f"Method {request.method} is not allowed on {request.path}."
    if status >= 500:
        return "Internal server error; it has been logged."
    try:
        return f"{HTTPStatus(status).phrase}."
    except ValueError:
        return f"HTTP {status}."


def _as_json(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    """``response`` itself, or the error shape in its place when it is a non-JSON error
    under the API's paths (the ``Allow``, ``WWW-Authenticate`` and ``Retry-After`` headers
    are kept)."""
    status = response.status_code
    if status < 400 or not request.path_info.startswith(API_PATH_PREFIXES):
        return response
    content_type = response.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type in JSON_TYPES:
        return response
    if hasattr(response, "close"):
        response.close()
    headers = {name: response[name] for name in KEPT_HEADERS if response.has_header(name)}
    return json_error(_error_sentence(request, status), status, headers=headers)


@sync_and_async_middleware
def json_errors(get_response):
    """The outermost middleware: every error under the API's paths is JSON."""
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest):
            return _as_json(request, await get_response(request))

    else:

        def middleware(request: HttpRequest):
            return _as_json(request, get_response(request))

    return middleware
