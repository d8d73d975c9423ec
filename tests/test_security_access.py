"""Every route and every socket, walked as anonymous, as another user, as the owner and as staff.

The walk enumerates Django's URL resolver and the WebSocket router; a route that is missing
from ``ACCESS`` fails the suite, so a new view cannot ship without its guard being stated
and checked here. The table in docs/security.md ("Who may do what") says the same in prose.
"""

from __future__ import annotations

import json
import re

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.authtoken.models import Token

from runs.engine.scheduler import create_run
from runs.models import NodeRun, Run, Session
from runs.routing import websocket_urlpatterns
from runs.services.workflows import save_workflow

pytestmark = pytest.mark.django_db(transaction=True)

SPEC = {
    "name": "owned",
    "inputs": {"type": "object", "properties": {"n": {"type": "integer"}}},
    "dag": {
        "nodes": [
            {"id": "start", "handler": "input"},
            {"id": "ask", "handler": "wait_for_event", "dependencies": ["start"]},
        ]
    },
}

# What each principal gets. "login" = a redirect to the dashboard login page,
# "admin-login" = a redirect to the admin's; otherwise the set of acceptable status codes.
# The owner's codes include 400/409 where the request is well-formed but illegal now
# (pausing a PENDING run): what matters here is that it got past the guards.
ANON_API = {401}
HIDDEN = {404}
PUBLIC = {200}
OWNER_OK = {200, 201, 204}


class Case:
    def __init__(self, method: str, *, anon, other, owner, body=None, listing=False):
        self.method, self.body = method, body
        self.expect = {"anon": anon, "other": other, "owner": owner}
        self.listing = listing  # other users get 200 but must not see the owner's objects


API_GET = Case("get", anon=ANON_API, other=HIDDEN, owner=OWNER_OK)
API_LIST = Case("get", anon=ANON_API, other={200}, owner={200}, listing=True)
DASH_GET = Case("get", anon="login", other=HIDDEN, owner={200})
DASH_LIST = Case("get", anon="login", other={200}, owner={200}, listing=True)
CONTROL = Case("post", anon=ANON_API, other=HIDDEN, owner={200, 409}, body={})

