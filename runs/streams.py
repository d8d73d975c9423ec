"""Live event streams: what the WebSocket consumers and the SSE view share, and the SSE view.

The event table is the source of truth; channel-layer messages (``runs.store.publish``, sent
after commit) only say "there is something new". Both transports therefore follow one recipe:

1. subscribe to the run's group *before* reading the backlog, so that a transaction that
   commits while the backlog is read is seen by one of the two (or both: see 2);
2. remember which ids were sent (``EventCursor``): an event that arrives both in the backlog
   and live is sent once, and no id is skipped;
3. re-read the table when notified, and every ``TRELLIS_STREAM_RECHECK_SECONDS`` anyway, so a
   lost notification (Redis restarted, a full channel) delays an event but never drops it.

SSE: ``GET /api/v1/runs/<id>/stream/`` (token or session auth), resuming after the
``Last-Event-ID`` header or ``?after=``. Each event is ``id: <cursor>``, ``event: <kind>``,
``data: <JSON payload>``; ``: keepalive`` comments fill silences; the response ends once the
run is finished and its final events (``run.result`` for a completed or failed run) are sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET

from .models import Run, RunEvent
from .rules.states import RUN_FINISHED
from .services.runs import visible_runs
from .services.shapes import event_payload
from .store.publish import run_group
from .web import json_error, request_token, user_for_token

logger = logging.getLogger(__name__)

# How long after a higher id was sent a lower one may still appear. Ids come from one
# sequence, but on PostgreSQL two transactions may commit in the opposite order of their ids,
# so a reader can see #101 before #100 exists. Transactions here last milliseconds; a minute
# is a wide margin, and costs only the ids remembered meanwhile.
LOOKBACK_SECONDS = 60.0
BATCH_SIZE = 500  # events per backlog query / WebSocket message
POLL_SECONDS = 0.25  # how often an SSE stream reads the table when no notification can come
RUN_LEVEL_KINDS = ("run.status", "run.retry", "run.result")


class EventCursor:
    """What one stream has sent of a run's events: no id twice, none skipped.

    ``last`` is the highest id sent, the resume point a client gives back (``after``,
    ``Last-Event-ID``). Ids at or below ``floor`` count as sent; above it the cursor remembers
    each id it sent. The floor trails ``last`` by ``lookback`` seconds (of this process's
    clock), so an event whose transaction committed late, with a lower id than one already
    sent, is still recognised as new.
    """

    def __init__(
        self,
        after: int = 0,
        *,
        lookback: float = LOOKBACK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.floor = after
        self.last = after
        self._lookback = lookback
        self._clock = clock
        self._sent: set[int] = set()
        self._marks: deque[tuple[float, int]] = deque()  # (when, last) after each send

    def is_new(self, event_id: int) -> bool:
        return event_id > self.floor and event_id not in self._sent

    def take(self, events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """The events not sent yet, in id order, now marked as sent."""
        self._advance_floor()
        fresh: list[dict[str, Any]] = []
        for event in sorted(events, key=lambda e: e["id"]):
            if self.is_new(event["id"]):
                self._sent.add(event["id"])
                fresh.append(event)
        if fresh:
            self.last = max(self.last, fresh[-1]["id"])
            self._marks.append((self._clock(), self.last))
        return fresh

    def _advance_floor(self) -> None:
        horizon = self._clock() - self._lookback
        moved = False
        while self._marks and self._marks[0][0] <= horizon:
            self.floor = max(self.floor, self._marks.popleft()[1])
            moved = True
        if moved:
            self._sent = {event_id for event_id in self._sent if event_id > self.floor}


def new_events(run_id: Any, cursor: EventCursor, limit: int = BATCH_SIZE) -> list[dict[str, Any]]:
    """Up to ``limit`` payloads of ``run_id``'s events the cursor has not sent (not marked:
    the caller passes them through ``cursor.take`` when it sends them). Synchronous."""
    ids = RunEvent.objects.filter(run_id=run_id, id__gt=cursor.floor).order_by("id")
    wanted = [event_id for event_id in ids.values_list("id", flat=True) if cursor.is_new(event_id)]
    if not wanted:
        return []
    rows = RunEvent.objects.filter(id__in=wanted[:limit]).order_by("id")
    return [event_payload(event) for event in rows]


def run_finished_with(status: str, events: list[dict[str, Any]]) -> bool:
    """Whether a stream may end: the run's status, read *before* ``events`` were, is final,
    and no run-level event in ``events`` (a retry that came in between) says otherwise.

    The transaction that finishes a run writes its final events with the status, so once the
    status reads final, the events read next include them.
    """
    if status not in RUN_FINISHED:
        return False
    run_level = [e for e in events if e["kind"] in RUN_LEVEL_KINDS]
    if not run_level:
        return True
    last = run_level[-1]
    return last["kind"] == "run.result" or (
        last["kind"] == "run.status" and last["data"].get("status") in RUN_FINISHED
    )


class Wakeup:
    """A channel-layer subscription used only as a doorbell: the rows are read from the table.

    Without a channel layer (or when Redis is down) ``wait`` degrades to sleeping, so callers
    fall back to polling at their recheck interval.
    """

    def __init__(self, group: str) -> None:
        self.group = group
        self.channel: str | None = None
        self._layer = None

    async def open(self) -> Wakeup:
        from channels.layers import get_channel_layer

        self._layer = get_channel_layer()
        if self._layer is None:
            return self
        try:
            self.channel = await self._layer.new_channel()
            await self._layer.group_add(self.group, self.channel)
        except Exception:  # noqa: BLE001 - the stream still works by polling
            logger.warning(
                "stream: cannot subscribe to %s; polling instead", self.group, exc_info=True
            )
            self.channel = None
        return self

    async def wait(self, timeout: float) -> bool:
        """Wait for a notification or ``timeout`` seconds; True if notified."""
        if self.channel is None:
            await asyncio.sleep(min(timeout, POLL_SECONDS))
            return False
        try:
            await asyncio.wait_for(self._layer.receive(self.channel), timeout)
        except TimeoutError:
            return False
        except Exception:  # noqa: BLE001 - lost subscription: poll from now on
            logger.warning("stream: notifications for %s lost; polling", self.group, exc_info=True)
            self.channel = None
            return False
        return True

    async def close(self) -> None:
        if self.channel is not None:
            try:
                await self._layer.group_discard(self.group, self.channel)
            except Exception:  # noqa: BLE001 - the group entry expires on its own
                logger.info("stream: could not leave %s", self.group, exc_info=True)
            self.channel = None


# --------------------------------------------------------------------------------------
# Access shared with the WebSocket side


def visible_run(user, run_id: Any) -> Run | None:
    """The run if ``user`` may see it (owner or staff), else None. Synchronous."""
    if user is None or not user.is_authenticated:
        return None
    return visible_runs(user).filter(pk=run_id).first()


async def authenticated_user(request: HttpRequest):
    """The request's user by token (header or query) or session; None when anonymous or the
    token is invalid (a token that does not match is never replaced by the session)."""
    key = request_token(request)
    if key is not None:
        return await database_sync_to_async(user_for_token)(key)
    user = await request.auser()
    return user if user.is_authenticated else None


# --------------------------------------------------------------------------------------
# SSE


def sse_frame(event: dict[str, Any], cursor_id: int) -> str:
    """One event as an SSE message. ``id:`` is the stream's resume point: the event's own id,
    or a higher one already sent when a late commit delivers ids out of order (so that a
    reconnect with ``Last-Event-ID`` never asks for an event twice)."""
    data = json.dumps(event, ensure_ascii=False, separators=(",", ":"), default=str)
    return f"id: {cursor_id}\nevent: {event['kind']}\ndata: {data}\n\n"


def _resume_point(request: HttpRequest) -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.GET.get("after") or "0"
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value >= 0 else None


def _stream_state(run_id: Any, cursor: EventCursor) -> tuple[str, list[dict[str, Any]]]:
    """The run's status, then its unsent events (in that order: see ``run_finished_with``)."""
    status = Run.objects.values_list("status", flat=True).get(pk=run_id)
    return status, new_events(run_id, cursor)


