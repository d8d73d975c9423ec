"""Refuse request bodies over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (``TRELLIS_MAX_REQUEST_BYTES``)
before they are read, with 413 and the API's error shape."""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.http import HttpRequest, JsonResponse
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
