"""Publishing events to the channel layer after the transaction that wrote them commits.

Events are rows first (RunEvent); publishing is a notification. All events of one transaction
go out together after commit: one group message per run (and one for the run list when a
run's status changed), so a node completion that writes five events costs one publish.
Clients that miss a message resume from the last event id they saw, reading the rows.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections import defaultdict
from typing import Any

from django.db import transaction

logger = logging.getLogger(__name__)

RUN_LIST_GROUP = "trellis.runs"


def run_group(run_id: Any) -> str:
    return f"trellis.run.{run_id}"


def event_payload(event) -> dict[str, Any]:
    """The one shape of an event, wherever it goes: the channel layer, the WebSocket and SSE
    streams, the API's event history and the run page. It lives here, in its lowest user;
    everything above takes it from ``runs.services.shapes``."""
    return {
        "id": event.id,
        "run": str(event.run_id),
        "ts": event.ts.isoformat() if event.ts else None,
        "kind": event.kind,
        "node": event.node_id,
        "data": event.data,
    }


def for_run_list(payload: dict[str, Any]) -> bool:
    """Events the run list is sent: a run's status changes, and a node starting or stopping
    to wait (the run's ``needs_input`` may change with it)."""
    if payload["kind"] == "run.status":
        return True
    data = payload["data"] if isinstance(payload.get("data"), dict) else {}
    return payload["kind"] == "node.status" and "WAITING" in (data.get("state"), data.get("from"))


_local = threading.local()


def queue_publish(event) -> None:
    """Publish ``event`` after the current transaction commits (now, outside one)."""
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        publish([event_payload(event)])
        return
    hooks = connection.run_on_commit
    buffer = getattr(_local, "buffer", None)
    # A new list of commit hooks means a new transaction: start a new buffer for it.
    if buffer is None or getattr(_local, "hooks", None) is not hooks:
        buffer = []
        _local.buffer, _local.hooks = buffer, hooks
        transaction.on_commit(lambda: publish(buffer))
    buffer.append(event_payload(event))


def publish(payloads: list[dict[str, Any]]) -> None:
    """Hand events to this process's publisher thread (returns at once)."""
    if payloads:
        _publisher.submit(payloads)


class _Publisher:
    """One thread per process with its own event loop sends group messages in order.

    Publishing through ``async_to_sync`` on the committing thread cost about 4 ms per
    transaction (a new loop and connection each time); a queue hand-off costs microseconds
    and keeps one connection pool alive. Started lazily, and again after a fork (prefork
    workers inherit the module but not the thread).
    """

    def __init__(self) -> None:
        self._pid = 0
        self._queue: queue.SimpleQueue[list[dict[str, Any]]] | None = None
        self._lock = threading.Lock()

    def submit(self, payloads: list[dict[str, Any]]) -> None:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._queue = queue.SimpleQueue()
                    threading.Thread(
                        target=self._run, args=(self._queue,), name="trellis-events", daemon=True
                    ).start()
                    self._pid = os.getpid()
        assert self._queue is not None
        self._queue.put(payloads)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything submitted so far was sent (tests, shutdown)."""
        if self._queue is None or self._pid != os.getpid():
            return
        done = threading.Event()
        self._queue.put([{"__flush__": done}])
        done.wait(timeout)

    def _run(self, inbox: queue.SimpleQueue) -> None:
        import asyncio

        loop = asyncio.new_event_loop()
        while True:
            batch = inbox.get()
            while True:  # everything queued meanwhile goes in the same round
                try:
                    batch = batch + inbox.get_nowait()
                except queue.Empty:
                    break
            flushes = [p["__flush__"] for p in batch if "__flush__" in p]
            events = [p for p in batch if "__flush__" not in p]
            try:
                if events:
                    loop.run_until_complete(_send(events))
            except Exception:  # noqa: BLE001 - the rows are written; streams resume from them
                logger.warning(
                    "could not publish %d event(s) to the channel layer", len(events), exc_info=True
                )
            for done in flushes:
                done.set()


async def _send(payloads: list[dict[str, Any]]) -> None:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for payload in payloads:
        by_run[payload["run"]].append(payload)
    for run_id, events in by_run.items():
        await layer.group_send(run_group(run_id), {"type": "run.events", "events": events})
    statuses = [p for p in payloads if for_run_list(p)]
    if statuses:
        await layer.group_send(RUN_LIST_GROUP, {"type": "run.events", "events": statuses})


_publisher = _Publisher()
flush = _publisher.flush
