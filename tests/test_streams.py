"""Live streams: the WebSocket consumers (in process, through the real ASGI application) and
SSE (a real daphne): backlog, live events, resume with nothing missed or repeated, refusals."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import requests
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from rest_framework.authtoken.models import Token

from runs.engine.scheduler import create_run
from runs.models import RunEvent
from runs.store.writes import record_event
from runs.streams import EventCursor, run_finished_with
from tests.conftest import wait_for_run
from tests.specs import create, py, save, start

ORIGIN = (b"origin", b"http://localhost")

# --------------------------------------------------------------------------------------
# Pure: the cursor and the end-of-stream rule


def payload(event_id: int, kind: str = "node.log", **data) -> dict:
    return {"id": event_id, "run": "r", "ts": None, "kind": kind, "node": "", "data": data}


def test_cursor_sends_each_id_once_in_order():
    cursor = EventCursor(after=10)
    assert [e["id"] for e in cursor.take([payload(12), payload(11), payload(9)])] == [11, 12]
    assert cursor.take([payload(11), payload(12), payload(13)]) == [payload(13)]
    assert cursor.last == 13


def test_cursor_accepts_a_lower_id_committed_late_within_the_lookback():
    now = [0.0]
    cursor = EventCursor(after=0, lookback=5.0, clock=lambda: now[0])
    cursor.take([payload(101)])  # #100's transaction has not committed yet
    now[0] = 1.0
    assert [e["id"] for e in cursor.take([payload(100), payload(101)])] == [100]
    assert cursor.last == 101
    now[0] = 10.0  # after the lookback the floor moves up and the id memory is dropped
    cursor.take([])
    assert cursor.floor == 101 and cursor.take([payload(100), payload(101)]) == []


def test_stream_ends_only_when_the_run_is_finished_and_not_retried():
    result = payload(5, "run.result", status="FAILED")
    assert run_finished_with("FAILED", [payload(4), result])
    assert run_finished_with("COMPLETED", [])
    assert not run_finished_with("RUNNING", [result])
    retried = [result, payload(6, "run.status", status="RUNNING"), payload(7, "run.retry")]
    assert not run_finished_with("FAILED", retried)  # status read before the retry's events
    assert run_finished_with("CANCELLED", [payload(8, "run.status", status="CANCELLED")])


# --------------------------------------------------------------------------------------
# WebSocket, in process


transactional = pytest.mark.django_db(transaction=True)

SPEC_NODES = [
    {"id": "a", "handler": "input"},
    {"id": "b", "handler": "output", "dependencies": ["a"]},
]


def pending_run(owner):
    """A PENDING run (not triggered): events are added by hand, no worker needed."""
    return create_run(save(owner, SPEC_NODES, prefix="ws"), owner)


def log(run, n: int) -> list[int]:
    """Record ``n`` node.log events (each published at once: no transaction is open)."""
    return [
        record_event(run.pk, "node.log", {"message": f"line {i}"}, node_id="a").id for i in range(n)
    ]


def ids_of(run, after: int = 0) -> list[int]:
    return list(RunEvent.objects.filter(run=run, id__gt=after).values_list("id", flat=True))


def connect(path: str, *, token: str | None = None, cookie: str | None = None, origin=True):
    from orchestration.asgi import application

    headers = [ORIGIN] if origin else []
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    if token:
        path += ("&" if "?" in path else "?") + f"token={token}"
    return WebsocketCommunicator(application, path, headers=headers)


async def receive_until_synced(comm) -> tuple[list[dict], dict]:
    events = []
    while True:
        message = await comm.receive_json_from(timeout=5)
        if message["type"] == "synced":
            return events, message
        assert message["type"] == "events"
        events += message["events"]


async def receive_events(comm, count: int, timeout: float = 5) -> list[dict]:
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(events) < count:
        message = await comm.receive_json_from(timeout=max(0.1, deadline - time.monotonic()))
        assert message["type"] == "events"
        events += message["events"]
    return events


@transactional
def test_websocket_sends_backlog_then_live_events_each_once(user):
    run = pending_run(user)
    first = log(run, 3)
    token = Token.objects.create(user=user).key

    async def scenario():
        comm = connect(f"/ws/runs/{run.pk}/?after={first[0]}", token=token)
        connected, _ = await comm.connect()
        assert connected
        backlog, synced = await receive_until_synced(comm)
        assert [e["id"] for e in backlog] == first[1:]
        assert synced == {"type": "synced", "last": first[-1], "status": "PENDING"}
        live = await async_log(run, 4)
        received = await receive_events(comm, 4)
        assert [e["id"] for e in received] == live
        assert received[0]["kind"] == "node.log" and received[0]["node"] == "a"
        assert await comm.receive_nothing(timeout=0.3)
        await comm.disconnect()

    async_to_sync(scenario)()


async def async_log(run, n):
    from channels.db import database_sync_to_async

    return await database_sync_to_async(log)(run, n)


@transactional
def test_websocket_resume_after_disconnect_gets_exactly_the_missed_events(user, user_client):
    run = pending_run(user)
    cookie = f"sessionid={user_client.cookies['sessionid'].value}"

    async def scenario():
        comm = connect(f"/ws/runs/{run.pk}/", cookie=cookie)
        assert (await comm.connect())[0]
        seen, synced = await receive_until_synced(comm)
        await async_log(run, 2)
        seen += await receive_events(comm, 2)
        await comm.disconnect()
        last = max(e["id"] for e in seen)

        missed = await async_log(run, 5)  # while no socket is open

        comm = connect(f"/ws/runs/{run.pk}/?after={last}", cookie=cookie)
        assert (await comm.connect())[0]
        resumed, synced = await receive_until_synced(comm)
        assert [e["id"] for e in resumed] == missed
        assert synced["last"] == missed[-1]
        await comm.disconnect()
        return [e["id"] for e in seen] + [e["id"] for e in resumed]

    everything = async_to_sync(scenario)()
    assert everything == ids_of(run)


@transactional
def test_websocket_event_racing_the_backlog_is_sent_once(user):
    """An event published while the consumer reads its backlog arrives twice (table and
    group); the client sees it once."""
    from channels.layers import get_channel_layer

    from runs.store.publish import event_payload, run_group

    run = pending_run(user)
    token = Token.objects.create(user=user).key

    async def scenario():
        comm = connect(f"/ws/runs/{run.pk}/", token=token)
        assert (await comm.connect())[0]
        backlog, synced = await receive_until_synced(comm)
        # Replay an old event to the group, as a late duplicate notification would.
        old = await database_sync_to_async_first(run)
        await get_channel_layer().group_send(
            run_group(run.pk), {"type": "run.events", "events": [event_payload(old)]}
        )
        assert await comm.receive_nothing(timeout=0.3)
        await comm.disconnect()
        return backlog

    backlog = async_to_sync(scenario)()
    assert [e["id"] for e in backlog] == ids_of(run)


@transactional
def test_websocket_event_whose_notification_was_lost_still_arrives(user, settings):
    """A row written without a channel-layer message (Redis restarted, a full channel) is
    found by the consumer's periodic re-read."""
    settings.TRELLIS_STREAM_RECHECK_SECONDS = 0.2
    run = pending_run(user)
    token = Token.objects.create(user=user).key

    async def scenario():
        from channels.db import database_sync_to_async

        comm = connect(f"/ws/runs/{run.pk}/", token=token)
        assert (await comm.connect())[0]
        await receive_until_synced(comm)
        silent = await database_sync_to_async(
            lambda: RunEvent.objects.create(run=run, kind="node.log", node_id="a", data={"n": 1})
        )()
        received = await receive_events(comm, 1, timeout=3)
        assert [e["id"] for e in received] == [silent.id]
        assert await comm.receive_nothing(timeout=0.5)  # and only once
        await comm.disconnect()

    async_to_sync(scenario)()


