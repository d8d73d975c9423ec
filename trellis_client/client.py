"""``Client`` (sync) and ``AsyncClient`` (async) for Trellis's REST API, on httpx.

Both share every route through :class:`Resources`: a method builds a :class:`~.calls.Call`
and hands it to ``_call``, which the sync client runs at once and the async client returns as
a coroutine (``await client.get_run(id)``). Only the SSE follower is written twice, as a
generator and an async generator around the same :class:`~.calls.FollowState`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
from httpx_sse import aconnect_sse, connect_sse

from . import calls
from .config import resolve
from .models import Event

__all__ = ["AsyncClient", "Client"]


class Resources:
    """The API's routes, written once for both clients.

    Workflows: :meth:`push_workflow`, :meth:`validate_workflow`, :meth:`list_workflows`,
    :meth:`get_workflow`, :meth:`list_versions`. Runs: :meth:`start_run`, :meth:`list_runs`,
    :meth:`get_run`, :meth:`pause_run`, :meth:`resume_run`, :meth:`cancel_run`,
    :meth:`retry_run`, :meth:`run_results`, :meth:`send_event`, :meth:`reject_event`,
    :meth:`events`; node actions
    :meth:`clear_node`, :meth:`mark_node`, :meth:`skip_node`. Sessions and
    workers: :meth:`list_sessions`, :meth:`create_session`, :meth:`get_session`,
    :meth:`update_session`, :meth:`list_workers`.
    """

    def _call(self, call: calls.Call) -> Any:
        raise NotImplementedError

    # Workflows

    def push_workflow(self, spec: Any):
        """Create a workflow or add a version: ``spec`` is a dict, a Python workflow (its
        ``to_spec()``), a ``Path`` to a JSON or YAML file, or the document's text.
        A :class:`PushResult` (``created`` False when identical to the latest version)."""
        return self._call(calls.push_workflow(spec))

    def validate_workflow(self, spec: Any):
        """Dry-run a spec (as for :meth:`push_workflow`): a :class:`ValidationResult`."""
        return self._call(calls.validate_workflow(spec))

    def list_workflows(self):
        """Every workflow this token may see (:class:`Workflow`, without specs)."""
        return self._call(calls.list_workflows())

    def get_workflow(self, name: str, version: int | None = None):
        """The latest version as a :class:`Workflow` with its spec, or, given ``version``,
        that :class:`Version`."""
        if version is None:
            return self._call(calls.get_workflow(name))
        return self._call(calls.get_version(name, version))

    def list_versions(self, name: str):
        """The workflow's versions, newest first (:class:`Version`, without specs)."""
        return self._call(calls.list_versions(name))

    # Runs

    def start_run(self, workflow: str, inputs: Any = None, **options: Any):
        """Start a run of ``workflow``: a :class:`Run`. Options: ``params``, ``version``,
        ``session``, ``wait`` (answer when finished or after ``timeout`` seconds)."""
        return self._call(calls.start_run(workflow, inputs, **options))

    def list_runs(self, **filters: Any):
        """Runs, newest first: filters ``status``, ``workflow``, ``session``,
        ``created_after`` (a datetime or ISO string), ``needs_input`` (True: RUNNING with a
        WAITING node); ``limit`` (100; None for all)."""
        return self._call(calls.list_runs(**filters))

    def get_run(self, run_id: str):
        """A :class:`Run` with its nodes and result."""
        return self._call(calls.get_run(run_id))

    def pause_run(self, run_id: str):
        """Pause (:class:`Conflict` when the run is not running)."""
        return self._call(calls.control_run(run_id, "pause"))

    def resume_run(self, run_id: str):
        return self._call(calls.control_run(run_id, "resume"))

    def cancel_run(self, run_id: str):
        return self._call(calls.control_run(run_id, "cancel"))

    def retry_run(self, run_id: str):
        """Re-run the failed and cancelled nodes and what depends on them."""
        return self._call(calls.control_run(run_id, "retry"))

    def clear_node(self, run_id: str, node: str, *, downstream: bool = True):
        """Run a finished node again (and, with ``downstream``, every node below it); the
        updated :class:`Run`."""
        return self._call(calls.node_action(run_id, node, "clear", {"downstream": downstream}))

    def mark_node(self, run_id: str, node: str, state: str = "COMPLETED", *, output: Any = None,
                  reason: str | None = None):  # fmt: skip
        """Set a node COMPLETED with ``output`` or FAILED with ``reason``, as if it had run."""
        body: dict[str, Any] = {"state": state}
        if state == "FAILED":
            body["reason"] = reason
        else:
            body["output"] = output
        return self._call(calls.node_action(run_id, node, "mark", body))

    def skip_node(self, run_id: str, node: str):
        """Set a pending, ready, queued or failed node SKIPPED."""
        return self._call(calls.node_action(run_id, node, "skip", {}))

    def run_results(self, run_id: str):
        """A :class:`RunResult` (``completed`` once the run is finished)."""
        return self._call(calls.run_results(run_id))

    def send_event(self, run_id: str, node: str, data: Any = None):
        """Deliver ``data`` to the WAITING ``wait_for_event`` node ``node``:
        ``{"node": id, "state": ...}``."""
        return self._call(calls.send_event(run_id, node, data))

    def reject_event(self, run_id: str, node: str, reason: str):
        """Reject what the WAITING ``wait_for_event`` node ``node`` asks for: it fails with
        ``reason`` (error type ``Rejected``) and its trigger rules decide what follows.
        ``{"node": id, "state": "FAILED"}``."""
        return self._call(calls.reject_event(run_id, node, reason))

    def events(self, run_id: str, after: int = 0):
        """The run's event history after the event id ``after`` (:class:`Event`, id order)."""
        return self._call(calls.events(run_id, after))

    # Sessions and workers

    def list_sessions(self):
        return self._call(calls.list_sessions())

    def create_session(self, name: str = "", state: dict[str, Any] | None = None):
        return self._call(calls.create_session(name, state))

    def get_session(self, session_id: str):
        return self._call(calls.get_session(session_id))

    def update_session(self, session_id: str, state: dict[str, Any] | None = None, **changes):
        """Merge ``state`` into the session's (``replace=True`` replaces it); ``name=``."""
        return self._call(calls.update_session(session_id, state, **changes))

    def list_workers(self):
        """Workers with their liveness (:class:`Worker`)."""
        return self._call(calls.list_workers())


