"""The Django admin pages of every Trellis model render for a superuser, with links between
runs, nodes and events, and JSON shown pretty-printed."""

from __future__ import annotations

import pytest
from django.urls import reverse

from runs.models import NodeRun, Run, RunEvent, Workflow, WorkflowVersion
from runs.scheduler import create_run, save_workflow

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

MODELS = [Workflow, WorkflowVersion, Run, NodeRun, RunEvent]



@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", password="pw-for-tests")


@pytest.fixture
def run(superuser):
    version, _ = save_workflow(SPEC, superuser)
    run = create_run(version, superuser, inputs={"who": "<b>Ada</b>"})
    NodeRun.objects.filter(run=run, node_id="start").update(
        output={"data": {"who": "<b>Ada</b>"}},
        error={"message": "boom", "type": "HandlerError", "traceback": ""},
    )
    return run


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


def admin_url(model, action: str, *args) -> str:
    return reverse(f"admin:runs_{model._meta.model_name}_{action}", args=args)


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
    for model in (Run, NodeRun, RunEvent, WorkflowVersion, Workflow):
        assert admin_client.get(admin_url(model, "add")).status_code == 403
    before = Run.objects.get(pk=run.pk).status
    admin_client.post(admin_url(Run, "change", run.pk), {"status": "COMPLETED"})
    assert Run.objects.get(pk=run.pk).status == before


@pytest.mark.django_db
def test_regular_user_cannot_open_the_admin(client, django_user_model, run):
    user = django_user_model.objects.create_user("bob", password="pw-for-tests")
    client.force_login(user)
    response = client.get(admin_url(Run, "changelist"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))
