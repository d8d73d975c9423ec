"""The API's routes as request descriptions, shared by the sync and the async client.

A :class:`Call` says what to send and how to read the answer; a client only sends it
(``Client._send`` or ``AsyncClient._send``), so each route is written once. Paged routes
(cursor pages, or the event history's ``after``) fetch page after page through
:meth:`Call.collect`. :class:`FollowState` is the SSE follower's memory: the resume point,
the ids already given, the back-off after a dropped connection.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx

from .errors import ConnectionFailed, TrellisError, error_for
from .models import (
    RUN_FINISHED,
    Event,
    PushResult,
    Run,
    RunResult,
    Session,
    ValidationResult,
    Version,
    Worker,
    Workflow,
)

API = "/api/v1"
EVENT_PAGE = 1000  # the event history's page (the server allows up to 5000)
RUN_PAGE_MAX = 500  # the run list's largest page
#: An SSE stream is quiet between events (the server sends a keepalive comment every
#: TRELLIS_STREAM_HEARTBEAT_SECONDS, 15 s by default): reading waits longer than that.
STREAM_READ_TIMEOUT = 60.0


@dataclass
class Call:
    """One request, and how its answer becomes a result.

    ``paging``: ``"cursor"`` follows the ``next`` cursor of a DRF cursor page, ``"after"``
    pages the event history by its last id, ``"list"`` reads a ``{"results": [...]}`` answer
    that has no pages; ``limit`` caps the items gathered.
    """

    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    parse: Callable[[Any], Any] = lambda body: body
    paging: str = ""
    limit: int | None = None
    items: list[Any] = field(default_factory=list)

    def request(self) -> dict[str, Any]:
        """Keyword arguments of ``httpx.Client.request`` for this call."""
        return {
            "method": self.method,
            "url": self.path,
            "params": self.params or None,
            "json": self.json,
            "content": self.content,
            "headers": self.headers or None,
        }

    def collect(self, body: Any) -> bool:
        """Take an answer; True when another page is to be fetched (``params`` now ask for it)."""
        if not self.paging:
            self.items = body
            return False
        page = body.get("results", []) if isinstance(body, dict) else []
        self.items.extend(page)
        if self.limit is not None and len(self.items) >= self.limit:
            del self.items[self.limit :]
            return False
        if self.paging == "list":  # one page holds them all
            return False
        if self.paging == "after":
            if len(page) < EVENT_PAGE or not page:
                return False
            self.params["after"] = page[-1]["id"]
            return True
        cursor = parse_qs(urlsplit(body.get("next") or "").query).get("cursor")
        if not cursor:
            return False
        self.params["cursor"] = cursor[0]
        return True

    def result(self) -> Any:
        if self.paging:
            return [self.parse(item) for item in self.items]
        return self.parse(self.items)


def read_answer(response: httpx.Response) -> Any:
    """The decoded body of an answer (None for 204), or the matching ApiError raised."""
    if response.status_code == 204:
        return None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400:
        raise error_for(response.status_code, body, response.text)
    if body is None:
        raise error_for(
            response.status_code, None, "not JSON (is the URL a Trellis server?) " + response.text
        )
    return body


def network_error(base_url: Any, exc: httpx.TransportError) -> ConnectionFailed:
    """A network failure as ConnectionFailed, with the reason in words."""
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        reason = f"timed out ({reason})"
    return ConnectionFailed(str(base_url), reason)


# --------------------------------------------------------------------------------------
# Workflows


def spec_body(spec: Any) -> dict[str, Any]:
    """The request body for a spec given as a dict, an object with ``to_spec()`` (a
    workflow written in Python), a file path (``Path``; ``.json`` is sent as JSON, anything
    else as YAML) or the document's text (``str``/``bytes``, JSON or YAML)."""
    if hasattr(spec, "to_spec") and callable(spec.to_spec):
        spec = spec.to_spec()
    if isinstance(spec, Mapping):
        return {"json": dict(spec)}
    if isinstance(spec, os.PathLike):
        path = Path(spec)
        kind = "application/json" if path.suffix.lower() == ".json" else "application/yaml"
        return {"content": path.read_bytes(), "headers": {"Content-Type": kind}}
    if isinstance(spec, str | bytes):
        content = spec.encode() if isinstance(spec, str) else spec
        return {"content": content, "headers": {"Content-Type": "application/yaml"}}
    raise TypeError(f"a spec is a dict, a Path, text or has to_spec(), not {type(spec).__name__}")