ACCESS: dict[str, list[Case]] = {
    # resource API
    "runs:workflows": [
        API_LIST,
        Case("post", anon=ANON_API, other={403}, owner={200, 201}, body=SPEC),
    ],
    "runs:validate": [
        Case("post", anon=ANON_API, other={200}, owner={200}, body=SPEC),
    ],
    "runs:workflow": [API_GET],
    "runs:workflow-versions": [API_GET],
    "runs:workflow-version": [API_GET],
    "runs:runs": [
        API_LIST,
        # another user's workflow name is "unknown workflow", as a name that does not exist
        Case("post", anon=ANON_API, other={400}, owner={201}, body={"workflow": "owned"}),
    ],
    "runs:run": [API_GET],
    "runs:run-results": [Case("get", anon=ANON_API, other=HIDDEN, owner={200, 409})],
    "runs:run-events": [
        API_GET,
        Case(
            "post",
            anon=ANON_API,
            other=HIDDEN,
            owner={200, 201, 202, 409},
            body={"node": "ask", "data": {"ok": True}},
        ),
    ],
    "runs:run-stream": [Case("get", anon=ANON_API, other=HIDDEN, owner={200})],
    "runs:run-pause": [CONTROL],
    "runs:run-resume": [CONTROL],
    "runs:run-cancel": [CONTROL],
    "runs:run-retry": [CONTROL],
    # node actions on the owner's PENDING run are 409 (the run has not started)
    "runs:node-clear": [CONTROL],
    "runs:node-mark": [
        Case(
            "post",
            anon=ANON_API,
            other=HIDDEN,
            owner={200, 409},
            body={"state": "COMPLETED", "output": 1},
        )
    ],
    "runs:node-skip": [CONTROL],
    "runs:sessions": [
        API_LIST,
        Case("post", anon=ANON_API, other={201}, owner={201}, body={"state": {}}),
    ],
    "runs:session": [
        API_GET,
        Case("patch", anon=ANON_API, other=HIDDEN, owner={200}, body={"state": {"k": 1}}),
    ],
    "runs:workers": [Case("get", anon=ANON_API, other={200}, owner={200})],
    # Prometheus: staff sessions or TRELLIS_METRICS_TOKEN only (tests/test_metrics.py)
    "runs:metrics": [Case("get", anon=ANON_API, other={403}, owner={403})],
    # seed-004
    "runs:seed-submit": [Case("post", anon=ANON_API, other={403}, owner={201}, body=SPEC)],
    "runs:seed-trigger": [Case("post", anon=ANON_API, other=HIDDEN, owner={202, 409}, body={})],
    "runs:seed-status": [API_GET],
    "runs:seed-results": [Case("get", anon=ANON_API, other=HIDDEN, owner={200, 409})],
    # probes: no credentials, no data (tests/test_probes_and_errors.py)
    "runs:health": [Case("get", anon={200}, other={200}, owner={200})],
    "runs:ready": [Case("get", anon={200}, other={200}, owner={200})],
    # schema and docs are public (they describe the API, they hold no data)
    "runs:schema": [Case("get", anon=PUBLIC, other=PUBLIC, owner=PUBLIC)],
    "runs:docs": [Case("get", anon=PUBLIC, other=PUBLIC, owner=PUBLIC)],
    # dashboard
    "frontend:home": [Case("get", anon={302}, other={302}, owner={302})],
    "frontend:favicon": [Case("get", anon={302}, other={302}, owner={302})],
    "frontend:runs": [DASH_LIST],
    "frontend:run": [DASH_GET],
    "frontend:node": [DASH_GET],
    "frontend:send-event": [
        Case("post", anon="login", other=HIDDEN, owner={302, 200, 400, 409}, body={})
    ],
    "frontend:reject-event": [
        Case("post", anon="login", other=HIDDEN, owner={302, 400, 409}, body={})
    ],
    "frontend:node-markdown": [DASH_GET],
    "frontend:run-timeline": [DASH_GET],
    "frontend:node-items": [DASH_GET],
    "frontend:run-action": [Case("post", anon="login", other=HIDDEN, owner={302, 409}, body={})],
    "frontend:node-action": [Case("post", anon="login", other=HIDDEN, owner={302, 409}, body={})],
    "frontend:workflows": [DASH_LIST],
    "frontend:workflow": [DASH_GET],
    "frontend:workers": [Case("get", anon="login", other={200}, owner={200})],
    "frontend:sessions": [DASH_LIST],
    # accounts
    "login": [Case("get", anon=PUBLIC, other={200, 302}, owner={200, 302})],
    "logout": [Case("post", anon={200, 302}, other={200, 302}, owner={200, 302})],
    "password_change": [Case("get", anon="login", other={200}, owner={200})],
    "password_change_done": [Case("get", anon="login", other={200}, owner={200})],
}

# The admin is walked as a whole: every page but its login needs a staff session.
ADMIN_PUBLIC = {"admin:login"}


def _walk(patterns, prefix: str = "", namespace: str | None = None):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(
                pattern.url_patterns, prefix + str(pattern.pattern), pattern.namespace or namespace
            )
        elif isinstance(pattern, URLPattern):
            name = pattern.name or _unnamed(str(pattern.pattern))
            yield (f"{namespace}:{name}" if namespace else name), prefix + str(pattern.pattern)


def _unnamed(pattern: str) -> str:
    return re.sub(r"\W+", "", pattern.split(".")[0]) or "unnamed"


@pytest.fixture
def world(user, other_user, admin_user):
    version, _ = save_workflow(SPEC, user)
    run = create_run(version, user)
    session = Session.objects.create(owner=user, state={"count": 1})
    return {
        "user": user,
        "other": other_user,
        "staff": admin_user,  # a superuser
        "run": run,
        "session": session,
        "values": {
            "name": "owned",
            "number": "1",
            "run_id": str(run.pk),
            "execution_id": str(run.pk),
            "node_id": "ask",
            "action": "pause",
            "node_action": "skip",
            "session_id": str(session.pk),
        },
    }


def _concrete(pattern: str, values: dict[str, str]) -> str:
    """A URL for a route pattern: converters and named groups filled from ``values``."""
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: values[m[1]], pattern)
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m[1]], path)
    path = path.replace("^", "").replace("$", "").replace("/?", "/")
    return "/" + path


