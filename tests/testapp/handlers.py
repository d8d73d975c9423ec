"""Python functions and handlers the test workflows call (autodiscovered by the handlers app).

The ``python`` handler calls these as ``fn(ctx, **kwargs)``. Workers run in other processes,
so state that must survive across attempts (``flaky``, ``count``) lives in files under
``settings.TRELLIS_DATA_DIR / "flaky"``, updated under an ``fcntl`` lock. Use a fresh key per
test (e.g. a uuid): the files outlive the test session.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

from django.conf import settings

from handlers.registry import Context, HandlerError, python_function


def _counter_path(key: str) -> Path:
    directory = Path(settings.TRELLIS_DATA_DIR) / "flaky"
    directory.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key)[:80]
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return directory / f"{safe}-{digest}.count"


def bump_counter(key: str) -> int:
    """Add one to the counter ``key`` (shared by all processes) and return the new value."""
    path = _counter_path(key)
    with open(path, "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.seek(0)
            count = int(handle.read().strip() or 0) + 1
            handle.seek(0)
            handle.truncate()
            handle.write(str(count))
            handle.flush()
            os.fsync(handle.fileno())
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    return count


def read_counter(key: str) -> int:
    """The counter's value (0 when it was never bumped)."""
    path = _counter_path(key)
    if not path.exists():
        return 0
    with open(path, encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH)
        try:
            return int(handle.read().strip() or 0)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def reset_counter(key: str) -> None:
    _counter_path(key).unlink(missing_ok=True)


@python_function()
def add(ctx: Context, a: float, b: float) -> float:
    """``a + b``."""
    return a + b


@python_function()
def not_quite_json(ctx: Context) -> dict[Any, Any]:
    """An output that JSON changes on the way to the database: a tuple, an integer key."""
    return {"pair": (1, 2), "by_number": {7: "seven"}}


@python_function()
def echo(ctx: Context, **kwargs: Any) -> dict[str, Any]:
    """Its keyword arguments, as a dict."""
    return kwargs


@python_function()
def context(ctx: Context) -> dict[str, Any]:
    """What the handler saw of its run: ids, attempt, inputs, upstream outputs, dependencies."""
    return {
        "run_id": ctx.run_id,
        "node_id": ctx.node_id,
        "attempt": ctx.attempt,
        "inputs": ctx.inputs,
        "upstream": ctx.upstream,
        "dependencies": list(ctx.dependencies),
        "params": ctx.params,
    }


@python_function()
def sleep(ctx: Context, seconds: float) -> dict[str, Any]:
    """Sleep ``seconds`` (stopping early when the run is cancelled); ``{"slept": seconds}``."""
    end = time.monotonic() + float(seconds)
    while (left := end - time.monotonic()) > 0:
        if ctx.is_cancelled():
            raise HandlerError("cancelled while sleeping", retryable=False)
        time.sleep(min(left, 0.05))
    return {"slept": seconds}


@python_function()
def fail(ctx: Context, message: str, retryable: bool = False) -> None:
    """Raise ``HandlerError(message, retryable=retryable)``."""
    raise HandlerError(message, retryable=retryable)


@python_function()
def boom(ctx: Context) -> None:
    """Raise an unexpected ``RuntimeError("boom")``."""
    raise RuntimeError("boom")


@python_function()
def flaky(ctx: Context, key: str, failures: int) -> dict[str, Any]:
    """Fail (retryable ``HandlerError``) the first ``failures`` calls for ``key``, then succeed.

    Returns ``{"key": key, "calls": n}`` where ``n`` counts every call made for ``key``.
    """
    calls = bump_counter(f"flaky:{key}")
    if calls <= int(failures):
        raise HandlerError(f"flaky {key}: failure {calls} of {failures}", retryable=True)
    return {"key": key, "calls": calls}


@python_function()
def count(ctx: Context, key: str) -> dict[str, Any]:
    """Count the calls for ``key`` (across processes); ``{"key": key, "calls": n}``."""
    return {"key": key, "calls": bump_counter(f"count:{key}")}


@python_function()
def count_then_sleep(ctx: Context, key: str, seconds: float) -> dict[str, Any]:
    """Count the call for ``key`` (as ``count`` does, when the body starts), then ``sleep``
    ``seconds``; ``{"key": key, "calls": n}``. One count per execution of the node's body."""
    calls = bump_counter(f"count:{key}")
    sleep(ctx, seconds)
    return {"key": key, "calls": calls}


def flaky_calls(key: str) -> int:
    """How many times ``flaky`` was called for ``key``."""
    return read_counter(f"flaky:{key}")


def count_calls(key: str) -> int:
    """How many times ``count`` was called for ``key``."""
    return read_counter(f"count:{key}")


@python_function()
def bump_session(
    ctx: Context, key: str, times: int = 1, pause: float = 0.0, gap: float = 0.0
) -> dict[str, Any]:
    """Add one to ``session[key]`` ``times`` times, each an atomic read-modify-write that
    waits ``pause`` between its read and its write, with ``gap`` seconds between updates."""

    def add_one(state: dict[str, Any]) -> None:
        value = state.get(key, 0)
        if pause:
            time.sleep(pause)  # widen the race window a lost update would need
        state[key] = value + 1

    state: dict[str, Any] = {}
    for _ in range(times):
        state = ctx.session.update(add_one)
        time.sleep(gap)
    return {"last": state.get(key)}


@python_function()
def report(ctx: Context, steps: int = 5, pause: float = 0.1, note: str = "") -> dict[str, Any]:
    """Work in ``steps`` steps of ``pause`` seconds, emitting a progress and a log event per
    step and a markdown note at the end; ``{"steps": steps}``."""
    for step in range(1, int(steps) + 1):
        if ctx.is_cancelled():
            raise HandlerError("cancelled while reporting", retryable=False)
        time.sleep(float(pause))
        ctx.progress(step / steps, f"step {step} of {steps}")
        ctx.log(f"finished step {step}")
    ctx.markdown(note or f"**Done** after {steps} steps.")
    return {"steps": steps}


@python_function()
def chatty(
    ctx: Context,
    tag: str,
    lines: int = 2,
    pause: float = 0.0,
    secret: str = "",
    fail_first: str = "",
) -> dict[str, Any]:
    """Log (logger ``shop``, INFO) and print ``lines`` lines each, tagged ``tag``, ``pause``
    seconds apart; then a DEBUG line and a ``runs.*`` line (neither is captured) and, with
    ``secret``, a line holding it. With ``fail_first`` (a counter key) the first call fails
    retryably after its lines. ``{"tag": tag}``."""
    shop = logging.getLogger("shop")
    for index in range(int(lines)):
        shop.info("%s logged %d", tag, index)
        print(f"{tag} printed {index}")
        time.sleep(float(pause))
    shop.debug("%s debug line", tag)
    logging.getLogger("runs.testapp").warning("%s engine line", tag)
    if secret:
        shop.warning("%s uses key %s", tag, secret)
    if fail_first and bump_counter(f"chatty:{fail_first}") == 1:
        raise HandlerError(f"{tag} fails once", retryable=True)
    return {"tag": tag}
