"""The dashboard in a real browser: headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright) against a real daphne, with the session's Celery worker running the nodes.

Screenshots go to ``test-artifacts/screenshots/``. The latency test prints the median and p95
of worker-emitted event → browser receipt (a benchmark figure, not an assertion).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from runs.engine.scheduler import create_run, start_run
from runs.models import NodeRun, Run, RunEvent
from tests.specs import py, save

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
TIMEOUT_MS = 30_000
FINAL = ("COMPLETED", "FAILED", "SKIPPED", "UPSTREAM_FAILED", "CANCELLED")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)",
    ),
]


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API keeps an idle event loop in this thread; Django's guard against
    # ORM calls from async code would fire on every query the tests make meanwhile.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = playwright_api.sync_playwright().start()
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    try:
        yield chromium
    finally:
        chromium.close()
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, web_server, user):
    yield from signed_in_page(browser, web_server)


@pytest.fixture
def prefixed_page(browser, prefixed_web_server, user):
    """A page of the host project that mounts Trellis under ``/trellis/``."""
    yield from signed_in_page(browser, prefixed_web_server, dashboard="/trellis/dashboard/")


def signed_in_page(browser, base_url: str, dashboard: str = "/dashboard/"):
    """A page signed in as alice on ``dashboard``; no JavaScript errors on any page it visits."""
    context = browser.new_context(viewport={"width": 1440, "height": 960}, base_url=base_url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda m: (
            problems.append(f"console: {m.text}")
            if m.type == "error" and not expected_refusal(m.text)
            else None
        ),
    )
    login(page, dashboard=dashboard)
    yield page
    context.close()
    assert not problems, problems  # no JavaScript errors on any page the test visited


def expected_refusal(text: str) -> bool:
    """Chromium logs a 400 (invalid form, re-rendered) or 409 (illegal action) response as a
    console error; the tests cause those on purpose."""
    return text.startswith("Failed to load resource: the server responded with a status of 4") and (
        "status of 400" in text or "status of 409" in text
    )


def login(page, username="alice", password="alice-password", dashboard="/dashboard/"):
    page.goto(f"/accounts/login/?next={dashboard}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{dashboard}")


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def workflow(user, nodes, inputs=None):
    """The saved WorkflowVersion of a ``ui-...`` workflow (with an inputs schema if given)."""
    top = {"inputs": inputs} if inputs else {}
    return save(user, nodes, prefix="ui", description="browser test", **top)


def started(version, user, inputs=None) -> Run:
    run = create_run(version, user, inputs=inputs or {})
    start_run(run)
    return run


def node_states(page) -> dict[str, str]:
    return page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('svg.dag .dag-node')]"
        ".map(n => [n.dataset.node, n.dataset.state]))"
    )


def wait_states(page, expected: dict[str, str] | str, timeout: int = TIMEOUT_MS) -> None:
    """Until the graph shows these states (or every node in this one state)."""
    page.wait_for_function(
        """(expected) => {
            const nodes = [...document.querySelectorAll('svg.dag .dag-node')];
            if (typeof expected === 'string') return nodes.every(n => n.dataset.state === expected);
            return Object.entries(expected).every(
                ([id, s]) => nodes.find(n => n.dataset.node === id)?.dataset.state === s);
        }""",
        arg=expected,
        timeout=timeout,
    )


def wait_status(page, status: str) -> None:
    page.wait_for_function(
        "(s) => document.getElementById('run-status').textContent.trim() === s", arg=status
    )


def logged_ids(page) -> list[int]:
    return page.evaluate(
        "() => [...document.querySelectorAll('#event-log tbody tr')].map(r => Number(r.dataset.id))"
    )


def assert_log_matches_database(page, run_id) -> None:
    """The event log shows every event of the run exactly once, in order."""
    db_ids = list(RunEvent.objects.filter(run_id=run_id).values_list("id", flat=True))
    page.wait_for_function(
        "(n) => document.querySelectorAll('#event-log tbody tr').length >= n", arg=len(db_ids)
    )
    assert logged_ids(page) == db_ids


def wait_colour(page, node_id: str, rgb: str) -> None:
    """Until the node's state stripe is drawn in ``rgb`` (after the colour transition)."""
    page.wait_for_function(
        """([id, rgb]) => getComputedStyle(
            document.querySelector(`.dag-node[data-node='${id}'] .stripe`)).fill === rgb""",
        arg=[node_id, rgb],
    )


