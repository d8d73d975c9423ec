"""Log lines that say which run and node they belong to, and the JSON log format.

A worker binds ``run_id`` / ``node_id`` once it has claimed a node (``bind_log_context`` in
``runs.tasks.execute_node``, whose body runs inside ``log_context()`` through
``in_own_log_context``, so they are gone when the task returns); ``log_context(run_id=…)``
does the same for any block of code.
``ContextFilter`` copies them onto every record a handler emits, and with
``TRELLIS_LOG_FORMAT=json`` ``JSONFormatter`` writes each record as one JSON object per line:
``time``, ``level``, ``logger``, ``message``, then ``run_id`` / ``node_id`` when bound and
``exception`` / ``stack`` when present.

This module is imported by the logging configuration, before the app registry is ready: it
must not import models.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.urls import Resolver404, resolve

P = ParamSpec("P")
R = TypeVar("R")
CONTEXT_FIELDS = ("run_id", "node_id")
# Never mutated in place: every change sets a new dict, so a reset restores the old one.
_context: ContextVar[dict[str, str] | None] = ContextVar("trellis_log_context", default=None)


def _bound() -> dict[str, str]:
    return _context.get() or {}


def current_log_context() -> dict[str, str]:
    return dict(_bound())


def bind_log_context(**fields: Any) -> None:
    """Add fields to the log context until the enclosing ``log_context`` ends (call it inside
    one: a pool process runs one task after another, and nothing bound by one may leak into
    the next)."""
    _context.set({**_bound(), **{k: str(v) for k, v in fields.items() if v is not None}})


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add fields to the log context for a block; on exit the context is what it was before,
    whatever was bound inside."""
    token = _context.set({**_bound(), **{k: str(v) for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def in_own_log_context(function: Callable[P, R]) -> Callable[P, R]:
    """Run each call of ``function`` inside ``log_context()`` (a Celery task's body: what it
    binds is gone when it returns or raises). The signature is kept, since Celery checks the
    arguments of a task call against it."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with log_context():
            return function(*args, **kwargs)

    wrapper.__signature__ = inspect.signature(function)  # type: ignore[attr-defined]
    return wrapper


class RunLogContextMiddleware:
    """Binds ``run_id`` while the web process handles a request about one run (the API's
    ``/api/v1/runs/<run_id>/…``, the seed-004 ``…/<execution_id>``, the dashboard's run
    pages), so that what the request logs says which run it was about.

    Sync and async capable, like Django's own middleware: a sync-only one would push the
    async views (the SSE stream) through a thread and make Django buffer their streams.
    """

    sync_capable = True
    async_capable = True
    RUN_ARGUMENTS = ("run_id", "execution_id")

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self.__acall__(request)
        run_id = self.run_id(request)
        if run_id is None:
            return self.get_response(request)
        with log_context(run_id=run_id):
            return self.get_response(request)

    async def __acall__(self, request: Any) -> Any:
        run_id = self.run_id(request)
        if run_id is None:
            return await self.get_response(request)
        with log_context(run_id=run_id):
            return await self.get_response(request)

    def run_id(self, request: Any) -> Any:
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return None
        return next((match.kwargs[k] for k in self.RUN_ARGUMENTS if k in match.kwargs), None)


class ContextFilter(logging.Filter):
    """Copies the bound ``run_id`` / ``node_id`` onto the record (None when unbound)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _bound()
        for name in CONTEXT_FIELDS:
            if not hasattr(record, name):
                setattr(record, name, context.get(name))
        return True


class JSONFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = _bound()
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None) or context.get(name)
            if value:
                entry[name] = str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
