"""What the client raises: the API's error shape as exceptions, and network failures.

Every error the API answers has one shape, ``{"error": "<sentence>", "errors": [{"path",
"message"}]}`` (409 adds ``current``); :func:`error_for` turns it into the matching subclass of
:class:`ApiError`, so callers catch ``NotFound`` or ``Conflict`` instead of reading codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class TrellisError(Exception):
    """Anything the client raises on purpose."""


@dataclass(frozen=True)
class ErrorDetail:
    """One problem of an error answer or a validation: where (a JSON path) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def error_details(items: Any) -> list[ErrorDetail]:
    """The ``errors`` list of an answer as ErrorDetails (tolerating a malformed one)."""
    if not isinstance(items, list):
        return []
    return [
        ErrorDetail(str(item.get("path", "")), str(item.get("message", "")))
        if isinstance(item, dict)
        else ErrorDetail("", str(item))
        for item in items
    ]


class ApiError(TrellisError):
    """The API answered with an error status. ``message`` is its sentence, ``errors`` the
    paths and messages it listed, ``body`` the decoded answer (a dict when it was JSON)."""

    def __init__(self, status: int, message: str, errors=(), body: Any = None) -> None:
        self.status = status
        self.message = message
        self.errors: list[ErrorDetail] = list(errors)
        self.body = body
        super().__init__(f"{message} (HTTP {status})")


class ValidationFailed(ApiError):
    """400: the request (a spec, inputs, a filter) is invalid; ``errors`` says where."""


class AuthError(ApiError):
    """401 (no or a wrong token) or 403 (not yours to change)."""


class NotFound(ApiError):
    """404: absent, or not visible to this token's user."""


class Conflict(ApiError):
    """409: an illegal transition, such as pausing a finished run; ``current`` is the state
    the server found."""

    @property
    def current(self) -> Any:
        return self.body.get("current") if isinstance(self.body, dict) else None


class ConnectionFailed(TrellisError):
    """The server could not be reached, or the connection broke and could not be resumed."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"cannot reach the Trellis server at {url}: {reason}")


_CLASSES: dict[int, type[ApiError]] = {
    400: ValidationFailed,
    401: AuthError,
    403: AuthError,
    404: NotFound,
    409: Conflict,
}


def error_for(status: int, body: Any, text: str = "") -> ApiError:
    """The exception for an error answer: its status, its decoded ``body`` (None when it was
    not JSON) and the raw ``text`` (used when there is no sentence to show)."""
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        message = body["error"]
    elif isinstance(body, dict) and isinstance(body.get("detail"), str):
        message = body["detail"]
    else:
        snippet = " ".join(text.split())[:200]
        message = f"the server answered HTTP {status}" + (f": {snippet}" if snippet else "")
    details = error_details(body.get("errors")) if isinstance(body, dict) else []
    return _CLASSES.get(status, ApiError)(status, message, details, body)
