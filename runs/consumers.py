"""WebSocket consumers: one run's events, and the run list's changes.

``/ws/runs/<id>/?after=<event id>``: the run's events after ``after`` (the backlog, in id
order, in batches), then its live events. Every message is JSON:

- ``{"type": "events", "events": [event, …]}``: each event as ``event_payload`` (the one
  event shape, ``runs.services.shapes``), the same as the API's and the SSE stream's;
- ``{"type": "synced", "last": <id>, "status": <run status>}`` once the backlog is sent.

The socket stays open after the run finishes (a run may be retried); clients know it finished
from ``run.status`` / ``run.result`` events. A client that reconnects passes the highest id it
saw as ``after`` and gets exactly what it missed.

``/ws/runs/?after=<event id>``: ``run.status`` events of the runs the user may see, and the
``node.status`` events of their nodes starting or stopping to wait (``needs_input``), each
message ``{"type": "events", "events": […], "runs": {run id: row}}``, each row the run as it
is now, ``run_view(run, row=True)`` (the API's run without inputs, params and waiting).

Refusals close the accepted socket with a policy code, as the API's status codes: 4400 bad
``after``, 4401 not authenticated, 4404 no such run (or not the user's).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.db.models import Q

from .models import Run, RunEvent
from .services.runs import visible_runs, with_needs_input
from .services.shapes import event_payload, run_view
from .store.publish import RUN_LIST_GROUP, for_run_list, run_group
from .streams import BATCH_SIZE, EventCursor, new_events, visible_run

logger = logging.getLogger(__name__)

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
SUBPROTOCOL = "trellis"  # offered beside "trellis.token.<key>" (runs.web)
RUN_LIST_BACKLOG = 500  # run.status events replayed to a run-list socket at most


def _after(scope: dict[str, Any]) -> int | None:
    """``?after=`` from the query string: a non-negative integer (0 when absent)."""
    from urllib.parse import parse_qs

    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("after") or ["0"]
    try:
        after = int(values[-1] or 0)
    except ValueError:
        return None
    return after if after >= 0 else None


class StreamConsumer(AsyncJsonWebsocketConsumer):
    """Accept, then refuse with a close code: a close before accept reaches the browser as a
    bare handshake failure, without the reason."""

    async def accept(self, subprotocol=None, headers=None) -> None:
        # A client that authenticates with a token subprotocol also offers "trellis"; the
        # handshake must choose one of the offered protocols (never echo the token).
        if subprotocol is None and SUBPROTOCOL in (self.scope.get("subprotocols") or ()):
            subprotocol = SUBPROTOCOL
        await super().accept(subprotocol, headers)

    async def checked_after(self) -> int | None:
        """``?after=`` for a signed-in user; otherwise the socket is refused (None)."""
        user = self.user
        if user is None or not user.is_authenticated:
            await self.refuse(CLOSE_UNAUTHENTICATED)
            return None
        after = _after(self.scope)
        if after is None:
            await self.refuse(CLOSE_BAD_REQUEST)
        return after

    async def refuse(self, code: int) -> None:
        await self.accept()
        await self.close(code=code)

    @property
    def user(self):
        return self.scope.get("user")


class RunEventsConsumer(StreamConsumer):
    """``/ws/runs/<id>/``: backlog after ``?after=``, then live events, each id once."""

    run_id: str
    cursor: EventCursor
    _recheck: asyncio.Task | None = None

    async def connect(self) -> None:
        self._recheck = None
        after = await self.checked_after()
        if after is None:
            return
        run_id = self.scope["url_route"]["kwargs"]["run_id"]
        run = await database_sync_to_async(visible_run)(self.user, run_id)
        if run is None:
            return await self.refuse(CLOSE_NOT_FOUND)
        self.run_id = str(run.pk)
        self.cursor = EventCursor(after)
        # Subscribe first, then read: a transaction committing in between is in the backlog
        # or in a live message (or both; the cursor sends it once).
        await self.channel_layer.group_add(run_group(self.run_id), self.channel_name)
        await self.accept()
        await self.catch_up()
        status = await database_sync_to_async(
            lambda: Run.objects.values_list("status", flat=True).get(pk=self.run_id)
        )()
        await self.send_json({"type": "synced", "last": self.cursor.last, "status": status})
        self._recheck = asyncio.ensure_future(self.recheck_forever())

    async def catch_up(self) -> None:
        """Send every event the table holds that this socket has not sent."""
        while True:
            events = await database_sync_to_async(new_events)(self.run_id, self.cursor)
            fresh = self.cursor.take(events)
            if fresh:
                await self.send_json({"type": "events", "events": fresh})
            if len(events) < BATCH_SIZE:
                return

    async def recheck_forever(self) -> None:
        """Re-read the table now and then, and renew the group membership: a notification
        lost to a Redis restart or a full channel delays an event, never drops it."""
        interval = settings.TRELLIS_STREAM_RECHECK_SECONDS
        while True:
            await asyncio.sleep(interval)
            try:
                await self.channel_layer.group_add(run_group(self.run_id), self.channel_name)
                await self.catch_up()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep the socket; the next pass retries
                logger.warning("run stream %s: recheck failed", self.run_id, exc_info=True)

    async def run_events(self, message: dict[str, Any]) -> None:
        """A group message (``type: run.events``) published after a commit."""
        fresh = self.cursor.take(message.get("events") or [])
        if fresh:
            await self.send_json({"type": "events", "events": fresh})

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Clients need not send anything; ``{"type": "ping"}`` gets a pong."""
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong", "last": self.cursor.last})

    async def disconnect(self, code: int) -> None:
        if self._recheck is not None:
            self._recheck.cancel()
        if getattr(self, "run_id", None):
            await self.channel_layer.group_discard(run_group(self.run_id), self.channel_name)