async def database_sync_to_async_first(run):
    from channels.db import database_sync_to_async

    return await database_sync_to_async(lambda: RunEvent.objects.filter(run=run).first())()


@transactional
@pytest.mark.parametrize(
    "who, code",
    [("anonymous", 4401), ("bad-token", 4401), ("other-user", 4404), ("unknown-run", 4404)],
)
def test_websocket_refuses_with_a_policy_code(user, other_user, who, code):
    run = pending_run(user)
    token = None
    run_id = run.pk
    if who == "bad-token":
        token = "not-a-token"
    elif who == "other-user":
        token = Token.objects.create(user=other_user).key
    elif who == "unknown-run":
        token = Token.objects.create(user=user).key
        run_id = uuid.uuid4()

    async def scenario():
        comm = connect(f"/ws/runs/{run_id}/", token=token)
        connected, _ = await comm.connect()
        assert connected  # accepted, then closed with the reason
        message = await comm.receive_output(timeout=5)
        assert message == {"type": "websocket.close", "code": code}

    async_to_sync(scenario)()


@transactional
def test_websocket_without_origin_header_is_rejected(user):
    run = pending_run(user)
    token = Token.objects.create(user=user).key

    async def scenario():
        comm = connect(f"/ws/runs/{run.pk}/", token=token, origin=False)
        connected, _ = await comm.connect()
        assert not connected

    async_to_sync(scenario)()