def _client(who: str, world) -> Client:
    client = Client()
    if who != "anon":
        client.force_login(world["user" if who == "owner" else who])
    return client


def _request(client: Client, case: Case, url: str):
    if case.method == "get":
        return client.get(url)
    return getattr(client, case.method)(
        url, data=json.dumps(case.body or {}), content_type="application/json"
    )


def _check(who: str, expect, response, url: str) -> None:
    where = f"{who} {response.request['REQUEST_METHOD']} {url}"
    if expect in ("login", "admin-login"):
        login = "/admin/login/" if expect == "admin-login" else "/accounts/login/"
        assert response.status_code == 302, f"{where}: {response.status_code}, wanted a redirect"
        assert response["Location"].startswith(login), f"{where}: to {response['Location']}"
        return
    assert response.status_code in expect, f"{where}: {response.status_code}, wanted {expect}"
    if response.status_code in (401, 403, 404) and response.get("Content-Type", "").startswith(
        "application/json"
    ):
        body = response.json()
        assert isinstance(body.get("error"), str) and isinstance(body.get("errors"), list), where


def test_every_route_has_an_access_rule():
    routes = {name for name, _ in _walk(get_resolver().url_patterns)}
    unlisted = {name for name in routes if not name.startswith("admin:") and name not in ACCESS}
    assert not unlisted, f"routes without an entry in ACCESS (add their guard and rule): {unlisted}"
    assert not set(ACCESS) - routes, (
        f"ACCESS names routes that no longer exist: {set(ACCESS) - routes}"
    )


@pytest.mark.parametrize("who", ["anon", "other", "owner"])
def test_every_route_refuses_or_serves_as_its_rule_says(world, who):
    checked = 0
    for name, pattern in _walk(get_resolver().url_patterns):
        if name.startswith("admin:"):
            continue
        url = _concrete(pattern, world["values"])
        for case in ACCESS[name]:
            response = _request(_client(who, world), case, url)
            _check(who, case.expect[who], response, url)
            if case.listing and who == "other" and response.status_code == 200:
                text = response.content.decode()
                for secret in (world["values"]["run_id"], world["values"]["session_id"], "owned"):
                    assert secret not in text, f"{url} shows the owner's {secret!r} to another user"
            if hasattr(response, "streaming_content"):
                response.close()
            checked += 1
    assert checked >= len(ACCESS)
    # Refused requests changed nothing: the owner's run and session are as created.
    run = Run.objects.get(pk=world["run"].pk)
    session = Session.objects.get(pk=world["session"].pk)
    if who != "owner":
        assert run.status == "PENDING"
        assert session.state == {"count": 1}
        assert not NodeRun.objects.filter(run=run).exclude(state="PENDING").exists()


def _admin_urls(world) -> list[tuple[str, str]]:
    run = world["run"]
    values = {
        "object_id": str(run.pk),
        "id": str(world["user"].pk),
        "content_type_id": "1",
        "app_label": "trellis",
        "url": "nowhere/",
    }
    return [
        (name, _concrete(pattern.replace("admin/^", "admin/"), values))
        for name, pattern in _walk(get_resolver().url_patterns)
        if name.startswith("admin:")
    ]


def test_admin_pages_need_a_staff_session(world):
    urls = _admin_urls(world)
    assert len(urls) > 50
    for who in ("anon", "other", "owner"):
        client = _client(who, world)
        for name, url in urls:
            response = client.get(url)
            if name in ADMIN_PUBLIC:
                assert response.status_code == 200, (who, url)
            elif name == "admin:logout":
                assert response.status_code in (302, 405), (who, url, response.status_code)
            else:
                _check(who, "admin-login", response, url)
    staff = _client("staff", world)
    for path in (
        "/admin/",
        "/admin/trellis/run/",
        "/admin/trellis/runevent/",
        "/admin/trellis/session/",
    ):
        assert staff.get(path).status_code == 200, path
    assert staff.get(f"/admin/trellis/run/{world['run'].pk}/change/").status_code == 200