# --------------------------------------------------------------------------------------


REPORT_INPUTS = {
    "type": "object",
    "properties": {
        "steps": {
            "type": "integer",
            "minimum": 1,
            "maximum": 10,
            "default": 3,
            "description": "Progress steps per branch (1-10)",
        },
        "label": {"type": "string", "minLength": 1, "default": "nightly"},
    },
    "required": ["steps"],
}


def report_nodes():
    kwargs = {"steps": "{{ inputs.steps }}", "pause": 0.25}
    return [
        py("extract", "report", kwargs=kwargs),
        py("left", "report", ["extract"], kwargs=kwargs),
        py("right", "report", ["extract"], kwargs=kwargs),
        py(
            "join",
            "add",
            ["left", "right"],
            kwargs={"a": "{{ left.output.steps }}", "b": "{{ right.output.steps }}"},
        ),
        {"id": "result", "handler": "output", "dependencies": ["join"]},
    ]


def test_start_from_form_field_error_then_every_node_turns_final_live(worker, page, user):
    version = workflow(user, report_nodes(), REPORT_INPUTS)
    page.goto(f"/dashboard/workflows/{version.workflow.name}/")
    page.fill("#start-steps", "50")
    page.click("[data-testid=start-run]")
    error = page.locator("[data-field-error=steps]")
    assert error.inner_text() == "steps must be at most 10."
    assert "/dashboard/workflows/" in page.url
    assert Run.objects.filter(workflow_version=version).count() == 0  # nothing started
    shot(page, "01-start-form-field-error")

    page.fill("#start-steps", "4")
    page.click("[data-testid=start-run]")
    page.wait_for_url("**/dashboard/runs/**")
    run = Run.objects.get(workflow_version=version)
    assert run.inputs["steps"] == 4
    page.evaluate("window.__notReloaded = true")
    # Drop the socket mid-run: the page reconnects from its last event id.
    page.wait_for_function("() => window.trellisRun?.stream?.socket?.readyState === 1")
    # (extract runs for about a second; under load the page may first see it finished)
    page.wait_for_function(
        "() => ['RUNNING', 'COMPLETED'].includes("
        "document.querySelector('svg.dag .dag-node[data-node=extract]')?.dataset.state)"
    )
    page.evaluate("window.trellisRun.stream.socket.close()")
    wait_states(page, "COMPLETED")
    wait_status(page, "COMPLETED")
    assert page.evaluate("window.__notReloaded") is True  # all of it without a reload
    for node_id in ("extract", "left", "right", "join", "result"):
        wait_colour(page, node_id, "rgb(21, 128, 61)")  # --completed
    assert json.loads(page.locator("#run-result").inner_text()) == {"join": 8}
    assert_log_matches_database(page, run.pk)
    page.click(".dag-node[data-node=left]")
    page.wait_for_selector(".panel[data-node=left]")
    assert "100%" in page.locator("[data-role=progress-percent]").inner_text()
    assert "finished step 4" in page.locator(".node-panel").inner_text()
    shot(page, "02-run-completed-live")


APPROVAL_SCHEMA = {
    "type": "object",
    "properties": {
        "approved": {"type": "boolean", "description": "Tick to go ahead"},
        "comment": {"type": "string", "pattern": "^[a-z ]*$", "description": "lower-case words"},
    },
    "required": ["approved"],
}


def approve_price() -> dict:
    """A `wait_for_event` node after ``price`` that asks whether to spend its output."""
    return {
        "id": "approve",
        "handler": "wait_for_event",
        "dependencies": ["price"],
        "config": {"prompt": "Spend {{ price.output }}?", "schema": APPROVAL_SCHEMA},
    }


