"""Publishing events to the channel layer after the transaction that wrote them commits.

Events are rows first (RunEvent); publishing is a notification. All events of one transaction
go out together after commit: one group message per run (and one for the run list when a
run's status changed), so a node completion that writes five events costs one publish.
Clients that miss a message resume from the last event id they saw, reading the rows.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from typing import Any

from django.db import transaction

logger = logging.getLogger(__name__)

RUN_LIST_GROUP = "trellis.runs"


def run_group(run_id: Any) -> str:
    return f"trellis.run.{run_id}"


def event_payload(event) -> dict[str, Any]:
    return {
        "id": event.id,
        "run": str(event.run_id),
        "ts": event.ts.isoformat() if event.ts else None,
        "kind": event.kind,
        "node": event.node_id,
        "data": event.data,
    }


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
    """Send events to their runs' groups (and run-status changes to the run list)."""
    if not payloads:
        return
    try:
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        if layer is None:
            return
        by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for payload in payloads:
            by_run[payload["run"]].append(payload)

        async def send_all() -> None:
            for run_id, events in by_run.items():
                await layer.group_send(run_group(run_id), {"type": "run.events", "events": events})
            statuses = [p for p in payloads if p["kind"] == "run.status"]
            if statuses:
                await layer.group_send(RUN_LIST_GROUP, {"type": "run.events", "events": statuses})

        async_to_sync(send_all)()
    except Exception:  # noqa: BLE001 - the rows are written; streams resume from them
        logger.warning("could not publish %d event(s) to the channel layer", len(payloads), exc_info=True)