class Connection(Resources):
    """Where and who, shared by both clients: ``url`` and ``token``, else a ``profile``,
    else TRELLIS_URL / TRELLIS_TOKEN (:func:`trellis_client.config.resolve`); ``timeout``
    seconds per request; other keywords go to the httpx client (``transport``, ``verify`` …).
    """

    http_class: type = httpx.Client

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        profile: str | None = None,
        timeout: float = 30.0,
        **httpx_options: Any,
    ) -> None:
        target = resolve(url, token, profile)
        headers = {"Accept": "application/json", "User-Agent": "trellis-client"}
        if target.token:
            headers["Authorization"] = f"Token {target.token}"
        self.url = target.url
        self.timeout = timeout
        self.http = self.http_class(
            base_url=target.url, headers=headers, timeout=timeout, **httpx_options
        )


class Client(Connection):
    """The synchronous client.

    ``Client()`` reads ``TRELLIS_URL`` and ``TRELLIS_TOKEN`` (or a saved profile: see
    :mod:`trellis_client.config`); ``Client(url, token)`` says them. Errors are
    :class:`~.errors.ApiError` subclasses and :class:`~.errors.ConnectionFailed`.
    Use it as a context manager, or call :meth:`close`.
    """

    http_class = httpx.Client

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _send(self, call: calls.Call) -> Any:
        try:
            response = self.http.request(**call.request())
        except httpx.TransportError as exc:
            raise calls.network_error(self.url, exc) from exc
        return calls.read_answer(response)

    def _call(self, call: calls.Call) -> Any:
        while call.collect(self._send(call)):
            pass
        return call.result()

    def follow(self, run_id: str, after: int = 0, **retry: Any) -> Iterator[Event]:
        """The run's events after ``after``, live, until the run is finished: the backlog
        first, then each event as it happens. A dropped connection is resumed from the last
        event received (``Last-Event-ID``), so no event is lost or given twice."""
        state = calls.FollowState(self.url, run_id, after, **retry)
        while True:
            try:
                with connect_sse(self.http, **state.request(self.timeout)) as source:
                    if source.response.status_code != 200:
                        source.response.read()
                        calls.read_answer(source.response)
                        return  # 204: finished, nothing newer
                    for message in source.iter_sse():
                        if (event := state.accept(message.id, message.data)) is not None:
                            yield event
                if state.ended():
                    return
            except httpx.TransportError as exc:
                time.sleep(state.dropped(exc))


class AsyncClient(Connection):
    """The asynchronous client: the same methods as :class:`Client`, awaited
    (``await client.get_run(id)``), and ``async for event in client.follow(id)``."""

    http_class = httpx.AsyncClient

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _send(self, call: calls.Call) -> Any:
        try:
            response = await self.http.request(**call.request())
        except httpx.TransportError as exc:
            raise calls.network_error(self.url, exc) from exc
        return calls.read_answer(response)

    async def _call(self, call: calls.Call) -> Any:
        while call.collect(await self._send(call)):
            pass
        return call.result()

    async def follow(self, run_id: str, after: int = 0, **retry: Any) -> AsyncIterator[Event]:
        """As :meth:`Client.follow`, asynchronously."""
        state = calls.FollowState(self.url, run_id, after, **retry)
        while True:
            try:
                async with aconnect_sse(self.http, **state.request(self.timeout)) as source:
                    if source.response.status_code != 200:
                        await source.response.aread()
                        calls.read_answer(source.response)
                        return
                    async for message in source.aiter_sse():
                        if (event := state.accept(message.id, message.data)) is not None:
                            yield event
                if state.ended():
                    return
            except httpx.TransportError as exc:
                await asyncio.sleep(state.dropped(exc))