def test_pause_resume_and_approve_a_waiting_node(worker, page, user):
    version = workflow(
        user,
        [
            # long enough to pause while it runs, even on a loaded machine
            py("prepare", "sleep", kwargs={"seconds": 4}),
            py("price", "add", ["prepare"], kwargs={"a": 40, "b": 2}),
            approve_price(),
            py(
                "act",
                "echo",
                ["approve"],
                kwargs={
                    "ok": "{{ approve.output.approved }}",
                    "note": "{{ approve.output.comment }}",
                },
            ),
        ],
    )
    run = started(version, user)
    page.goto(f"/dashboard/runs/{run.pk}/")
    wait_states(page, {"prepare": "RUNNING"})
    assert page.locator("[data-testid=resume]").is_hidden()
    page.click("[data-testid=pause]")
    wait_status(page, "PAUSED")
    page.locator("[data-testid=resume]").wait_for(state="visible")
    assert page.locator("[data-testid=pause]").is_hidden()
    # The running node finishes; the next one waits in READY while the run is paused.
    wait_states(page, {"prepare": "COMPLETED", "price": "READY"})
    time.sleep(0.5)
    assert NodeRun.objects.get(run=run, node_id="price").state == "READY"
    shot(page, "03-paused")

    page.reload()  # a reload shows the same state and resumes from the page's event id
    wait_states(page, {"prepare": "COMPLETED", "price": "READY"})
    page.click("[data-testid=resume]")
    wait_states(page, {"approve": "WAITING"})
    form = page.locator("[data-waiting=approve]")
    form.wait_for(state="visible")
    assert "Spend 42?" in form.inner_text()  # the prompt as rendered for this run
    page.fill("#wait-approve-comment", "NO WAY!")  # breaks the pattern: refused, error shown
    page.check("#wait-approve-approved")
    page.click("[data-testid=send-approve]")
    page.wait_for_function(
        "() => document.querySelector('[data-field-error=comment]').textContent.length > 0"
    )
    assert NodeRun.objects.get(run=run, node_id="approve").state == "WAITING"
    shot(page, "04-waiting-form-error")
    page.fill("#wait-approve-comment", "go ahead")
    page.click("[data-testid=send-approve]")
    wait_states(page, "COMPLETED")
    wait_status(page, "COMPLETED")
    assert form.is_hidden()
    act = NodeRun.objects.get(run=run, node_id="act")
    assert act.output == {"ok": True, "note": "go ahead"}
    assert page.locator("#controls form:not([hidden])").count() == 0  # nothing legal left
    assert_log_matches_database(page, run.pk)
    shot(page, "05-approved-and-completed")


def test_cancel_a_run_from_its_button_and_the_list_follows(worker, page, user):
    version = workflow(
        user,
        [
            py("slow", "sleep", kwargs={"seconds": 20}),
            py("after", "add", ["slow"], kwargs={"a": 1, "b": 1}),
        ],
    )
    page.goto("/dashboard/")
    # Start the run only once the list's socket is subscribed: the list follows changes from
    # then on (it is not a backlog of run history).
    page.wait_for_function("() => document.getElementById('live').dataset.mode === 'live'")
    run = started(version, user)
    row = page.locator(f"tr[data-run='{run.pk}']")
    row.wait_for()  # the new run appears in the list without a reload
    page.wait_for_function(
        "(id) => document.querySelector(`tr[data-run='${id}'] [data-role=status]`)"
        ".textContent === 'RUNNING'",
        arg=str(run.pk),
    )
    shot(page, "06-runs-list-live")
    row.locator("a.mono").click()
    page.wait_for_url(f"**/dashboard/runs/{run.pk}/")
    wait_states(page, {"slow": "RUNNING"})
    # Cancel asks first: "no" sends nothing, "yes" cancels.
    questions: list[str] = []
    page.on(
        "dialog",
        lambda dialog: (
            questions.append(dialog.message),
            dialog.dismiss() if len(questions) == 1 else dialog.accept(),
        ),
    )
    page.click("[data-testid=cancel]")
    assert questions == ["Cancel this run? Its unfinished nodes are cancelled."]
    assert Run.objects.get(pk=run.pk).status == "RUNNING"
    page.click("[data-testid=cancel]")
    wait_status(page, "CANCELLED")
    wait_states(page, "CANCELLED")
    page.locator("[data-testid=retry]").wait_for(state="visible")
    assert Run.objects.get(pk=run.pk).status == "CANCELLED"
    wait_colour(page, "slow", "rgb(107, 115, 133)")  # --cancelled
    shot(page, "07-cancelled")
    page.goto("/dashboard/")
    status = page.locator(f"tr[data-run='{run.pk}'] [data-role=status]").inner_text()
    assert status == "CANCELLED"


