"""Waiting for people in a real browser: the runs list's "needs input" chip and count (live),
and Reject with a reason from the node panel. Fixtures and helpers: tests/test_browser.py."""

from __future__ import annotations

from pathlib import Path

from runs.models import NodeRun, Run
from runs.services.runs import reject_event
from tests.specs import py
from tests.test_browser import (  # noqa: F401 - browser and page are fixtures
    TIMEOUT_MS,
    browser,
    page,
    pytestmark,
    shot,
    started,
    wait_states,
    workflow,
)

ASSETS = Path(__file__).resolve().parent.parent / "docs" / "assets"


def spend_approval(user):
    return workflow(
        user,
        [
            py("price", "add", kwargs={"a": 40, "b": 2}),
            {
                "id": "approve",
                "handler": "wait_for_event",
                "dependencies": ["price"],
                "config": {
                    "prompt": "## Approve the spend\n\n- amount: **{{ price.output }} EUR**\n"
                    "- <script>window.hacked = true</script>budget `ops-2026`",
                    "schema": {
                        "type": "object",
                        "properties": {"approved": {"type": "boolean"}},
                        "required": ["approved"],
                    },
                },
            },
            py("spend", "echo", ["approve"], kwargs={"ok": True}),
            py("report", "echo", ["approve"], kwargs={"done": True}, trigger_rule="all_done"),
        ],
    )


def chip_shown(tab, run_id: str, shown: bool) -> None:
    tab.wait_for_function(
        """([id, shown]) => {
            const chip = document.querySelector(`tr[data-run='${id}'] [data-role=needs-input]`);
            return chip && chip.hidden === !shown;
        }""",
        arg=[run_id, shown],
        timeout=TIMEOUT_MS,
    )


def nav_count(tab, count: int) -> None:
    tab.wait_for_function(
        "(n) => document.getElementById('needs-input-count').textContent.trim() === String(n)",
        arg=count,
        timeout=TIMEOUT_MS,
    )


def test_waiting_runs_show_needs_input_and_reject_fails_the_node_with_its_reason(
    worker,
    page,  # noqa: F811 - the fixture imported above
    user,
):
    version = spend_approval(user)
    page.goto("/dashboard/")
    page.wait_for_function("() => document.getElementById('live').dataset.mode === 'live'")
    first, second = started(version, user), started(version, user)
    for run in (first, second):
        page.locator(f"tr[data-run='{run.pk}']").wait_for()
        chip_shown(page, str(run.pk), True)  # live: the node started waiting after the load
    nav_count(page, 2)
    assert page.locator("[data-count=needs-input]").inner_text() == "2"
    page.set_viewport_size({"width": 1200, "height": 520})
    ASSETS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ASSETS / "needs-input.png"))
    page.set_viewport_size({"width": 1440, "height": 960})

    page.click("[data-testid=filter-needs-input]")  # the filter: only runs that wait
    page.wait_for_url("**needs_input=true**")
    assert page.locator("tr[data-run]").count() == 2

    page.goto(f"/dashboard/runs/{first.pk}/")
    wait_states(page, {"approve": "WAITING"})
    # The prompt is Markdown, rendered and sanitized by the server.
    prompt = page.locator("[data-waiting=approve] [data-role=prompt]")
    assert prompt.locator("h2").inner_text() == "Approve the spend"
    assert prompt.locator("strong").inner_text() == "42 EUR"
    assert prompt.locator("script").count() == 0
    assert page.evaluate("() => window.hacked === undefined")
    # The panel opens on the waiting node, with Approve and Reject.
    panel = page.locator("#node-panel")
    panel.locator("[data-testid=panel-reject-approve]").click()  # no reason: refused
    panel.locator("[data-field-error=reason]").filter(has_text="reason").wait_for()
    assert NodeRun.objects.get(run=first, node_id="approve").state == "WAITING"
    panel.locator("[data-testid=panel-reason-approve]").fill("Over the quarterly budget")
    panel.locator("[data-testid=panel-reject-approve]").click()
    wait_states(page, {"approve": "FAILED", "spend": "UPSTREAM_FAILED", "report": "COMPLETED"})
    panel.locator(".error-box").filter(has_text="Over the quarterly budget").wait_for()
    assert "Rejected" in panel.locator(".error-box").inner_text()
    node = NodeRun.objects.get(run=first, node_id="approve")
    assert node.error["message"] == "Over the quarterly budget"
    assert node.error["type"] == "Rejected"
    shot(page, "20-rejected-in-panel")

    page.goto("/dashboard/")
    page.wait_for_function("() => document.getElementById('live').dataset.mode === 'live'")
    chip_shown(page, str(first.pk), False)
    nav_count(page, 1)
    # Someone else rejects the other run: its chip goes away live.
    reject_event(Run.objects.get(pk=second.pk), "approve", "duplicate request", user)
    chip_shown(page, str(second.pk), False)
    nav_count(page, 0)
    assert page.locator("[data-count=needs-input]").inner_text() == "0"
