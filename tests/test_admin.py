"""The Django admin pages of every Trellis model render for a superuser, with links between
runs, nodes, events and sessions, JSON shown pretty-printed, and run actions (pause, resume,
cancel, retry) that go through ``runs.control`` and refuse illegal ones.

The superuser is pytest-django's ``admin_user`` (logged in: ``admin_client``)."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from runs.engine.scheduler import create_run
from runs.models import NodeRun, Run, RunEvent, Session, Worker, Workflow, WorkflowVersion
from runs.services.workflows import save_workflow
from runs.store.writes import move_run

SPEC = {
    "name": "admin-demo",
    "description": "three nodes",
    "dag": {
        "nodes": [
            {"id": "start", "handler": "input"},
            {
                "id": "middle",
                "handler": "output",
                "dependencies": ["start"],
                "config": {"value": "{{ start.output.data.who }}"},
            },
            {"id": "end", "handler": "output", "dependencies": ["middle"]},
        ]
    },
}

MODELS = [Workflow, WorkflowVersion, Run, NodeRun, RunEvent, Session, Worker]


@pytest.fixture
def run(admin_user):
    version, _ = save_workflow(SPEC, admin_user)
    session = Session.objects.create(owner=admin_user, name="admin-team", state={"n": 1})
    now = timezone.now()
    Worker.objects.create(
        hostname="admin-worker@host",
        pid=42,
        queues=["default"],
        concurrency=2,
        started_at=now,
        last_seen=now,
    )
    run = create_run(version, admin_user, inputs={"who": "<b>Ada</b>"}, session=session)
    NodeRun.objects.filter(run=run, node_id="start").update(
        output={"data": {"who": "<b>Ada</b>"}},
        error={"message": "boom", "type": "HandlerError", "traceback": ""},
    )
    return run


def admin_url(model, action: str, *args) -> str:
    return reverse(f"admin:trellis_{model._meta.model_name}_{action}", args=args)


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_changelist_renders_with_rows(admin_client, run, model):
    assert model.objects.exists()
    response = admin_client.get(admin_url(model, "changelist"))
    assert response.status_code == 200
    assert response.context["cl"].result_count == model.objects.count()


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_change_page_renders(admin_client, run, model):
    obj = model.objects.first()
    response = admin_client.get(admin_url(model, "change", obj.pk))
    assert response.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_search_and_filters_work(admin_client, run, model):
    response = admin_client.get(admin_url(model, "changelist"), {"q": "admin"})
    assert response.status_code == 200
    response = admin_client.get(admin_url(model, "changelist"), {"q": str(run.pk)[:8]})
    assert response.status_code == 200


@pytest.mark.django_db
def test_run_page_shows_nodes_inline_pretty_json_and_links(admin_client, run):
    html = admin_client.get(admin_url(Run, "change", run.pk)).content.decode()

    for node_id in ("start", "middle", "end"):
        assert node_id in html
    assert "boom" in html  # the node's error message in the inline
    # Pretty JSON, escaped: the inputs' HTML is shown, never rendered.
    assert "&quot;who&quot;: &quot;&lt;b&gt;Ada&lt;/b&gt;&quot;" in html
    assert "<b>Ada</b>" not in html
    assert f"{admin_url(RunEvent, 'changelist')}?run__id__exact={run.pk}" in html
    assert f"{admin_url(NodeRun, 'changelist')}?run__id__exact={run.pk}" in html


def with_seconds(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


@pytest.mark.django_db
def test_times_show_seconds_in_pages_inlines_and_lists(admin_client, run):
    started = timezone.now().replace(microsecond=0) - timezone.timedelta(seconds=7)
    finished = started + timezone.timedelta(seconds=3)
    Run.objects.filter(pk=run.pk).update(started_at=started)
    NodeRun.objects.filter(run=run, node_id="start").update(
        started_at=started, finished_at=finished
    )
    page = admin_client.get(admin_url(Run, "change", run.pk)).content.decode()
    assert with_seconds(run.created_at) in page
    assert with_seconds(started) in page and with_seconds(finished) in page  # run and inline
    assert "Started at" in page  # still labelled as the field
    listing = admin_client.get(admin_url(Run, "changelist")).content.decode()
    assert with_seconds(run.created_at) in listing
    # The column still sorts by the field.
    ordered = admin_client.get(admin_url(Run, "changelist"), {"o": "-6"})
    assert ordered.status_code == 200
    node = NodeRun.objects.get(run=run, node_id="start")
    node_page = admin_client.get(admin_url(NodeRun, "change", node.pk)).content.decode()
    assert with_seconds(finished) in node_page
    event = RunEvent.objects.filter(run=run).first()
    assert (
        with_seconds(event.ts)
        in admin_client.get(admin_url(RunEvent, "changelist")).content.decode()
    )


@pytest.mark.django_db
def test_run_page_keeps_long_errors_and_values_inside_the_page(admin_client, run):
    long_word = "x" * 1000
    NodeRun.objects.filter(run=run, node_id="middle").update(
        error={"message": f"failed: {long_word}", "type": "HandlerError", "traceback": ""}
    )
    page = admin_client.get(admin_url(Run, "change", run.pk)).content.decode()
    # The inline shows a wrapping start of the error; the node's page has all of it.
    assert "x" * 290 + "…" in page and long_word not in page
    assert "overflow-wrap:anywhere" in page
    node = NodeRun.objects.get(run=run, node_id="middle")
    assert long_word in admin_client.get(admin_url(NodeRun, "change", node.pk)).content.decode()


@pytest.mark.django_db
def test_links_filter_the_target_changelists(admin_client, run):
    events = admin_client.get(admin_url(RunEvent, "changelist"), {"run__id__exact": run.pk})
    assert events.status_code == 200
    assert events.context["cl"].result_count == RunEvent.objects.filter(run=run).count()

    node = admin_client.get(
        admin_url(NodeRun, "changelist"), {"run__id__exact": run.pk, "node_id": "middle"}
    )
    assert node.status_code == 200
    assert node.context["cl"].result_count == 1

    versions = admin_client.get(
        admin_url(Run, "changelist"),
        {"workflow_version__workflow__id__exact": run.workflow_version.workflow_id},
    )
    assert versions.status_code == 200
    assert versions.context["cl"].result_count == 1


@pytest.mark.django_db
def test_runs_nodes_events_and_versions_are_read_only(admin_client, run):
    for model in (Run, NodeRun, RunEvent, WorkflowVersion, Workflow, Session, Worker):
        assert admin_client.get(admin_url(model, "add")).status_code == 403
    before = Run.objects.get(pk=run.pk).status
    admin_client.post(admin_url(Run, "change", run.pk), {"status": "COMPLETED"})
    assert Run.objects.get(pk=run.pk).status == before


@pytest.mark.django_db
def test_regular_user_cannot_open_the_admin(user_client, run):
    response = user_client.get(admin_url(Run, "changelist"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


@pytest.mark.django_db
def test_run_and_session_link_each_other(admin_client, run):
    html = admin_client.get(admin_url(Run, "change", run.pk)).content.decode()
    assert admin_url(Session, "change", run.session_id) in html
    assert f"/dashboard/runs/{run.pk}/" in html
    session_html = admin_client.get(admin_url(Session, "change", run.session_id)).content.decode()
    assert f"{admin_url(Run, 'changelist')}?session__id__exact={run.session_id}" in session_html
    assert "&quot;n&quot;: 1" in session_html
    runs = admin_client.get(admin_url(Run, "changelist"), {"session__id__exact": run.session_id})
    assert runs.context["cl"].result_count == 1


# --------------------------------------------------------------------------------------
# Run actions: through runs.control, refused where illegal


def act(admin_client, action: str, *runs):
    response = admin_client.post(
        admin_url(Run, "changelist"),
        {"action": f"{action}_runs", "_selected_action": [str(r.pk) for r in runs]},
        follow=True,
    )
    assert response.status_code == 200
    return [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]


def status(run) -> str:
    return Run.objects.get(pk=run.pk).status


@pytest.mark.django_db
def test_pause_and_resume_actions(admin_client, admin_user, run):
    move_run(run, "PENDING", "RUNNING")
    notes = act(admin_client, "pause", run)
    assert notes == [("success", f"Paused 1 run(s): {str(run.pk)[:8]}.")]
    assert status(run) == "PAUSED"
    assert RunEvent.objects.filter(
        run=run, kind="run.status", data__by=admin_user.username
    ).exists()
    act(admin_client, "resume", run)
    assert status(run) == "RUNNING"


@pytest.mark.django_db
def test_cancel_then_retry_actions(admin_client, run):
    act(admin_client, "cancel", run)
    assert status(run) == "CANCELLED"
    assert set(NodeRun.objects.filter(run=run).values_list("state", flat=True)) == {"CANCELLED"}
    act(admin_client, "retry", run)
    assert status(run) == "RUNNING"
    assert RunEvent.objects.filter(run=run, kind="run.retry").exists()


@pytest.mark.django_db
def test_illegal_actions_are_refused_and_reported(admin_client, run):
    notes = act(admin_client, "pause", run)  # a PENDING run cannot be paused
    assert notes == [
        ("error", f"Cannot pause 1 run(s) in their current status: {str(run.pk)[:8]} (PENDING).")
    ]
    assert status(run) == "PENDING"
    assert act(admin_client, "retry", run)[0][0] == "error"
    assert status(run) == "PENDING"


@pytest.mark.django_db
def test_mixed_selection_does_the_legal_ones_and_reports_the_rest(admin_client, admin_user, run):
    running = create_run(run.workflow_version, admin_user)
    move_run(running, "PENDING", "RUNNING")
    done = create_run(run.workflow_version, admin_user)
    move_run(done, "PENDING", "RUNNING")
    move_run(done, "RUNNING", "COMPLETED")
    notes = dict(act(admin_client, "pause", running, done, run))
    assert status(running) == "PAUSED"
    assert status(done) == "COMPLETED" and status(run) == "PENDING"
    assert notes["success"] == f"Paused 1 run(s): {str(running.pk)[:8]}."
    assert notes["error"].startswith("Cannot pause 2 run(s) in their current status:")
    assert "(COMPLETED)" in notes["error"] and "(PENDING)" in notes["error"]


@pytest.mark.django_db
def test_view_only_staff_get_no_run_actions(staff_user, staff_client, run):
    from django.contrib.auth.models import Permission

    staff_user.user_permissions.add(Permission.objects.get(codename="view_run"))
    response = staff_client.get(admin_url(Run, "changelist"))
    assert response.status_code == 200
    form = response.context["action_form"]  # None when no action is left at all
    choices = [name for name, _ in form.fields["action"].choices] if form else []
    assert not {"pause_runs", "resume_runs", "cancel_runs", "retry_runs"} & set(choices)
    staff_client.post(
        admin_url(Run, "changelist"), {"action": "cancel_runs", "_selected_action": [str(run.pk)]}
    )
    assert status(run) == "PENDING"


@pytest.mark.django_db
def test_node_skip_action_goes_through_the_table(admin_client, admin_user, run):
    def skip(node_id: str):
        node = NodeRun.objects.get(run=run, node_id=node_id)
        response = admin_client.post(
            admin_url(NodeRun, "changelist"),
            {"action": "skip_nodes", "_selected_action": [str(node.pk)]},
            follow=True,
        )
        return [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]

    # a PENDING run has not started: node actions are refused
    assert skip("end") == [
        ("error", "Cannot skip 1 node(s) in their current state: end (PENDING).")
    ]
    move_run(run, "PENDING", "RUNNING")
    assert skip("end") == [("success", "Skipped 1 node(s): end.")]
    assert NodeRun.objects.get(run=run, node_id="end").state == "SKIPPED"
    assert RunEvent.objects.filter(
        run=run, node_id="end", kind="node.action", data__by=admin_user.username
    ).exists()