read_stream_state = database_sync_to_async(_stream_state)


async def sse_events(run_id: Any, after: int) -> AsyncIterator[str]:
    """The SSE body: backlog after ``after``, then live events, heartbeats in silences."""
    heartbeat = settings.TRELLIS_STREAM_HEARTBEAT_SECONDS
    recheck = settings.TRELLIS_STREAM_RECHECK_SECONDS
    cursor = EventCursor(after)
    wakeup = await Wakeup(run_group(run_id)).open()  # subscribed before the first read
    try:
        yield "retry: 2000\n\n"  # reconnect after 2 s (EventSource's default is ~3 s)
        last_write = time.monotonic()
        while True:
            status, events = await read_stream_state(run_id, cursor)
            resume_point = cursor.last
            fresh = cursor.take(events)
            if fresh:
                frames = []
                for event in fresh:
                    resume_point = max(resume_point, event["id"])
                    frames.append(sse_frame(event, resume_point))
                yield "".join(frames)
                last_write = time.monotonic()
                if len(events) >= BATCH_SIZE:
                    continue  # more backlog waiting: read again at once
            if run_finished_with(status, fresh):
                return
            idle = time.monotonic() - last_write
            if idle >= heartbeat:
                yield ": keepalive\n\n"
                last_write, idle = time.monotonic(), 0.0
            await wakeup.wait(max(0.01, min(recheck, heartbeat - idle)))
    finally:
        await wakeup.close()


def _has_events_after(run_id: Any, after: int) -> bool:
    return RunEvent.objects.filter(run_id=run_id, id__gt=after).exists()


@require_GET
async def run_stream(request: HttpRequest, run_id) -> HttpResponse:
    """``GET /api/v1/runs/<id>/stream/``: the run's events as server-sent events."""
    user = await authenticated_user(request)
    if user is None:
        return json_error(
            "Authentication credentials were not provided or are invalid.",
            401,
            headers={"WWW-Authenticate": "Token"},
        )
    run = await database_sync_to_async(visible_run)(user, run_id)
    if run is None:
        return json_error("Not found.", 404)
    after = _resume_point(request)
    if after is None:
        return json_error("Last-Event-ID and after must be non-negative integers.", 400)
    if run.status in RUN_FINISHED and not await database_sync_to_async(_has_events_after)(
        run.pk, after
    ):
        # Nothing more will come: 204 tells an EventSource to stop reconnecting.
        return HttpResponse(status=204)
    response = StreamingHttpResponse(sse_events(run.pk, after), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    return response