@transactional
def test_websocket_bad_after_is_refused(user):
    run = pending_run(user)
    token = Token.objects.create(user=user).key

    async def scenario():
        comm = connect(f"/ws/runs/{run.pk}/?after=abc", token=token)
        assert (await comm.connect())[0]
        assert (await comm.receive_output(timeout=5))["code"] == 4400

    async_to_sync(scenario)()


@transactional
def test_run_list_socket_relays_only_the_users_runs(user, other_user, staff_user):
    token = Token.objects.create(user=user).key
    staff_token = Token.objects.create(user=staff_user).key

    async def scenario():
        from channels.db import database_sync_to_async

        mine_socket = connect("/ws/runs/", token=token)
        staff_socket = connect("/ws/runs/", token=staff_token)
        assert (await mine_socket.connect())[0] and (await staff_socket.connect())[0]
        await receive_until_synced(mine_socket)
        await receive_until_synced(staff_socket)
        theirs = await database_sync_to_async(pending_run)(other_user)
        mine = await database_sync_to_async(pending_run)(user)
        message = await mine_socket.receive_json_from(timeout=5)
        assert [e["run"] for e in message["events"]] == [str(mine.pk)]
        summary = message["runs"][str(mine.pk)]
        assert summary["status"] == "PENDING" and summary["owner"] == "alice"
        assert summary["workflow"].startswith("ws-")
        # The API's run without its unbounded documents: run_view(run, row=True).
        assert set(summary) == {
            "id",
            "workflow",
            "version",
            "status",
            "owner",
            "session",
            "parent_node",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "needs_input",
        }
        assert await mine_socket.receive_nothing(timeout=0.3)
        staff_seen = await receive_events(staff_socket, 2)
        assert {e["run"] for e in staff_seen} == {str(theirs.pk), str(mine.pk)}
        for comm in (mine_socket, staff_socket):
            await comm.disconnect()
        return mine

    mine = async_to_sync(scenario)()

    async def resume():
        comm = connect("/ws/runs/?after=1", token=token)
        assert (await comm.connect())[0]
        backlog, _ = await receive_until_synced(comm)
        await comm.disconnect()
        return backlog

    backlog = async_to_sync(resume)()
    assert [e["run"] for e in backlog] == [str(mine.pk)]


@transactional
def test_run_list_socket_refuses_anonymous():
    async def scenario():
        comm = connect("/ws/runs/")
        assert (await comm.connect())[0]
        assert (await comm.receive_output(timeout=5))["code"] == 4401

    async_to_sync(scenario)()


# --------------------------------------------------------------------------------------
# SSE against a real daphne (and, for whole runs, the real worker)


def sse_read(response, *, stop_after: int | None = None) -> tuple[list[dict], list[str]]:
    """Parse an SSE body into (events, comments) until it ends (or ``stop_after`` events)."""
    events: list[dict] = []
    comments: list[str] = []
    frame: dict[str, str] = {}
    for raw in response.iter_lines(decode_unicode=True):
        line = raw or ""
        if not line:
            if "data" in frame:
                events.append(
                    {
                        "id": int(frame["id"]),
                        "event": frame["event"],
                        "data": json.loads(frame["data"]),
                    }
                )
                if stop_after is not None and len(events) >= stop_after:
                    break
            frame = {}
        elif line.startswith(":"):
            comments.append(line)
        else:
            name, _, value = line.partition(":")
            frame[name] = value[1:] if value.startswith(" ") else value
    return events, comments


@pytest.fixture
def token(user):
    return Token.objects.create(user=user).key


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Token {token}"}


