"""A node's own time limits, kept inside the worker process.

Celery enforces a task's limits from its message (the pool's main process signals the pool
process). A task that runs several nodes in a row (continue in the worker,
runs.engine.scheduler.Carry) is sent with limits that leave room for them, so each node's
own limits are kept here, the same way: at ``timeout`` seconds ``SoftTimeLimitExceeded`` is
raised in the handler (SIGALRM, as the pool's SIGUSR1 does), and a process still in the node
``grace`` seconds later is killed (SIGKILL, as the pool does); the reconciler then queues the
node again, since its pool process is gone.

Signals reach only a process's main thread: in a thread pool (where Celery keeps no limits
either) this does nothing, and ``available()`` says so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator

from celery.exceptions import SoftTimeLimitExceeded

logger = logging.getLogger(__name__)


def available() -> bool:
    return threading.current_thread() is threading.main_thread()


def _raise_soft_limit(signum, frame) -> None:
    raise SoftTimeLimitExceeded()


class _Watchdog:
    """One thread per process that kills the process when an armed deadline passes."""

    def __init__(self) -> None:
        self._deadline: float | None = None
        self._label = ""
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def arm(self, seconds: float, label: str) -> None:
        with self._changed:
            if self._thread is None or self._pid != os.getpid():  # first use, or after a fork
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._watch, name="trellis-time-limit", daemon=True
                )
                self._thread.start()
            self._deadline = time.monotonic() + seconds
            self._label = label
            self._changed.notify()

    def disarm(self) -> None:
        with self._changed:
            self._deadline = None
            self._changed.notify()

    def _watch(self) -> None:
        with self._changed:
            while True:
                if self._deadline is None:
                    self._changed.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._changed.wait(left)
                    continue
                logger.error(
                    "%s ignored its time limit: stopping process %s", self._label, self._pid
                )
                os.kill(self._pid, signal.SIGKILL)


_watchdog = _Watchdog()


@contextlib.contextmanager
def node_time_limits(timeout: float, grace: float, label: str) -> Iterator[None]:
    """Soft limit at ``timeout`` s, hard at ``timeout + grace`` s, for the code inside."""
    if not available():
        yield
        return
    previous = signal.signal(signal.SIGALRM, _raise_soft_limit)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    _watchdog.arm(timeout + grace, label)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        _watchdog.disarm()
