"""The dashboard's pages and POST views (Django test client, no worker), and its pure parts:
the DAG layout and the JSON-Schema forms."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from frontend.dag import layout, order_layers
from frontend.schema_form import JSON_FIELD, fields_for, parse_form, place_errors, readable
from runs.engine.scheduler import create_run
from runs.models import NodeRun, Run, Session
from runs.rules.states import RunState
from runs.store.writes import move_run
from tests.specs import save

INPUTS = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 2, "description": "Who to greet"},
        "count": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3},
        "ratio": {"type": "number"},
        "loud": {"type": "boolean", "default": True},
        "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name"],
    "additionalProperties": False,
}


NODES = [
    {"id": "start", "handler": "input"},
    {
        "id": "left",
        "handler": "output",
        "dependencies": ["start"],
        "config": {"value": "{{ start.output.data.name }}!"},
    },
    {"id": "right", "handler": "output", "dependencies": ["start"]},
    {
        "id": "approve",
        "handler": "wait_for_event",
        "dependencies": ["left", "right"],
        "config": {
            "prompt": "Ship it?",
            "schema": {
                "type": "object",
                "properties": {
                    "ok": {"type": "boolean"},
                    "note": {"type": "string", "maxLength": 5},
                },
                "required": ["ok"],
            },
        },
    },
]


def dash_workflow(owner, inputs=INPUTS):
    """A saved ``dash-...`` workflow of NODES (``inputs=None``: no inputs schema)."""
    return save(owner, NODES, prefix="dash", inputs=inputs)


@pytest.fixture
def workflow(user):
    return dash_workflow(user)


def run_for(version, owner, **inputs):
    return create_run(version, owner, inputs=inputs or {"name": "Ada"})


# --------------------------------------------------------------------------------------
# Pages and permissions


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["runs", "workflows", "workers", "sessions"])
def test_pages_need_a_login(client, name):
    response = client.get(reverse(f"frontend:{name}"))
    assert response.status_code == 302
    assert response.url.startswith("/accounts/login/")


@pytest.mark.django_db
def test_root_redirects_to_the_dashboard_and_login_page_renders(client):
    assert client.get("/").url == "/dashboard/"
    assert client.get("/favicon.ico").url == "/static/frontend/favicon.svg"
    page = client.get("/accounts/login/")
    assert page.status_code == 200 and b"Log in to Trellis" in page.content


@pytest.mark.django_db
def test_run_list_shows_only_the_users_runs_with_a_stream_cursor(
    user_client, workflow, user, other_user
):
    mine = run_for(workflow, user)
    theirs = run_for(dash_workflow(other_user), other_user)
    page = user_client.get(reverse("frontend:runs"))
    html = page.content.decode()
    assert str(mine.pk) in html and str(theirs.pk) not in html
    data = page.context["page_data"]
    assert data["after"] >= mine.events.last().id  # the socket resumes after the rows
    filtered = user_client.get(reverse("frontend:runs"), {"status": "COMPLETED"})
    assert str(mine.pk) not in filtered.content.decode()
    by_session = user_client.get(reverse("frontend:runs"), {"session": "not-a-uuid"})
    assert by_session.status_code == 200 and str(mine.pk) not in by_session.content.decode()


@pytest.mark.django_db
def test_run_page_renders_graph_controls_and_waiting_form(user_client, workflow, user):
    run = run_for(workflow, user)
    move_run(run, RunState.PENDING, RunState.RUNNING)
    page = user_client.get(reverse("frontend:run", args=[run.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    for node_id in ("start", "left", "right", "approve"):
        assert f'data-node="{node_id}"' in html
    # Layers left to right: start, then left/right, then approve.
    nodes = {n.id: n for n in page.context["picture"].nodes}
    assert nodes["start"].x < nodes["left"].x == nodes["right"].x < nodes["approve"].x
    assert page.context["actions"] == ["pause", "cancel"]
    data = page.context["page_data"]
    assert data["after"] == run.events.last().id
    assert data["nodes"]["approve"]["state"] == "PENDING"
    assert 'data-waiting="approve"' in html and "Ship it?" in html
    assert 'name="input.ok"' in html and 'name="input.note"' in html


@pytest.mark.django_db
def test_run_page_is_reachable_by_keyboard_and_screen_reader(user_client, workflow, user):
    """Issue #16: a skip link first, and the graph's node buttons not hidden in an image."""
    run = run_for(workflow, user)
    html = user_client.get(reverse("frontend:run", args=[run.pk])).content.decode()
    body = html[html.index("<body>") :]
    first_focusable = re.search(r"<(a|button|input|select|textarea)\b[^>]*>", body).group(0)
    assert 'class="skip-link"' in first_focusable and 'href="#content"' in first_focusable
    assert '<main class="content" id="content"' in html
    svg = re.search(r"<svg class=\"dag\"[^>]*>", html).group(0)
    assert 'role="group"' in svg and 'role="img"' not in svg
    assert f"Graph of run {str(run.pk)[:8]} of {workflow.workflow.name}" in svg
    assert 'role="button" aria-label="node approve, pending"' in html
    # On the workflow page nothing in the picture is interactive: it stays one labelled image.
    page = user_client.get(reverse("frontend:workflow", args=[workflow.workflow.name]))
    svg = re.search(r"<svg class=\"dag\"[^>]*>", page.content.decode()).group(0)
    assert 'role="img"' in svg and f"Graph of workflow {workflow.workflow.name}" in svg