@pytest.mark.integration
@transactional
def test_sse_streams_a_whole_run_and_ends_after_its_result(worker, web_server, api, token):
    run_id = start(
        api,
        create(
            api,
            [
                py("a", "sleep", kwargs={"seconds": 0.3}),
                py("b", "add", ["a"], kwargs={"a": 1, "b": 2}),
            ],
        ),
    )
    with requests.get(
        f"{web_server}/api/v1/runs/{run_id}/stream/", headers=auth(token), stream=True, timeout=30
    ) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events, _ = sse_read(response)
    run = wait_for_run(run_id)
    assert [e["id"] for e in events] == ids_of(run)  # every event, once, in order
    assert events[-1]["event"] == "run.result"
    assert events[-1]["data"]["data"] == {"status": "COMPLETED", "result": 3, "error": ""}
    assert all(e["event"] == e["data"]["kind"] for e in events)


@pytest.mark.integration
@transactional
def test_sse_resume_with_last_event_id_gets_exactly_the_missed_events(
    worker, web_server, api, token
):
    run_id = start(
        api,
        create(
            api,
            [
                py("a", "sleep", kwargs={"seconds": 0.2}),
                py("b", "sleep", ["a"], kwargs={"seconds": 0.2}),
                py("c", "add", ["b"], kwargs={"a": 1, "b": 1}),
            ],
        ),
    )
    url = f"{web_server}/api/v1/runs/{run_id}/stream/"
    with requests.get(url, headers=auth(token), stream=True, timeout=30) as response:
        first, _ = sse_read(response, stop_after=3)  # then the client drops the connection
    last = first[-1]["id"]
    run = wait_for_run(run_id)
    with requests.get(
        url, headers={**auth(token), "Last-Event-ID": str(last)}, stream=True, timeout=30
    ) as response:
        rest, _ = sse_read(response)
    assert [e["id"] for e in rest] == ids_of(run, after=last)
    assert [e["id"] for e in first + rest] == ids_of(run)
    # ?after= works the same way; a finished run with nothing more answers 204 (an
    # EventSource stops reconnecting).
    with requests.get(
        url, params={"after": ids_of(run)[-2]}, headers=auth(token), stream=True, timeout=30
    ) as response:
        tail, _ = sse_read(response)
    assert [e["id"] for e in tail] == ids_of(run)[-1:]
    done = requests.get(
        url, headers={**auth(token), "Last-Event-ID": str(ids_of(run)[-1])}, timeout=10
    )
    assert done.status_code == 204


@transactional
def test_sse_sends_heartbeats_and_live_events_on_an_idle_run(web_server, user, token):
    run = pending_run(user)
    url = f"{web_server}/api/v1/runs/{run.pk}/stream/?after={ids_of(run)[-1]}"
    with requests.get(url, headers=auth(token), stream=True, timeout=30) as response:
        assert response.status_code == 200
        lines = response.iter_lines(decode_unicode=True)
        started = time.monotonic()
        assert next(line for line in lines if line.startswith(":")) == ": keepalive"
        assert time.monotonic() - started < 5  # the test server's heartbeat is 0.5 s
        written = log(run, 1)[0]
        frame = []
        for line in lines:
            if line.startswith(("id:", "event:", "data:")):
                frame.append(line)
            if line.startswith("data:"):
                break
    assert frame[0] == f"id: {written}" and frame[1] == "event: node.log"
    assert json.loads(frame[2][5:])["data"] == {"message": "line 0"}


@transactional
def test_sse_refuses_anonymous_other_users_and_bad_tokens(web_server, user, other_user):
    run = pending_run(user)
    url = f"{web_server}/api/v1/runs/{run.pk}/stream/"
    anonymous = requests.get(url, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.json() == {
        "error": "Authentication credentials were not provided or are invalid.",
        "errors": [],
    }
    assert requests.get(url, headers=auth("nope"), timeout=10).status_code == 401
    bob = Token.objects.create(user=other_user).key
    hidden = requests.get(url, headers=auth(bob), timeout=10)
    assert hidden.status_code == 404 and hidden.json() == {"error": "Not found.", "errors": []}
    mine = Token.objects.create(user=user).key
    bad = requests.get(url, headers={**auth(mine), "Last-Event-ID": "x"}, timeout=10)
    assert bad.status_code == 400


@transactional
def test_sse_with_session_cookie(web_server, user, user_client):
    run = pending_run(user)
    cookies = {"sessionid": user_client.cookies["sessionid"].value}
    url = f"{web_server}/api/v1/runs/{run.pk}/stream/"
    with requests.get(url, cookies=cookies, stream=True, timeout=30) as response:
        assert response.status_code == 200
        events, _ = sse_read(response, stop_after=1)
    assert events[0]["event"] == "run.status" and events[0]["data"]["data"]["status"] == "PENDING"
