"""Log lines that say which run and node they belong to, and the JSON log format.

A worker binds ``run_id`` / ``node_id`` while it executes a node (``bind_log_context`` in
``runs.tasks.execute_node``; cleared when the Celery task ends); ``log_context`` does the same
for a block of code. ``ContextFilter`` copies them onto every record a handler emits, and with
``TRELLIS_LOG_FORMAT=json`` ``JSONFormatter`` writes each record as one JSON object per line:
``time``, ``level``, ``logger``, ``message``, then ``run_id`` / ``node_id`` when bound and
``exception`` / ``stack`` when present.

This module is imported by the logging configuration, before the app registry is ready: it
must not import models.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from celery import signals

CONTEXT_FIELDS = ("run_id", "node_id")
# Never mutated in place: every change sets a new dict, so a reset restores the old one.
_context: ContextVar[dict[str, str] | None] = ContextVar("trellis_log_context", default=None)


def _bound() -> dict[str, str]:
    return _context.get() or {}


def current_log_context() -> dict[str, str]:
    return dict(_bound())


def bind_log_context(**fields: Any) -> None:
    """Add fields to the log context until it is cleared (the end of the Celery task)."""
    _context.set({**_bound(), **{k: str(v) for k, v in fields.items() if v is not None}})


def clear_log_context(**_: Any) -> None:
    _context.set({})


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add fields to the log context for the duration of a block (restored afterwards)."""
    token = _context.set({**_bound(), **{k: str(v) for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


# A pool process runs one task after another in the same thread: nothing bound by one task may
# leak into the next (a task that failed before it could clean up included).
signals.task_prerun.connect(clear_log_context, weak=False, dispatch_uid="trellis-log-prerun")
signals.task_postrun.connect(clear_log_context, weak=False, dispatch_uid="trellis-log-postrun")


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