@pytest.mark.django_db
def test_other_users_run_is_404_and_staff_sees_it(client, staff_client, workflow, user, other_user):
    run = run_for(workflow, user)
    client.force_login(other_user)
    assert client.get(reverse("frontend:run", args=[run.pk])).status_code == 404
    assert client.post(reverse("frontend:run-action", args=[run.pk, "cancel"])).status_code == 404
    assert client.get(reverse("frontend:node", args=[run.pk, "start"])).status_code == 404
    assert staff_client.get(reverse("frontend:run", args=[run.pk])).status_code == 200


# --------------------------------------------------------------------------------------
# Controls


def post_json(client, url, data=None):
    return client.post(url, data or {}, HTTP_ACCEPT="application/json")


@pytest.mark.django_db
def test_illegal_control_is_refused_with_409_and_the_legal_ones(user_client, workflow, user):
    run = run_for(workflow, user)  # PENDING
    response = post_json(user_client, reverse("frontend:run-action", args=[run.pk, "pause"]))
    assert response.status_code == 409
    assert response.json() == {
        "ok": False,
        "message": "Cannot pause a run that is PENDING.",
        "status": "PENDING",
        "actions": ["cancel"],
    }
    assert Run.objects.get(pk=run.pk).status == "PENDING"


@pytest.mark.django_db
def test_cancel_then_retry_through_the_dashboard(user_client, workflow, user):
    run = run_for(workflow, user)
    cancelled = post_json(user_client, reverse("frontend:run-action", args=[run.pk, "cancel"]))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
    assert cancelled.json()["actions"] == ["retry"]
    assert Run.objects.get(pk=run.pk).status == "CANCELLED"
    retried = post_json(user_client, reverse("frontend:run-action", args=[run.pk, "retry"]))
    assert retried.status_code == 200 and retried.json()["status"] == "RUNNING"
    assert run.events.filter(kind="run.retry", data__by=user.username).exists()


