"""The dashboard's runs list (pages, search, dates, needs input) and its waiting forms
(Approve / Reject, Markdown prompts): Django test client, no worker."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from runs.models import NodeRun, Run, RunEvent
from runs.rules.states import RunState
from runs.store.writes import move_run, record_event
from tests.test_dashboard import dash_workflow, post_json, run_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def workflow(user):
    return dash_workflow(user)


def waiting_run(workflow, user, prompt="Ship **it**?"):
    """A RUNNING run whose ``approve`` node waits, with its prompt posted as markdown."""
    run = run_for(workflow, user)
    move_run(run, RunState.PENDING, RunState.RUNNING)
    NodeRun.objects.filter(run=run).exclude(node_id="approve").update(state="COMPLETED", output="x")
    NodeRun.objects.filter(run=run, node_id="approve").update(state="WAITING", attempt=1)
    record_event(run.pk, "node.markdown", {"text": prompt}, node_id="approve")
    return run


def listed(client, **params) -> list[str]:
    page = client.get(reverse("frontend:runs"), params)
    assert page.status_code == 200
    return [row["id"] for row in page.context["runs"]]


def test_run_list_pages_through_every_run(user_client, workflow, user):
    runs = [run_for(workflow, user) for _ in range(120)]
    newest_first = [str(run.pk) for run in reversed(runs)]
    first = user_client.get(reverse("frontend:runs"))
    assert [row["id"] for row in first.context["runs"]] == newest_first[:50]
    assert first.context["paginator"].num_pages == 3
    html = first.content.decode()
    assert 'rel="next" href="?page=2"' in html and "runs 1–50 of 120" in html
    assert listed(user_client, page=3) == newest_first[100:]
    # Filters travel with the page links.
    filtered = user_client.get(reverse("frontend:runs"), {"status": "PENDING", "page": 2})
    assert 'href="?status=PENDING&amp;page=3"' in filtered.content.decode()


def test_run_list_search_by_id_prefix_full_id_and_input_text(user_client, workflow, user):
    ada = run_for(workflow, user, name="Ada Lovelace")
    grace = run_for(workflow, user, name="Grace Hopper")
    assert listed(user_client, q="lovelace") == [str(ada.pk)]
    assert listed(user_client, q=str(grace.pk)) == [str(grace.pk)]
    assert listed(user_client, q=str(grace.pk)[:8]) == [str(grace.pk)]
    assert listed(user_client, q=str(grace.pk)[:8].upper()) == [str(grace.pk)]
    assert listed(user_client, q="nobody-has-this") == []
    empty = user_client.get(reverse("frontend:runs"), {"q": "nobody-has-this"})
    assert "No runs match these filters." in empty.content.decode()


def test_run_list_date_range_in_utc_days(user_client, workflow, user):
    old, mid, new = (run_for(workflow, user) for _ in range(3))
    for run, day in ((old, 1), (mid, 15), (new, 28)):
        Run.objects.filter(pk=run.pk).update(created_at=datetime(2026, 10, day, 23, 30, tzinfo=UTC))
    assert listed(user_client, **{"from": "2026-10-15"}) == [str(new.pk), str(mid.pk)]
    assert listed(user_client, to="2026-10-15") == [str(mid.pk), str(old.pk)]
    assert listed(user_client, **{"from": "2026-10-02", "to": "2026-10-27"}) == [str(mid.pk)]
    bad = user_client.get(reverse("frontend:runs"), {"from": "15/10/2026"})
    assert len(bad.context["runs"]) == 3  # ignored, and said so
    assert "from: not a date (YYYY-MM-DD)" in bad.content.decode()


def test_run_list_shows_times_as_utc_time_elements(user_client, workflow, user):
    run = run_for(workflow, user)
    Run.objects.filter(pk=run.pk).update(created_at=datetime(2026, 10, 1, 8, 5, 9, tzinfo=UTC))
    html = user_client.get(reverse("frontend:runs")).content.decode()
    assert (
        '<time datetime="2026-10-01T08:05:09+00:00" data-local>2026-10-01 08:05:09 UTC</time>'
        in html
    )


def test_needs_input_chip_filter_and_navigation_count(user_client, workflow, user, other_user):
    waiting = waiting_run(workflow, user)
    plain = run_for(workflow, user)
    waiting_run(dash_workflow(other_user), other_user)  # not alice's: not counted
    page = user_client.get(reverse("frontend:runs"))
    rows = {row["id"]: row for row in page.context["runs"]}
    assert rows[str(waiting.pk)]["needs_input"] and not rows[str(plain.pk)]["needs_input"]
    assert page.context["page_data"]["needing"] == [str(waiting.pk)]
    html = page.content.decode()
    assert html.count('data-role="needs-input">needs input') == 1  # the visible chip
    assert 'id="needs-input-count" aria-label="1 run need input">1</b>' in html
    assert listed(user_client, needs_input="true") == [str(waiting.pk)]
    # The count is in the navigation of every page.
    workers = user_client.get(reverse("frontend:workers")).content.decode()
    assert 'id="needs-input-count" aria-label="1 run need input">1</b>' in workers
    # A PAUSED run does not wait for a person now.
    move_run(waiting, RunState.RUNNING, RunState.PAUSED)
    assert listed(user_client, needs_input="true") == []


def test_reject_from_the_dashboard_needs_a_reason_then_fails_the_node(user_client, workflow, user):
    run = waiting_run(workflow, user)
    url = reverse("frontend:reject-event", args=[run.pk, "approve"])
    events = RunEvent.objects.filter(run=run).count()
    blank = post_json(user_client, url, {"reason": "   "})
    assert blank.status_code == 400 and list(blank.json()["errors"]) == ["reason"]
    assert NodeRun.objects.get(run=run, node_id="approve").state == "WAITING"
    assert RunEvent.objects.filter(run=run).count() == events

    done = post_json(user_client, url, {"reason": "not this quarter"})
    assert done.status_code == 200 and done.json()["ok"] is True
    node = NodeRun.objects.get(run=run, node_id="approve")
    assert node.state == "FAILED"
    assert node.error == {"message": "not this quarter", "type": "Rejected", "traceback": ""}
    assert done.json()["status"] == Run.objects.get(pk=run.pk).status == "FAILED"
    again = post_json(user_client, url, {"reason": "twice"})
    assert again.status_code == 409 and "not waiting" in again.json()["message"]
    panel = user_client.get(reverse("frontend:node", args=[run.pk, "approve"])).content.decode()
    assert "<b>Rejected</b>: not this quarter" in panel


def test_panel_of_a_waiting_node_has_approve_and_reject_and_renders_markdown(
    user_client, workflow, user
):
    run = waiting_run(workflow, user, prompt="## Check\n\n<script>alert(1)</script>\n\n**ok?**")
    panel = user_client.get(reverse("frontend:node", args=[run.pk, "approve"])).content.decode()
    assert 'data-testid="panel-send-approve"' in panel and ">Approve</button>" in panel
    assert 'data-testid="panel-reject-approve"' in panel and 'name="reason"' in panel
    assert "<h2>Check</h2>" in panel and "<strong>ok?</strong>" in panel
    assert "<script>" not in panel.split('class="markdown"')[1]
    page = user_client.get(reverse("frontend:run", args=[run.pk])).content.decode()
    assert "<h2>Check</h2>" in page and 'data-testid="reject-approve"' in page
    fragment = user_client.get(reverse("frontend:node-markdown", args=[run.pk, "approve"]))
    assert fragment.status_code == 200 and fragment["Content-Type"].startswith("text/html")
    assert fragment.content.decode() == "<h2>Check</h2>\n\n<p><strong>ok?</strong></p>\n"
    done = user_client.get(reverse("frontend:node", args=[run.pk, "start"])).content.decode()
    assert "panel-reject-" not in done  # only a waiting node has the forms


def test_other_users_cannot_reject_or_read_markdown(client, workflow, user, other_user):
    run = waiting_run(workflow, user)
    client.force_login(other_user)
    url = reverse("frontend:reject-event", args=[run.pk, "approve"])
    assert post_json(client, url, {"reason": "mine now"}).status_code == 404
    assert (
        client.get(reverse("frontend:node-markdown", args=[run.pk, "approve"])).status_code == 404
    )
    assert NodeRun.objects.get(run=run, node_id="approve").state == "WAITING"