def test_without_websockets_the_page_polls_and_still_follows_the_run(
    worker, browser, web_server, user
):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=web_server)
    context.add_init_script("delete window.WebSocket;")  # as if a proxy or policy blocked it
    page = context.new_page()
    try:
        login(page)
        version = workflow(user, report_nodes(), REPORT_INPUTS)
        run = started(version, user, {"steps": 2})
        page.goto(f"/dashboard/runs/{run.pk}/")
        assert page.evaluate("typeof window.WebSocket") == "undefined"
        page.wait_for_function("() => document.getElementById('live').dataset.mode === 'polling'")
        wait_states(page, "COMPLETED")
        wait_status(page, "COMPLETED")
        assert_log_matches_database(page, run.pk)
        shot(page, "08-polling-fallback")
    finally:
        context.close()


def test_under_a_url_prefix_the_list_links_there_and_the_run_completes_live(
    worker, prefixed_page, user
):
    """A host project mounts Trellis under /trellis/ (HTTP and WebSocket routes alike): the
    runs list builds its rows' links there, and the run page's socket, node panel and
    waiting form all reach the prefixed routes."""
    page = prefixed_page
    version = workflow(
        user,
        [
            py("price", "add", kwargs={"a": 40, "b": 2}),
            approve_price(),
        ],
    )
    page.wait_for_function("() => document.getElementById('live').dataset.mode === 'live'")
    run = started(version, user)
    row = page.locator(f"tr[data-run='{run.pk}']")
    row.wait_for()  # drawn by the script from the socket's message
    assert row.locator("a.mono").get_attribute("href") == f"/trellis/dashboard/runs/{run.pk}/"
    name = version.workflow.name
    assert row.locator(f"a:text-is('{name}')").get_attribute("href") == (
        f"/trellis/dashboard/workflows/{name}/"
    )
    row.locator("a.mono").click()
    page.wait_for_url(f"**/trellis/dashboard/runs/{run.pk}/")
    page.wait_for_function("() => window.trellisRun?.stream?.socket?.readyState === 1")
    socket = urlsplit(page.evaluate("window.trellisRun.stream.socket.url"))
    assert socket.path == f"/trellis/ws/runs/{run.pk}/"
    wait_states(page, {"approve": "WAITING"})
    page.click(".dag-node[data-node=price]")
    page.wait_for_selector(".panel[data-node=price]")  # the prefixed node panel loaded
    page.check("#wait-approve-approved")
    page.click("[data-testid=send-approve]")  # the form posts to the prefixed route
    wait_status(page, "COMPLETED")  # over the socket: the page is never reloaded
    wait_states(page, "COMPLETED")
    assert page.evaluate("document.getElementById('live').dataset.mode") == "live"
    assert_log_matches_database(page, run.pk)
    shot(page, "09-under-a-url-prefix")


