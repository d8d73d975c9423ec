"""Node actions from the node panel in a real browser (DESIGN §7): skip a node, clear one node
without its downstream, mark a node FAILED with a reason. Headless Chromium against a real
daphne with the session's Celery worker, as in tests/test_browser.py (whose fixtures and helpers
this file shares; its test_mark_then_clear_a_failed_node_from_its_panel covers mark COMPLETED
and clear with the downstream). Each test checks the page, the API and the audit trail.
"""

from __future__ import annotations

import uuid

from runs.models import NodeRun, RunEvent
from tests.specs import py
from tests.test_browser import (  # noqa: F401 - fixtures and marks used by name
    assert_log_matches_database,
    browser,
    page,
    pytestmark,
    shot,
    started,
    wait_states,
    wait_status,
    workflow,
)
from tests.testapp.handlers import count_calls


def open_panel(tab, node_id: str, state: str) -> None:
    tab.click(f".dag-node[data-node={node_id}]")
    tab.wait_for_selector(f".panel[data-node={node_id}][data-state={state}]")


def api_nodes(tab, run) -> dict[str, dict]:
    return {n["id"]: n for n in tab.request.get(f"/api/v1/runs/{run.pk}/").json()["nodes"]}


def audit(run, node_id: str) -> list[dict]:
    """The ``node.action`` events of ``node_id``: who did what."""
    return [e.data for e in RunEvent.objects.filter(run=run, node_id=node_id, kind="node.action")]


def test_skip_a_failed_node_from_its_panel_and_downstream_follows_trigger_rules(
    worker,
    page,  # noqa: F811 - the shared fixture, by name
    user,
):
    nodes = [
        py("mid", "boom"),
        py("strict", "echo", ["mid"]),  # all_success: a skipped parent skips it too
        py("tolerant", "echo", ["mid"], trigger_rule="none_failed"),  # skipped parents are fine
        py("cleanup", "echo", ["mid"], trigger_rule="all_done"),  # runs whatever happened
    ]
    run = started(workflow(user, nodes), user)
    page.goto(f"/dashboard/runs/{run.pk}/")
    page.evaluate("window.__notReloaded = true")
    wait_status(page, "FAILED")
    wait_states(page, {"mid": "FAILED", "strict": "UPSTREAM_FAILED", "tolerant": "UPSTREAM_FAILED"})
    open_panel(page, "mid", "FAILED")
    page.click("[data-testid=skip-mid]")
    wait_states(
        page,
        {"mid": "SKIPPED", "strict": "SKIPPED", "tolerant": "COMPLETED", "cleanup": "COMPLETED"},
    )
    wait_status(page, "COMPLETED")
    page.wait_for_selector(".panel[data-node=mid][data-state=SKIPPED]")  # the panel followed
    assert page.locator("[data-testid=skip-mid]").count() == 0  # nothing to skip any more
    assert page.evaluate("window.__notReloaded") is True
    shot(page, "12-node-skipped")
    states = {node_id: n["state"] for node_id, n in api_nodes(page, run).items()}
    assert states == {
        "mid": "SKIPPED",
        "strict": "SKIPPED",
        "tolerant": "COMPLETED",
        "cleanup": "COMPLETED",
    }
    assert audit(run, "mid")[-1] | {"nodes": None} == {
        "action": "skip",
        "by": "alice",
        "state": "SKIPPED",
        "nodes": None,
    }
    assert_log_matches_database(page, run.pk)