def push_workflow(spec: Any) -> Call:
    return Call("POST", f"{API}/workflows/", parse=PushResult.from_dict, **spec_body(spec))


def validate_workflow(spec: Any) -> Call:
    return Call(
        "POST", f"{API}/workflows/validate/", parse=ValidationResult.from_dict, **spec_body(spec)
    )


def list_workflows() -> Call:
    return Call("GET", f"{API}/workflows/", parse=Workflow.from_dict, paging="cursor")


def get_workflow(name: str) -> Call:
    return Call("GET", f"{API}/workflows/{name}/", parse=Workflow.from_dict)


def list_versions(name: str) -> Call:
    return Call("GET", f"{API}/workflows/{name}/versions/", parse=Version.from_dict, paging="list")


def get_version(name: str, number: int) -> Call:
    return Call("GET", f"{API}/workflows/{name}/versions/{number}/", parse=Version.from_dict)


# --------------------------------------------------------------------------------------
# Runs and events


def start_run(
    workflow: str,
    inputs: Any = None,
    *,
    params: dict[str, Any] | None = None,
    version: int | None = None,
    session: str | None = None,
    wait: bool = False,
    timeout: float | None = None,
) -> Call:
    body: dict[str, Any] = {"workflow": workflow, "inputs": inputs or {}, "params": params or {}}
    optional = {"version": version, "session": session, "timeout": timeout}
    body.update({key: value for key, value in optional.items() if value is not None})
    if wait:
        body["wait"] = True
    return Call("POST", f"{API}/runs/", json=body, parse=Run.from_dict)


def list_runs(
    *,
    status: str | None = None,
    workflow: str | None = None,
    session: str | None = None,
    created_after: datetime | str | None = None,
    needs_input: bool | None = None,
    limit: int | None = 100,
) -> Call:
    if isinstance(created_after, datetime):
        created_after = created_after.isoformat()
    filters = {"status": status, "workflow": workflow, "session": session}
    params = {key: value for key, value in filters.items() if value}
    if created_after:
        params["created_after"] = created_after
    if needs_input is not None:
        params["needs_input"] = "true" if needs_input else "false"
    params["limit"] = min(limit or RUN_PAGE_MAX, RUN_PAGE_MAX)
    return Call(
        "GET", f"{API}/runs/", params=params, parse=Run.from_dict, paging="cursor", limit=limit
    )


def get_run(run_id: str) -> Call:
    return Call("GET", f"{API}/runs/{run_id}/", parse=Run.from_dict)


def control_run(run_id: str, action: str) -> Call:
    """pause, resume, cancel or retry (a Conflict when the run's state does not allow it)."""
    return Call("POST", f"{API}/runs/{run_id}/{action}/", parse=Run.from_dict)


def node_action(run_id: str, node: str, action: str, body: dict[str, Any]) -> Call:
    """clear, mark or skip one node; answers the run with its nodes (a Conflict when the
    node's or the run's state does not allow it)."""
    path = f"{API}/runs/{run_id}/nodes/{quote(node, safe='')}/{action}/"
    return Call("POST", path, json=body, parse=Run.from_dict)


def run_results(run_id: str) -> Call:
    return Call("GET", f"{API}/runs/{run_id}/results/", parse=RunResult.from_dict)


def send_event(run_id: str, node: str, data: Any = None) -> Call:
    body = {"node": node, "data": {} if data is None else data}
    return Call("POST", f"{API}/runs/{run_id}/events/", json=body)


def reject_event(run_id: str, node: str, reason: str) -> Call:
    """Fail the WAITING ``wait_for_event`` node with ``reason`` (a Conflict when it is not
    waiting)."""
    body = {"node": node, "reject": reason}
    return Call("POST", f"{API}/runs/{run_id}/events/", json=body)