def test_staff_see_every_users_objects(world):
    staff = _client("staff", world)
    values = world["values"]
    for url in (
        f"/api/v1/runs/{values['run_id']}/",
        f"/api/v1/sessions/{values['session_id']}/",
        "/api/v1/workflows/owned/",
        f"/dashboard/runs/{values['run_id']}/",
    ):
        assert staff.get(url).status_code == 200, url
    assert values["run_id"] in staff.get("/api/v1/runs/").content.decode()


def test_api_token_is_checked_and_a_bad_one_is_refused(world):
    token = Token.objects.create(user=world["user"])
    url = f"/api/v1/runs/{world['values']['run_id']}/"
    assert Client().get(url, HTTP_AUTHORIZATION=f"Token {token.key}").status_code == 200
    refused = Client().get(url, HTTP_AUTHORIZATION="Token not-a-token")
    assert refused.status_code == 401
    assert refused.json()["error"]


def test_api_is_throttled_with_the_error_shape(world, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"user": "3/min", "anon": "2/min"})
    token = Token.objects.create(user=world["user"])
    client = Client(HTTP_AUTHORIZATION=f"Token {token.key}", REMOTE_ADDR="192.0.2.7")
    codes = [client.get("/api/v1/workers/").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    refused = client.get("/api/v1/runs/")
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert "throttled" in refused.json()["error"].lower() and refused.json()["errors"] == []
    anonymous = Client(REMOTE_ADDR="192.0.2.8")
    # Anonymous requests to guarded routes stop at 401 (DRF checks permissions first); the
    # public schema is what the anonymous rate protects.
    assert [anonymous.get("/api/v1/runs/").status_code for _ in range(3)] == [401, 401, 401]
    assert [anonymous.get("/api/schema/").status_code for _ in range(3)] == [200, 200, 429]
    # Other users are counted apart.
    other = Token.objects.create(user=world["other"])
    assert Client(HTTP_AUTHORIZATION=f"Token {other.key}").get("/api/v1/runs/").status_code == 200


# --------------------------------------------------------------------------- WebSockets


def _ws_routes() -> list[str]:
    return [str(route.pattern) for route in websocket_urlpatterns]


async def _ws_outcome(path: str, subprotocols=None) -> tuple[str, int | None, str | None]:
    """Connect through the whole ASGI stack: ("open", None, chosen subprotocol) or
    ("closed", close code, None)."""
    from orchestration.asgi import application

    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    communicator = WebsocketCommunicator(
        application, path, headers=headers, subprotocols=subprotocols
    )
    connected, subprotocol = await communicator.connect(timeout=10)
    assert connected
    try:
        output = await communicator.receive_output(timeout=1)
    except TimeoutError:
        output = {"type": "websocket.send"}  # open and quiet (the run list before a change)
    await communicator.disconnect()
    if output["type"] == "websocket.close":
        return "closed", output.get("code"), None
    return "open", None, subprotocol


@pytest.mark.parametrize("route", _ws_routes())
def test_every_socket_refuses_anonymous_and_other_users(world, route):
    path = "/" + _concrete(route.replace("^", ""), world["values"]).lstrip("/")
    owner = Token.objects.create(user=world["user"]).key
    other = Token.objects.create(user=world["other"]).key

    assert async_to_sync(_ws_outcome)(path) == ("closed", 4401, None)
    assert async_to_sync(_ws_outcome)(path, ["trellis", "trellis.token.bad"])[:2] == (
        "closed",
        4401,
    )
    # The owner, by token subprotocol (the server picks "trellis", never echoes the token)...
    assert async_to_sync(_ws_outcome)(path, ["trellis", f"trellis.token.{owner}"]) == (
        "open",
        None,
        "trellis",
    )
    # ...or by ?token= in the query string.
    sep = "&" if "?" in path else "?"
    assert async_to_sync(_ws_outcome)(f"{path}{sep}token={owner}")[0] == "open"
    outcome = async_to_sync(_ws_outcome)(path, ["trellis", f"trellis.token.{other}"])
    if "run_id" in route:
        assert outcome[:2] == ("closed", 4404)
    else:
        assert outcome[0] == "open"  # the run list: open, but filtered (tests/test_streams.py)
