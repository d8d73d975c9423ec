"""What a handler logs and prints while its node runs, recorded as ``node.log`` events.

While an attempt runs (``capture_attempt`` around the handler call in ``runs.tasks``), a
context variable names it. Two hooks, installed once per process, read that variable:

- ``CaptureHandler`` on the root logger takes records of any logger but Trellis's own
  (``runs``, ``celery``, ``kombu``, ``django``: no recursion, no engine noise) at
  ``TRELLIS_CAPTURE_LOG_LEVEL`` or above;
- ``StreamProxy`` in place of ``sys.stdout`` / ``sys.stderr`` takes what the attempt's thread
  writes, line by line.

Other threads, and the attempt's own thread outside the handler call, pass through
untouched; what is captured still reaches the worker's log and stderr as before. A context
variable is per thread (and per asyncio task), so nodes run by a thread pool keep their lines
apart; a prefork pool has one attempt per process anyway.

Lines are redacted of the node's secrets, cut at ``TRELLIS_CAPTURE_LINE_BYTES``, and at most
``TRELLIS_CAPTURE_LOG_LINES`` are kept per attempt; one last line says how many were dropped.
The handler's thread only appends to a buffer: one thread per process writes the buffers of
running attempts every ``FLUSH_SECONDS`` in one INSERT each, and the attempt's end writes the
rest before its outcome is recorded. Writing from that thread also keeps the lines out of any
transaction the handler's own code has open. A worker killed by the hard time limit loses
at most the last ``FLUSH_SECONDS`` of lines.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections

from .rules.limits import clip_event_data
from .store.writes import record_events

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5
OWN_LOGGERS = ("runs", "celery", "kombu", "django")
OFF = "OFF"
STREAM_LEVELS = {"stdout": "INFO", "stderr": "WARNING"}

_current: ContextVar[AttemptCapture | None] = ContextVar("trellis_capture", default=None)


def _is_own(logger_name: str) -> bool:
    return any(logger_name == own or logger_name.startswith(own + ".") for own in OWN_LOGGERS)


def capture_level() -> int | None:
    """``TRELLIS_CAPTURE_LOG_LEVEL`` as a number; None when capture is off."""
    name = str(settings.TRELLIS_CAPTURE_LOG_LEVEL).strip().upper()
    if name == OFF:
        return None
    level = logging.getLevelNamesMapping().get(name)
    if level is None:
        raise ImproperlyConfigured(
            f"TRELLIS_CAPTURE_LOG_LEVEL must be a logging level name (DEBUG, INFO, WARNING,"
            f" ERROR, CRITICAL) or OFF, not {settings.TRELLIS_CAPTURE_LOG_LEVEL!r}."
        )
    return level


def cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` UTF-8 bytes, saying how many were cut."""
    encoded = text.encode("utf-8", "replace")
    if len(encoded) <= limit:
        return text
    kept = encoded[:limit].decode("utf-8", "ignore")
    return f"{kept} … [{len(encoded) - limit} more bytes]"


class AttemptCapture:
    """The captured lines of one attempt of one node, until they are written."""

    def __init__(
        self,
        run_id: Any,
        node_id: str,
        attempt: int,
        redact: Callable[[Any], Any],
        *,
        level: int,
        max_lines: int,
        max_line_bytes: int,
    ) -> None:
        self.run_id, self.node_id, self.attempt = run_id, node_id, attempt
        self.level = level
        self.max_lines, self.max_line_bytes = max_lines, max_line_bytes
        self.kept = self.dropped = 0
        self._redact = redact
        self._partial = {name: "" for name in STREAM_LEVELS}
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()  # the buffer: held for an append or a swap only
        # Held across a write, so that two writes (the flusher's, the attempt's last one)
        # reach the table in the order the lines were written, all before the outcome.
        self._write_lock = threading.Lock()

    def add(self, source: str, level: str, logger_name: str, message: str) -> None:
        """One line (a log record, or a printed line)."""
        if not message.strip():
            return
        with self._lock:
            if self.kept >= self.max_lines:
                self.dropped += 1
                return
            self.kept += 1
        data = {
            "level": level,
            # redacted before it is cut, so a secret is never left half shown
            "message": cut(self._redact(message), self.max_line_bytes),
            "logger": logger_name,
            "attempt": self.attempt,
            "source": source,
        }
        with self._lock:
            self._pending.append(data)

    def write(self, stream: str, text: str) -> None:
        """Text written to ``sys.<stream>``: complete lines are added, the rest waits."""
        with self._lock:
            buffered = self._partial[stream] + text
            *lines, rest = buffered.split("\n")
            if len(rest.encode("utf-8", "replace")) > self.max_line_bytes:
                lines.append(rest)  # a line that never ends must not grow without bound
                rest = ""
            self._partial[stream] = rest
        for line in lines:
            self.add("print", STREAM_LEVELS[stream], stream, line.rstrip("\r"))

    def flush(self) -> None:
        """Write the buffered lines as ``node.log`` events, in one INSERT."""
        with self._write_lock:
            with self._lock:
                pending, self._pending = self._pending, []
            if pending:
                record_events(
                    [(self.run_id, "node.log", clip_event_data(d), self.node_id) for d in pending]
                )

    def close(self) -> None:
        """The attempt's handler returned: add unfinished lines and the dropped note, write."""
        for stream in STREAM_LEVELS:
            with self._lock:
                rest, self._partial[stream] = self._partial[stream], ""
            self.add("print", STREAM_LEVELS[stream], stream, rest.rstrip("\r"))
        if self.dropped:
            note = {
                "level": "WARNING",
                "message": f"{self.dropped} more lines of logging and print output were dropped"
                f" (TRELLIS_CAPTURE_LOG_LINES = {self.max_lines})",
                "logger": "trellis",
                "attempt": self.attempt,
                "source": "capture",
            }
            with self._lock:
                self._pending.append(note)
        self.flush()