def test_event_latency_from_worker_to_browser(worker, page, user, capsys):
    """Worker-side emit (``time.time()`` in the event) → the page's stream hands it over
    (``Date.now()``): same machine, same clock. Printed, not asserted."""
    samples = 60
    version = workflow(
        user,
        [
            {
                "id": "emit",
                "handler": "python",
                "config": {
                    "function": "trellis_emit_clock",
                    "kwargs": {"count": samples, "interval": 0.03},
                },
            }
        ],
    )
    run = create_run(version, user)  # not started yet: the page subscribes first
    page.goto(f"/dashboard/runs/{run.pk}/")
    page.wait_for_function("() => window.trellisRun?.stream?.socket?.readyState === 1")
    page.evaluate("""() => {
        window.__latency = [];
        const stream = window.trellisRun.stream;
        const deliver = stream.onEvents;
        stream.onEvents = (events, message) => {
            const now = Date.now() / 1000;
            for (const e of events) {
                if (e.kind === 'node.event' && e.data && e.data.clock) {
                    window.__latency.push(now - e.data.clock);
                }
            }
            deliver(events, message);
        };
    }""")
    start_run(run)
    page.wait_for_function("(n) => window.__latency.length >= n", arg=samples)
    latencies = sorted(page.evaluate("window.__latency"))
    median = statistics.median(latencies) * 1000
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))] * 1000
    with capsys.disabled():  # shown in every run, not only with -s
        print(
            f"\nevent latency worker -> browser over {len(latencies)} events: "
            f"median {median:.1f} ms, p95 {p95:.1f} ms, max {latencies[-1] * 1000:.1f} ms"
        )
    assert len(latencies) == samples


def test_mark_then_clear_a_failed_node_from_its_panel(worker, page, user):
    """Mark a failed node COMPLETED with an output, then (second run) clear a failed node
    whose function now succeeds: the downstream node runs and the run completes live."""
    nodes = [py("mid", "boom"), py("after", "echo", ["mid"], kwargs={"got": "{{ mid.output.v }}"})]
    marked = started(workflow(user, nodes), user)
    page.goto(f"/dashboard/runs/{marked.pk}/")
    page.evaluate("window.__notReloaded = true")
    wait_status(page, "FAILED")
    wait_states(page, {"mid": "FAILED", "after": "UPSTREAM_FAILED"})
    page.click(".dag-node[data-node=mid]")
    page.wait_for_selector(".panel[data-node=mid][data-state=FAILED]")
    page.click("[data-testid=mark-mid]")  # opens the mark dialog
    output = page.locator("[data-node-action=mark] textarea[name=output]")
    output.fill('{"v": 7}')
    page.click(".dag-node[data-node=mid]")  # the panel reloads (as on any event of its node) …
    page.wait_for_selector("#node-panel:not(.panel-loading) .panel[data-node=mid]")
    assert output.input_value() == '{"v": 7}'  # … and keeps the open dialog and its text
    page.click("[data-testid=mark-submit-mid]")
    wait_states(page, "COMPLETED")
    wait_status(page, "COMPLETED")
    page.wait_for_selector(".panel[data-node=mid][data-state=COMPLETED]")  # panel refreshed
    shot(page, "10-node-marked")
    assert page.evaluate("window.__notReloaded") is True
    nodes = {n["id"]: n for n in page.request.get(f"/api/v1/runs/{marked.pk}/").json()["nodes"]}
    assert nodes["mid"]["state"] == nodes["after"]["state"] == "COMPLETED"
    assert nodes["mid"]["output"] == {"v": 7}
    assert NodeRun.objects.get(run=marked, node_id="after").output == {"got": 7}

    key = f"clear-{marked.pk}"
    cleared = started(
        workflow(
            user,
            [
                py("mid", "flaky", kwargs={"key": key, "failures": 1}, retries=0),
                py("after", "echo", ["mid"], kwargs={"calls": "{{ mid.output.calls }}"}),
            ],
        ),
        user,
    )
    page.goto(f"/dashboard/runs/{cleared.pk}/")
    page.evaluate("window.__notReloaded = true")
    wait_status(page, "FAILED")
    wait_states(page, {"mid": "FAILED", "after": "UPSTREAM_FAILED"})
    page.click(".dag-node[data-node=mid]")
    page.wait_for_selector(".panel[data-node=mid][data-state=FAILED]")
    page.click("[data-testid=clear-mid]")
    wait_states(page, "COMPLETED")
    wait_status(page, "COMPLETED")
    page.wait_for_selector(".panel[data-node=mid][data-state=COMPLETED]")
    assert page.evaluate("window.__notReloaded") is True
    shot(page, "11-node-cleared")
    assert {n.node_id: n.output for n in NodeRun.objects.filter(run=cleared)} == {
        "mid": {"key": key, "calls": 2},
        "after": {"calls": 2},
    }
    assert_log_matches_database(page, cleared.pk)