@pytest.mark.django_db
def test_control_without_javascript_redirects_with_a_message(user_client, workflow, user):
    run = run_for(workflow, user)
    response = user_client.post(
        reverse("frontend:run-action", args=[run.pk, "resume"]), follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("frontend:run", args=[run.pk])
    assert "Cannot resume a run that is PENDING." in response.content.decode()


@pytest.mark.django_db
def test_control_posts_need_the_csrf_token(client, workflow, user):
    from django.test import Client

    run = run_for(workflow, user)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(reverse("frontend:run-action", args=[run.pk, "cancel"])).status_code == 403
    assert Run.objects.get(pk=run.pk).status == "PENDING"


@pytest.mark.django_db
def test_unknown_action_is_404(user_client, workflow, user):
    run = run_for(workflow, user)
    url = reverse("frontend:run-action", args=[run.pk, "explode"])
    assert user_client.post(url).status_code == 404


@pytest.mark.django_db
def test_send_event_to_a_node_that_is_not_waiting_is_refused(user_client, workflow, user):
    run = run_for(workflow, user)
    url = reverse("frontend:send-event", args=[run.pk, "approve"])
    response = post_json(user_client, url, {"input.ok": "on"})
    assert response.status_code == 409 and "not waiting" in response.json()["message"]
    bad = post_json(user_client, reverse("frontend:send-event", args=[run.pk, "start"]))
    assert bad.status_code == 404


@pytest.mark.django_db
def test_send_event_completes_a_waiting_node_and_reports_field_errors(user_client, workflow, user):
    run = run_for(workflow, user)
    move_run(run, RunState.PENDING, RunState.RUNNING)
    NodeRun.objects.filter(run=run).exclude(node_id="approve").update(state="COMPLETED", output="x")
    NodeRun.objects.filter(run=run, node_id="approve").update(state="WAITING", attempt=1)
    url = reverse("frontend:send-event", args=[run.pk, "approve"])
    too_long = post_json(user_client, url, {"input.ok": "on", "input.note": "far too long"})
    assert too_long.status_code == 400
    assert too_long.json()["errors"] == {"note": ["note must be at most 5 characters long."]}
    assert too_long.json()["message"] == "Not sent: note must be at most 5 characters long."
    assert NodeRun.objects.get(run=run, node_id="approve").state == "WAITING"
    sent = post_json(user_client, url, {"input.ok": "on", "input.note": "yes"})
    assert sent.status_code == 200 and sent.json()["ok"] is True
    node = NodeRun.objects.get(run=run, node_id="approve")
    assert node.state == "COMPLETED" and node.output == {"ok": True, "note": "yes"}
    assert Run.objects.get(pk=run.pk).status == "COMPLETED"


# --------------------------------------------------------------------------------------
# Start-run form


@pytest.mark.django_db
def test_workflow_page_renders_the_form_from_the_inputs_schema(user_client, workflow):
    page = user_client.get(reverse("frontend:workflow", args=[workflow.workflow.name]))
    assert page.status_code == 200
    kinds = {f.name: f.kind for f in page.context["fields"]}
    assert kinds == {
        "name": "text",
        "count": "integer",
        "ratio": "number",
        "loud": "checkbox",
        "mode": "select",
        "tags": "json",
    }
    html = page.content.decode()
    assert 'name="input.count"' in html and 'value="3"' in html and "Who to greet" in html
    assert "<svg" in html and 'data-node="approve"' in html


@pytest.mark.django_db
def test_bad_inputs_show_field_errors_and_start_nothing(user_client, workflow):
    url = reverse("frontend:workflow", args=[workflow.workflow.name])
    response = user_client.post(
        url,
        {
            "version": workflow.version,
            "input.name": "A",
            "input.count": "50",
            "input.ratio": "abc",
            "input.tags": "[1, 2",
        },
    )
    assert response.status_code == 400
    errors = {f.name: f.errors for f in response.context["fields"] if f.errors}
    assert set(errors) == {"name", "count", "ratio", "tags"}  # all at once
    assert errors["ratio"] == ["ratio must be a number."]
    assert errors["tags"] == ["tags is not valid JSON."]
    assert Run.objects.count() == 0
    # With the unparsable values fixed, the schema's own errors are shown, one per field.
    response = user_client.post(
        url,
        {
            "version": workflow.version,
            "input.name": "A",
            "input.count": "50",
            "input.mode": '"fast"',
        },
    )
    errors = {f.name: f.errors for f in response.context["fields"] if f.errors}
    assert set(errors) == {"name", "count"}
    assert errors["count"] == ["count must be at most 10."]
    assert 'value="50"' in response.content.decode()  # what was typed is kept
    missing = user_client.post(url, {"version": workflow.version})
    assert {f.name: f.errors for f in missing.context["fields"] if f.errors} == {
        "name": ["name is required."]
    }
    assert Run.objects.count() == 0


@pytest.mark.django_db
def test_a_cleared_required_field_is_refused_not_defaulted(user_client, user):
    inputs = {
        "type": "object",
        "properties": {
            "steps": {"type": "integer", "default": 3, "title": "Steps"},
            "label": {"type": "string", "default": "nightly"},
        },
        "required": ["steps", "label"],
    }
    version = dash_workflow(user, inputs)
    url = reverse("frontend:workflow", args=[version.workflow.name])
    cleared = user_client.post(
        url, {"version": version.version, "input.steps": "", "input.label": " "}
    )
    assert cleared.status_code == 400
    errors = {f.name: f.errors for f in cleared.context["fields"] if f.errors}
    assert errors == {"steps": ["Steps is required."], "label": ["label is required."]}
    assert Run.objects.count() == 0  # nothing started with the defaults
    html = cleared.content.decode()
    assert 'value=""' in html  # the field stays empty, as the person left it
    started = user_client.post(
        url, {"version": version.version, "input.steps": "4", "input.label": "x"}
    )
    assert started.status_code == 302
    assert Run.objects.get().inputs == {"steps": 4, "label": "x"}


@pytest.mark.django_db
def test_schema_errors_read_as_sentences_naming_the_field_single_escaped(user_client, user):
    inputs = {
        "type": "object",
        "properties": {
            "code": {"type": "string", "pattern": "^\\d{3}$", "title": "Area code"},
            "size": {"enum": ["s", "m"]},
            "name": {"type": "string", "minLength": 2},
        },
    }
    version = dash_workflow(user, inputs)
    url = reverse("frontend:workflow", args=[version.workflow.name])
    response = user_client.post(
        url,
        {"version": version.version, "input.code": "12a", "input.size": '"xl"', "input.name": "A"},
    )
    assert response.status_code == 400
    errors = {f.name: f.errors for f in response.context["fields"] if f.errors}
    assert errors == {
        "code": ["Area code must match the pattern ^\\d{3}$."],
        "size": ["size must be one of: s, m."],
        "name": ["name must be at least 2 characters long."],
    }
    html = response.content.decode()
    shown = re.search(r'data-field-error="code">(.*?)</p>', html).group(1)
    # One backslash, as the schema writes it; no repr quoting, no doubled escapes.
    assert shown == "Area code must match the pattern ^\\d{3}$."
    assert Run.objects.count() == 0


def test_readable_keeps_an_unknown_message_after_the_field_name():
    assert readable("50 is greater than the maximum of 10", "steps") == "steps must be at most 10."
    assert readable("'a' is not of type 'integer', 'null'", "n") == (
        "n must be a whole number or empty."
    )
    assert readable("something new", "field") == "field: something new"


@pytest.mark.django_db
def test_good_inputs_start_a_run_and_open_it(user_client, workflow, user):
    session = Session.objects.create(owner=user, name="team")
    url = reverse("frontend:workflow", args=[workflow.workflow.name])
    response = user_client.post(
        url,
        {
            "version": workflow.version,
            "input.name": "Ada",
            "input.count": "4",
            "input.ratio": "0.5",
            "input.mode": '"slow"',
            "input.tags": '["x"]',
            "session": str(session.pk),
        },
    )
    run = Run.objects.get()
    assert response.status_code == 302 and response.url == reverse("frontend:run", args=[run.pk])
    assert run.inputs == {
        "name": "Ada",
        "count": 4,
        "ratio": 0.5,
        "loud": False,
        "mode": "slow",
        "tags": ["x"],
    }
    assert run.session == session and run.status == "RUNNING"


@pytest.mark.django_db
def test_schemaless_workflow_takes_a_json_object(user_client, user):
    version = dash_workflow(user, inputs=None)
    url = reverse("frontend:workflow", args=[version.workflow.name])
    assert [f.name for f in user_client.get(url).context["fields"]] == [JSON_FIELD]
    bad = user_client.post(url, {"version": 1, JSON_FIELD: "[1]"})
    assert bad.status_code == 400 and Run.objects.count() == 0
    good = user_client.post(url, {"version": 1, JSON_FIELD: '{"name": "Bo"}'})
    assert good.status_code == 302 and Run.objects.get().inputs == {"name": "Bo"}


# --------------------------------------------------------------------------------------
# Node panel, workers, sessions


@pytest.mark.django_db
def test_node_panel_shows_rendered_config_output_error_and_logs(user_client, workflow, user):
    from runs.store.writes import record_event

    run = run_for(workflow, user, name="Ada")
    NodeRun.objects.filter(run=run, node_id="start").update(
        state="COMPLETED", attempt=1, output={"data": {"name": "Ada"}}
    )
    NodeRun.objects.filter(run=run, node_id="left").update(
        state="FAILED",
        attempt=2,
        max_attempts=2,
        error={"message": "boom <b>", "type": "HandlerError", "traceback": "Traceback: line 1"},
        attempts=[
            {"attempt": 1, "state": "FAILED", "error": "first"},
            {"attempt": 2, "state": "FAILED", "error": "second"},
        ],
    )
    record_event(run.pk, "node.log", {"message": "hello log"}, node_id="left")
    record_event(run.pk, "node.token", {"delta": "Hel"}, node_id="left")
    record_event(run.pk, "node.token", {"delta": "lo"}, node_id="left")
    html = user_client.get(reverse("frontend:node", args=[run.pk, "left"])).content.decode()
    assert "&quot;value&quot;: &quot;Ada!&quot;" in html  # rendered from start's output
    assert "boom &lt;b&gt;" in html and "Traceback: line 1" in html
    assert "hello log" in html and ">Hello</pre>" in html
    assert "first" in html and "second" in html
    pending = user_client.get(reverse("frontend:node", args=[run.pk, "approve"])).content.decode()
    assert "Rendered when the node starts" in pending
    assert user_client.get(reverse("frontend:node", args=[run.pk, "ghost"])).status_code == 404


@pytest.mark.django_db
def test_a_waiting_node_shows_one_timeout_its_wait(user_client, user):
    """A `wait_for_event` node's limit is how long it waits for input (config.timeout), not
    the run-time limit every node has (spec `timeout`, never reached: its handler returns at
    once). The workflow page shows that one; the run's node panel shows when it is up."""
    nodes = [
        {"id": "ask", "handler": "wait_for_event", "config": {"timeout": 600}},
        {"id": "forever", "handler": "wait_for_event"},
        {"id": "after", "handler": "output", "dependencies": ["ask"]},
    ]
    version = save(user, nodes, prefix="dash")
    html = user_client.get(reverse("frontend:workflow", args=[version.workflow.name])).content
    cells = dict(
        re.findall(
            r'<td class="mono">(\w+)</td>.*?<td data-role="timeout">(.*?)</td>', html.decode(), re.S
        )
    )
    assert set(cells) == {"ask", "forever", "after"}
    assert re.sub(r"<[^>]+>", "", cells["ask"]) == "600 s wait"
    assert re.sub(r"<[^>]+>", "", cells["forever"]) == "no limit"
    assert cells["after"] == "300 s"  # every other node: its run-time limit


@pytest.mark.django_db
def test_node_panel_attempts_table_scrolls_inside_the_panel(user_client, workflow, user):
    """The attempts table sits in its own scrolling box, with the whole of a long error."""
    run = run_for(workflow, user)
    NodeRun.objects.filter(run=run, node_id="left").update(
        state="FAILED",
        attempt=1,
        attempts=[{"attempt": 1, "state": "FAILED", "worker": "w" * 80, "error": "e" * 400}],
    )
    html = user_client.get(reverse("frontend:node", args=[run.pk, "left"])).content.decode()
    wrapper = re.search(r'<div class="table-scroll" data-role="attempts">(.*?)</div>', html, re.S)
    assert wrapper and "<table" in wrapper.group(1) and "e" * 400 in wrapper.group(1)
    # That it fits in a browser (390 px wide, this panel open): tests/test_browser_layout.py.


@pytest.mark.django_db
def test_workers_page_lists_workers_with_liveness(user_client):
    from datetime import timedelta

    from django.utils import timezone

    from runs.models import Worker

    now = timezone.now()
    Worker.objects.create(
        hostname="w-alive@h",
        pid=1,
        queues=["default"],
        concurrency=4,
        started_at=now,
        last_seen=now,
    )
    Worker.objects.create(
        hostname="w-dead@h",
        pid=2,
        queues=["gpu"],
        concurrency=1,
        started_at=now,
        last_seen=now - timedelta(hours=1),
    )
    page = user_client.get(reverse("frontend:workers"))
    rows = {row["hostname"]: row["liveness"] for row in page.context["workers"]}
    assert rows == {"w-alive@h": "alive", "w-dead@h": "dead"}
    assert page.context["alive"] == 1 and page.context["slots"] == 4


@pytest.mark.django_db
def test_sessions_page_lists_only_the_users_sessions(user_client, user, other_user):
    Session.objects.create(owner=user, name="mine", state={"k": 1})
    Session.objects.create(owner=other_user, name="theirs")
    html = user_client.get(reverse("frontend:sessions")).content.decode()
    assert "mine" in html and "theirs" not in html and "&quot;k&quot;: 1" in html


@pytest.mark.django_db
def test_static_assets_exist(user_client):
    from django.contrib.staticfiles import finders

    for name in (
        "trellis.css",
        "js/common.js",
        "js/stream.js",
        "js/run.js",
        "js/runs.js",
        "js/dag.js",
        "js/workers.js",
        "js/workflow.js",
    ):
        assert finders.find(f"frontend/{name}"), name


@pytest.mark.django_db
def test_dashboard_sends_the_api_shapes(user_client, workflow, user):
    """One shape per object (runs.services.shapes): the dashboard's rows and page data are the
    API's objects, or their documented subsets, never copies of their own."""
    from django.utils import timezone

    from runs.models import Worker

    run = run_for(workflow, user)
    move_run(run, RunState.PENDING, RunState.RUNNING)
    Session.objects.create(owner=user, name="s", state={"k": 1})
    now = timezone.now()
    Worker.objects.create(
        hostname="w@h", pid=1, queues=["default"], concurrency=2, started_at=now, last_seen=now
    )
    api_run = user_client.get(f"/api/v1/runs/{run.pk}/").json()
    row = {k: v for k, v in api_run.items() if k not in ("inputs", "params", "waiting")}
    for extra in ("nodes", "warnings", "result"):
        row.pop(extra)
    assert user_client.get(reverse("frontend:runs")).context["runs"] == [row]
    page = user_client.get(reverse("frontend:run", args=[run.pk]))
    assert page.context["page_data"]["run"] == row
    assert page.context["page_data"]["nodes"] == {
        node["id"]: {k: v for k, v in node.items() if k not in ("output", "error", "attempts")}
        for node in api_run["nodes"]
    }
    events = user_client.get(f"/api/v1/runs/{run.pk}/events/").json()["results"]
    assert page.context["initial_events"] == events
    workers = user_client.get("/api/v1/workers/").json()["results"]
    assert user_client.get(reverse("frontend:workers")).context["workers"] == workers
    sessions = user_client.get("/api/v1/sessions/").json()["results"]
    rows = user_client.get(reverse("frontend:sessions")).context["sessions"]
    assert [
        {k: v for k, v in s.items() if k not in ("run_count", "active_runs")} for s in rows
    ] == (sessions)
    assert (rows[0]["run_count"], rows[0]["active_runs"]) == (0, 0)


def test_iso_strings_are_written_as_the_date_filter_writes_datetimes(settings):
    from datetime import UTC, datetime

    from django.template import Context, Template

    from frontend.formatting import duration, isodate

    moment = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    for zone in ("UTC", "Europe/Paris"):
        settings.TIME_ZONE = zone
        for fmt in ("Y-m-d H:i:s", "c", "H:i:s"):
            expected = Template("{{ d|date:f }}").render(Context({"d": moment, "f": fmt}))
            written = Template("{% load trellis %}{{ s|isodate:f }}").render(
                Context({"s": moment.isoformat(), "f": fmt})
            )
            assert written == expected
    assert isodate(None, "c") == "" and isodate("not a date", "c") == ""
    assert duration("2024-05-06T07:08:09+00:00", "2024-05-06T07:08:10.5+00:00") == "1.50 s"
    assert duration(moment, None) == "" and duration(moment, moment) == "0.00 s"


# --------------------------------------------------------------------------------------
# Pure: layout and forms


def test_layout_places_layers_left_to_right_and_uncrosses_edges():
    layers = [["a", "b"], ["c", "d"]]
    deps = {"a": (), "b": (), "c": ("b",), "d": ("a",)}
    assert order_layers(layers, deps)[1] == ["d", "c"]  # d sits next to a, c next to b
    picture = layout(layers, deps, {})
    pos = {n.id: n for n in picture.nodes}
    assert pos["a"].x == pos["b"].x < pos["c"].x
    assert pos["d"].y < pos["c"].y
    assert {(e.source, e.target) for e in picture.edges} == {("b", "c"), ("a", "d")}
    assert all(e.path.startswith("M") for e in picture.edges)
    assert picture.width > 2 * pos["a"].width and picture.height > 2 * pos["a"].height


def test_form_round_trip_and_error_placement():
    fields = fields_for(INPUTS, errors={"count": ["too big"]})
    count = next(f for f in fields if f.name == "count")
    assert count.value == "3" and count.errors == ["too big"] and count.attrs["max"] == 10
    data, errors, raw = parse_form(
        INPUTS,
        {
            "input.name": "Ada",
            "input.count": "7",
            "input.ratio": "2",
            "input.mode": '"slow"',
            "input.tags": "[]",
            "input.loud": "on",
        },
    )
    assert errors == {}
    assert data == {"name": "Ada", "count": 7, "ratio": 2, "loud": True, "mode": "slow", "tags": []}
    _, errors, raw = parse_form(INPUTS, {"input.count": "x", "input.tags": "{"})
    assert errors == {
        "count": ["count must be a whole number."],
        "tags": ["tags is not valid JSON."],
        "name": ["name is required."],  # required, and not given
    }
    assert raw["count"] == "x"
    by_field, general = place_errors(
        [
            {"path": "$.inputs", "message": "'name' is a required property"},
            {"path": "$.inputs.tags[0]", "message": "1 is not of type 'string'"},
            {
                "path": "$.inputs",
                "message": "Additional properties are not allowed ('x' was unexpected)",
            },
        ],
        [f.name for f in fields],
    )
    assert by_field == {"name": ["name is required."], "tags": ["tags[0] must be text."]}
    assert general == ["Unexpected field: x."]
    assert json.loads(fields_for(INPUTS)[4].value) == "fast"
