"""Retrying a transaction that PostgreSQL chose as a deadlock victim.

Two transactions can lock the same rows in opposite orders: cancelling a run locks the run,
then its nodes; a worker finishing a node locks the node and its children, then the run.
PostgreSQL then aborts one of them (SQLSTATE 40P01). Its work was rolled back as a whole, so
running it again from the start is safe: that is what :func:`retry_on_deadlock` does, only
around an outermost transaction (inside another one, the error must reach the outer block).
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import OperationalError, connection

logger = logging.getLogger(__name__)

T = TypeVar("T")
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock, serialization failure
ATTEMPTS = 5


def is_retryable(exc: BaseException) -> bool:
    cause = exc.__cause__ or exc
    return (
        getattr(cause, "sqlstate", None) in RETRYABLE_SQLSTATES
        or getattr(cause, "pgcode", None) in RETRYABLE_SQLSTATES
    )


def retry_on_deadlock(
    fn: Callable[..., T] | None = None, *, before_retry: Callable[..., None] | None = None
):
    """Decorator. ``before_retry(*args, **kwargs)``, when given, is called with the same
    arguments before each new try: for objects the aborted try changed in memory."""

    def decorate(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            if connection.in_atomic_block:
                return fn(*args, **kwargs)
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    return fn(*args, **kwargs)
                except OperationalError as exc:
                    if attempt == ATTEMPTS or not is_retryable(exc):
                        raise
                    logger.info("%s: %s; trying again (%d)", fn.__qualname__, exc, attempt)
                    time.sleep(random.uniform(0.005, 0.05) * attempt)
                    if before_retry is not None:
                        before_retry(*args, **kwargs)
            raise AssertionError("unreachable")  # pragma: no cover

        return wrapper

    return decorate(fn) if fn is not None else decorate