def test_clear_this_node_only_reruns_it_and_leaves_its_downstream_alone(
    worker,
    page,  # noqa: F811 - the shared fixture, by name
    user,
):
    key = uuid.uuid4().hex
    nodes = [
        py("source", "count", kwargs={"key": f"{key}-source"}),
        py("report", "count", ["source"], kwargs={"key": f"{key}-report"}),
    ]
    run = started(workflow(user, nodes), user)
    page.goto(f"/dashboard/runs/{run.pk}/")
    wait_status(page, "COMPLETED")
    before = NodeRun.objects.get(run=run, node_id="report")
    page.evaluate("window.__notReloaded = true")
    open_panel(page, "source", "COMPLETED")
    page.check("[data-node-action=clear] input[name=only_this]")
    page.click("[data-testid=clear-source]")
    # The node runs again (its output counts the second call) and the run completes again.
    page.wait_for_function(
        "(id) => fetch(`/api/v1/runs/${id}/`).then(r => r.json())"
        ".then(run => run.status === 'COMPLETED' && run.nodes.find(n => n.id === 'source')"
        ".output.calls === 2)",
        arg=str(run.pk),
        polling=500,
    )
    wait_status(page, "COMPLETED")
    wait_states(page, "COMPLETED")
    assert page.evaluate("window.__notReloaded") is True
    shot(page, "13-node-cleared-alone")
    assert count_calls(f"{key}-source") == 2
    assert count_calls(f"{key}-report") == 1  # downstream untouched: not run again
    after = NodeRun.objects.get(run=run, node_id="report")
    assert (after.output, after.attempt, after.finished_at) == (
        before.output,
        before.attempt,
        before.finished_at,
    )
    assert after.output == {"key": f"{key}-report", "calls": 1}
    action = audit(run, "source")[-1]
    assert action["action"] == "clear" and action["by"] == "alice"
    assert "report" not in (action.get("nodes") or [])
    assert_log_matches_database(page, run.pk)


def test_mark_a_retrying_node_failed_with_a_reason(
    worker,
    page,  # noqa: F811 - the shared fixture, by name
    user,
):
    """A node waiting out a long backoff between attempts is given up by hand: FAILED with the
    reason typed in; its downstream follows the trigger rules and the run fails."""
    reason = "the vendor is down for the day"
    nodes = [
        py(
            "fetch",
            "fail",
            kwargs={"message": "503 from vendor", "retryable": True},
            retries=3,
            backoff=600,
        ),
        py("publish", "echo", ["fetch"]),
        py("notify", "echo", ["fetch"], trigger_rule="all_done"),
    ]
    run = started(workflow(user, nodes), user)
    page.goto(f"/dashboard/runs/{run.pk}/")
    wait_states(page, {"fetch": "RETRYING"})
    page.evaluate("window.__notReloaded = true")
    open_panel(page, "fetch", "RETRYING")
    page.click("[data-testid=mark-fetch]")  # opens the mark dialog
    page.select_option("[data-node-action=mark] select[name=state]", "FAILED")
    page.click("[data-testid=mark-submit-fetch]")  # without a reason: refused, nothing changes
    error = page.locator("[data-node-action=mark] [data-field-error=reason]")
    page.wait_for_function(
        "() => document.querySelector('[data-node-action=mark] [data-field-error=reason]')"
        ".textContent.length > 0"
    )
    assert "reason" in error.inner_text()
    assert NodeRun.objects.get(run=run, node_id="fetch").state == "RETRYING"
    page.fill("[data-node-action=mark] input[name=reason]", reason)
    page.click("[data-testid=mark-submit-fetch]")
    wait_states(page, {"fetch": "FAILED", "publish": "UPSTREAM_FAILED", "notify": "COMPLETED"})
    wait_status(page, "FAILED")
    panel = page.locator(".panel[data-node=fetch][data-state=FAILED]")
    panel.wait_for()
    assert reason in panel.locator(".error-box").inner_text()  # the reason, shown as its error
    assert page.evaluate("window.__notReloaded") is True
    shot(page, "14-node-marked-failed")
    nodes_now = api_nodes(page, run)
    assert nodes_now["fetch"]["state"] == "FAILED"
    assert reason in nodes_now["fetch"]["error"]["message"]
    assert nodes_now["fetch"]["attempt"] == 1  # the remaining attempts were given up
    assert nodes_now["publish"]["state"] == "UPSTREAM_FAILED"
    assert nodes_now["notify"]["state"] == "COMPLETED"
    action = audit(run, "fetch")[-1]
    assert (action["action"], action["by"], action["state"]) == ("mark", "alice", "FAILED")
    assert_log_matches_database(page, run.pk)