class CaptureHandler(logging.Handler):
    """Adds the records of the running attempt's thread to its capture (on the root logger)."""

    def emit(self, record: logging.LogRecord) -> None:
        capture = _current.get()
        if capture is None or record.levelno < capture.level or _is_own(record.name):
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
            capture.add("logging", record.levelname, record.name, message)
        except Exception:  # noqa: BLE001 - logging's own convention: report, never raise
            self.handleError(record)


class StreamProxy:
    """Stands in for ``sys.stdout`` / ``sys.stderr``: the running attempt's thread's writes
    are also captured; everything reaches the stream it replaced."""

    def __init__(self, name: str, stream: Any) -> None:
        self.name = name
        self.stream = stream

    def write(self, text: str) -> int:
        capture = _current.get()
        if capture is not None and isinstance(text, str):
            capture.write(self.name, text)
        return self.stream.write(text)

    def __getattr__(self, attribute: str) -> Any:  # flush, fileno, isatty, encoding …
        return getattr(self.stream, attribute)


class _Flusher:
    """One thread per process writes the buffers of the running attempts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._captures: set[AttemptCapture] = set()
        self._pid: int | None = None  # a forked pool process starts its own thread

    def add(self, capture: AttemptCapture) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=self._loop, name="trellis-capture", daemon=True).start()
            self._captures.add(capture)

    def discard(self, capture: AttemptCapture) -> None:
        with self._lock:
            self._captures.discard(capture)

    def _loop(self) -> None:
        wait = threading.Event().wait
        while True:
            wait(FLUSH_SECONDS)
            with self._lock:
                captures = list(self._captures)
            if not captures:
                continue
            close_old_connections()  # this thread's own connection, as the heartbeat's
            for capture in captures:
                try:
                    capture.flush()
                except Exception:  # noqa: BLE001 - the next flush or the attempt's end retries
                    logger.exception("writing the captured lines of node %s", capture.node_id)


_flusher = _Flusher()
_install_lock = threading.Lock()


def install() -> None:
    """Put the handler on the root logger and the proxies on ``sys.stdout`` / ``sys.stderr``,
    unless they are there. Called at each attempt's start: a logging configuration or
    Celery's redirection of the standard streams may have replaced them since."""
    with _install_lock:
        root = logging.getLogger()
        if not any(isinstance(handler, CaptureHandler) for handler in root.handlers):
            root.addHandler(CaptureHandler())
        for name in STREAM_LEVELS:
            stream = getattr(sys, name)
            if stream is not None and not isinstance(stream, StreamProxy):
                setattr(sys, name, StreamProxy(name, stream))


@contextmanager
def capture_attempt(
    run_id: Any, node_id: str, attempt: int, redact: Callable[[Any], Any]
) -> Iterator[None]:
    """Record what this thread logs and prints inside the block as ``node.log`` events of
    the node's attempt; the last of them are written when the block ends."""
    level = capture_level()
    if level is None:
        yield
        return
    capture = AttemptCapture(
        run_id,
        node_id,
        attempt,
        redact,
        level=level,
        max_lines=settings.TRELLIS_CAPTURE_LOG_LINES,
        max_line_bytes=settings.TRELLIS_CAPTURE_LINE_BYTES,
    )
    install()
    _flusher.add(capture)
    token = _current.set(capture)
    try:
        yield
    finally:
        # Stop capturing first: what the last write logs is Trellis's, not the handler's.
        _current.reset(token)
        _flusher.discard(capture)
        try:
            capture.close()
        except Exception:  # noqa: BLE001 - lost lines must not change the node's outcome
            logger.exception("writing the captured lines of node %s", node_id)