def events(run_id: str, after: int = 0) -> Call:
    params = {"after": after, "limit": EVENT_PAGE}
    return Call(
        "GET", f"{API}/runs/{run_id}/events/", params=params, parse=Event.from_dict, paging="after"
    )


# --------------------------------------------------------------------------------------
# Sessions and workers


def list_sessions() -> Call:
    return Call("GET", f"{API}/sessions/", parse=Session.from_dict, paging="list")


def create_session(name: str = "", state: dict[str, Any] | None = None) -> Call:
    body = {"name": name, "state": state or {}}
    return Call("POST", f"{API}/sessions/", json=body, parse=Session.from_dict)


def get_session(session_id: str) -> Call:
    return Call("GET", f"{API}/sessions/{session_id}/", parse=Session.from_dict)


def update_session(
    session_id: str,
    state: dict[str, Any] | None = None,
    *,
    name: str | None = None,
    replace: bool = False,
) -> Call:
    body: dict[str, Any] = {}
    if state is not None:
        body.update(state=state, replace=replace)
    if name is not None:
        body["name"] = name
    return Call("PATCH", f"{API}/sessions/{session_id}/", json=body, parse=Session.from_dict)


def list_workers() -> Call:
    return Call("GET", f"{API}/workers/", parse=Worker.from_dict, paging="list")


# --------------------------------------------------------------------------------------
# Following a run's SSE stream


class FollowState:
    """What a follower knows across reconnections.

    ``resume_point`` is the last SSE ``id:`` received, sent back as ``Last-Event-ID``, so the
    server resumes after it: nothing is lost. Ids already given are skipped, so nothing is
    given twice either, even if a server repeated one. After a drop the follower waits
    :meth:`dropped` seconds (doubling from ``first_delay`` up to ``max_delay``, reset by any
    new event) and gives up with ConnectionFailed after ``max_retries`` drops in a row with
    no new event.
    """

    def __init__(
        self,
        base_url: Any,
        run_id: str,
        after: int = 0,
        *,
        max_retries: int = 8,
        first_delay: float = 0.2,
        max_delay: float = 5.0,
    ) -> None:
        self.base_url = base_url
        self.path = f"{API}/runs/{run_id}/stream/"
        self.resume_point = after
        self.seen: set[int] = set()
        self.final_seen = False
        self.failures = 0
        self.max_retries = max_retries
        self.first_delay = first_delay
        self.max_delay = max_delay

    def request(self, timeout: float) -> dict[str, Any]:
        """Keyword arguments of ``connect_sse`` after the client: resume where it stopped."""
        headers = {"Last-Event-ID": str(self.resume_point)} if self.resume_point else {}
        return {
            "method": "GET",
            "url": self.path,
            "headers": headers,
            "timeout": httpx.Timeout(timeout, read=max(timeout, STREAM_READ_TIMEOUT)),
        }

    def accept(self, sse_id: str, data: str) -> Event | None:
        """The event of one SSE message, or None when it was already given."""
        if sse_id:
            self.resume_point = max(self.resume_point, int(sse_id))
        if not data:  # ``retry:`` advice, not an event
            return None
        try:
            event = Event.from_dict(json.loads(data))
        except ValueError:
            message = f"the event stream sent a message that is not JSON: {data[:80]}"
            raise TrellisError(message) from None
        if event.id in self.seen:
            return None
        self.seen.add(event.id)
        self.failures = 0
        if event.kind == "run.result" or (
            event.kind == "run.status" and (event.data or {}).get("status") in RUN_FINISHED
        ):
            self.final_seen = True
        elif event.kind in ("run.status", "run.retry"):
            self.final_seen = False  # retried: more will come
        return event

    def ended(self) -> bool:
        """The stream closed cleanly: done unless no final event was seen (then reconnect;
        the server answers 204 if the run is finished with nothing newer)."""
        return self.final_seen

    def dropped(self, exc: httpx.TransportError) -> float:
        """Seconds to wait before reconnecting; ConnectionFailed when retries are spent."""
        self.failures += 1
        if self.failures > self.max_retries:
            raise network_error(self.base_url, exc) from exc
        return min(self.first_delay * 2 ** (self.failures - 1), self.max_delay)