def _run_summaries(user, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The run-list rows (``run_view(run, row=True)``) of the runs among ``run_ids`` that
    ``user`` may see."""
    rows = with_needs_input(visible_runs(user).filter(pk__in=run_ids).select_related("owner"))
    return {str(run.pk): run_view(run, row=True) for run in rows}


def _run_list_backlog(user, after: int) -> list[dict[str, Any]]:
    runs = visible_runs(user).values("pk")
    waits = Q(kind="node.status") & (Q(data__state="WAITING") | Q(data__from="WAITING"))
    events = (
        RunEvent.objects.filter(Q(kind="run.status") | waits, id__gt=after, run__in=runs)
    ).order_by("-id")
    return [event_payload(event) for event in reversed(events[:RUN_LIST_BACKLOG])]


class RunListConsumer(StreamConsumer):
    """``/ws/runs/``: status changes of the runs the user may see (staff: all runs)."""

    SUMMARY_CACHE = 2000  # run ids remembered as not visible to this user

    async def connect(self) -> None:
        after = await self.checked_after()
        if after is None:
            return
        self.cursor = EventCursor(after)
        self.hidden: OrderedDict[str, None] = OrderedDict()
        await self.channel_layer.group_add(RUN_LIST_GROUP, self.channel_name)
        await self.accept()
        if after:
            backlog = await database_sync_to_async(_run_list_backlog)(self.user, after)
            await self.relay(backlog)
        await self.send_json({"type": "synced", "last": self.cursor.last})

    async def run_events(self, message: dict[str, Any]) -> None:
        await self.relay(message.get("events") or [])

    async def relay(self, events: list[dict[str, Any]]) -> None:
        candidates = [e for e in events if for_run_list(e) and e["run"] not in self.hidden]
        if not candidates:
            return
        wanted = sorted({e["run"] for e in candidates})
        summaries = await database_sync_to_async(_run_summaries)(self.user, wanted)
        for run_id in wanted:
            if run_id not in summaries:  # not this user's: skip it from now on without a query
                self.hidden[run_id] = None
                if len(self.hidden) > self.SUMMARY_CACHE:
                    self.hidden.popitem(last=False)
        fresh = self.cursor.take([e for e in candidates if e["run"] in summaries])
        if fresh:
            runs = {e["run"]: summaries[e["run"]] for e in fresh}
            await self.send_json({"type": "events", "events": fresh, "runs": runs})

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(RUN_LIST_GROUP, self.channel_name)
