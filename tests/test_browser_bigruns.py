"""Big runs in a real browser (issue #16): a live 1,000-node run keeps answering and ends
agreeing with the API, Fit shows the whole picture, and a 10,000-node run's page stays small.

Same fixtures as tests/test_browser.py (headless Debian Chromium, a real daphne, the session's
Celery worker). Times are measured in the page and printed, asserted only with generous bounds:
this machine is shared and loaded.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter

import pytest
from django.utils import timezone

from runs.engine.scheduler import create_run, start_run
from runs.models import NodeRun, Run
from tests import test_browser as ui
from tests.specs import py

SHOTS, TIMEOUT_MS, pytestmark, shot, wait_status, workflow = (
    ui.SHOTS,
    ui.TIMEOUT_MS,
    ui.pytestmark,  # integration, browser, transactional database, skipped without chromium
    ui.shot,
    ui.wait_status,
    ui.workflow,
)
browser = ui.browser  # the module-scoped Chromium of tests/test_browser.py, as a fixture here


@pytest.fixture
def page(browser, web_server, user):
    """A page signed in as alice; no JavaScript errors on any page it visits."""
    yield from ui.signed_in_page(browser, web_server)


WIDE = 1000


# Click a box of the graph, then (for a group) a member in the group's panel, and resolve with
# the milliseconds until that node's panel is shown: all inside the page, so a page too busy
# to answer shows up in the number.
CLICK_TO_PANEL = """async ([member]) => {
    const until = (test) => new Promise((resolve, reject) => {
        const started = performance.now();
        const look = () => {
            if (test()) resolve();
            else if (performance.now() - started > 60000) reject(new Error('no panel'));
            else setTimeout(look, 5);
        };
        look();
    });
    const clickOn = (element) => element.dispatchEvent(
        new MouseEvent('click', {bubbles: true, cancelable: true}));
    const t0 = performance.now();
    clickOn(document.querySelector('svg.dag .dag-group'));
    await until(() => document.querySelector(`.group-panel [data-select="${member}"]`)
        || document.querySelector('.group-panel [data-testid=group-next]:not([disabled])'));
    let target = document.querySelector(`.group-panel [data-select="${member}"]`);
    while (!target) {  // page through the members to the wanted one
        clickOn(document.querySelector('.group-panel [data-testid=group-next]'));
        target = document.querySelector(`.group-panel [data-select="${member}"]`);
    }
    const groupMs = performance.now() - t0;
    clickOn(target);
    await until(() => document.querySelector(`#node-panel .panel[data-node="${member}"]`));
    return {groupMs, panelMs: performance.now() - t0,
            finished: window.trellisRun.state.status !== 'RUNNING'};
}"""


def fan_out_nodes(width: int) -> list[dict]:
    """``start`` → ``w0`` … ``w<width-1>`` (fast python nodes) → ``join``."""
    wide = [py(f"w{i}", "add", ["start"], kwargs={"a": i, "b": 1}) for i in range(width)]
    return [
        py("start", "add", kwargs={"a": 1, "b": 2}),
        *wide,
        py("join", "echo", [node["id"] for node in wide]),
    ]


def page_states(page) -> dict[str, str]:
    return page.evaluate(
        "() => Object.fromEntries(Object.entries(window.trellisRun.state.nodes)"
        ".map(([id, node]) => [id, node.state]))"
    )


def group_counts(page) -> dict[str, int]:
    return page.evaluate("() => JSON.parse(document.querySelector('.dag-group').dataset.counts)")


def assert_fit_within_viewport(page) -> None:
    """After Fit the picture is wholly inside its frame and the window."""
    page.click(".dag-frame [data-zoom=fit]")
    page.locator(".dag-frame").scroll_into_view_if_needed()
    box = page.locator("svg.dag").bounding_box()
    frame = page.locator(".dag-scroll").bounding_box()
    view = page.viewport_size
    assert box["width"] <= frame["width"] and box["height"] <= frame["height"], (box, frame)
    assert box["x"] >= 0 and box["x"] + box["width"] <= view["width"], (box, view)
    assert box["y"] >= 0 and box["y"] + box["height"] <= view["height"], (box, view)


@pytest.mark.timeout(1200)
def test_live_1000_node_run_answers_clicks_and_ends_agreeing_with_the_api(
    worker, page, user, capsys
):
    version = workflow(user, fan_out_nodes(WIDE))
    run = create_run(version, user)  # not started yet: the page subscribes first
    page.goto(f"/dashboard/runs/{run.pk}/")
    page.wait_for_function("() => window.trellisRun?.stream?.socket?.readyState === 1")
    page.evaluate("window.__notReloaded = true")
    page.evaluate("""() => { window.__longTasks = [];
        new PerformanceObserver((list) => window.__longTasks.push(...list.getEntries()))
            .observe({type: 'longtask'}); }""")
    start_run(run)
    # Wait until the wide layer streams in, then click while it does.
    page.wait_for_function(
        "() => JSON.parse(document.querySelector('.dag-group').dataset.counts).COMPLETED >= 20",
        timeout=10 * TIMEOUT_MS,
    )
    samples = []
    for member in ("w500", "w17", "w999", "w250", "w3"):
        samples.append(page.evaluate(CLICK_TO_PANEL, [member]))
        if samples[-1]["finished"]:
            break
    during = [s for s in samples if not s["finished"]]
    panel_ms = sorted(s["panelMs"] for s in samples)
    frames, long_tasks = page.evaluate(
        "() => [window.trellisRun.frames, window.__longTasks.map(t => t.duration)]"
    )
    with capsys.disabled():
        print(
            f"\n1,000-node live run: click -> node panel over {len(samples)} clicks "
            f"({len(during)} while the run was RUNNING): median {statistics.median(panel_ms):.0f}"
            f" ms, max {panel_ms[-1]:.0f} ms; group list shown after "
            f"{max(s['groupMs'] for s in samples):.0f} ms at most; {frames['count']} frames of "
            f"events, {frames['totalMs']:.0f} ms applying them, busiest {frames['busiestMs']:.0f}"
            f" ms; {len(long_tasks)} long tasks, longest {max(long_tasks, default=0):.0f} ms"
        )
    # Every click opened its node's panel while the run streamed (each waits 60 s at most).
    # The times are printed, not asserted: speed targets live in `manage.py bench`, and the
    # issue's "under 1 s" is quoted from these lines.
    assert during, "the run finished before the first click: nothing measured while live"

    wait_status(page, "COMPLETED")
    api = page.request.get(f"/api/v1/runs/{run.pk}/").json()
    assert api["status"] == "COMPLETED"
    database = dict(NodeRun.objects.filter(run=run).values_list("node_id", "state"))
    assert len(database) == WIDE + 2
    # Every node's state on the page (its data and the group box's counts) is the database's.
    page.wait_for_function(
        "(n) => (JSON.parse(document.querySelector('.dag-group').dataset.counts).COMPLETED || 0)"
        " === n",
        arg=WIDE,
    )
    assert page_states(page) == database == {node["id"]: node["state"] for node in api["nodes"]}
    assert group_counts(page) == dict(Counter(database[f"w{i}"] for i in range(WIDE)))
    for node_id in ("start", "join"):
        assert page.get_attribute(f".dag-node[data-node={node_id}]", "data-state") == "COMPLETED"
    assert f"{WIDE + 2} of {WIDE + 2} done" in page.locator("#summary-legend").inner_text()
    assert page.evaluate("window.__notReloaded") is True
    # The log keeps its newest 500 rows and says how many more there were.
    # (The log adds rows at most every 300 ms: wait for its last round.)
    last_id = str(run.events.order_by("id").last().id)
    page.wait_for_function(
        "(id) => [...document.querySelectorAll('#event-log tbody tr')].at(-1).dataset.id === id",
        arg=last_id,
    )
    rows = page.locator("#event-log tbody tr").count()
    assert rows == 500
    hidden = int(page.locator("#event-log-note b").inner_text())
    assert hidden == run.events.count() - rows

    # The group lists its members by page; the join's panel pages its 1,000 "Needs".
    page.click("svg.dag .dag-group")
    page.wait_for_selector(".group-panel")
    assert page.locator(".group-panel .member-list li").count() == 50
    assert page.locator(".group-panel [data-role=range]").inner_text() == f"1–50 of {WIDE}"
    page.click(".group-panel [data-testid=group-next]")
    assert page.locator(".group-panel [data-role=range]").inner_text() == f"51–100 of {WIDE}"
    page.click(".dag-node[data-node=join]")
    page.wait_for_selector(".panel[data-node=join] [data-list=needs]")
    needs = page.locator(".panel[data-node=join] [data-list=needs] .node-link")
    assert needs.count() == 50
    page.click("[data-testid=more-needs]")
    page.wait_for_function(
        "() => document.querySelectorAll('.panel[data-node=join] [data-list=needs] .node-link')"
        ".length === 250"
    )
    page.click("svg.dag .dag-group")  # the picture for the docs: the group's list open
    page.wait_for_selector(".group-panel .member-list li")
    page.evaluate("window.scrollTo(0, 0)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    # docs/assets/run-1000-nodes.png is a copy: a test run must not change the tree
    page.screenshot(path=str(SHOTS / "run-1000-nodes.png"))

    # Fit: zoomed in until the picture overflows its frame, then Fit shows all of it.
    for _ in range(4):
        page.click(".dag-frame [data-zoom=in]")
    zoomed = page.locator("svg.dag").bounding_box()
    assert zoomed["width"] > page.locator(".dag-scroll").bounding_box()["width"]
    assert_fit_within_viewport(page)


def test_fit_fits_a_tall_picture_to_the_window_height(page, user):
    """A 20-wide layer is drawn node by node: a picture far taller than the window. Fit
    shrinks it to the frame's height, not only its width."""
    version = workflow(user, fan_out_nodes(20))
    page.goto(f"/dashboard/workflows/{version.workflow.name}/")
    natural = page.locator("svg.dag").bounding_box()
    assert natural["height"] > page.viewport_size["height"]
    assert_fit_within_viewport(page)
    fitted = page.locator("svg.dag").bounding_box()
    assert fitted["height"] < natural["height"] / 1.5


def finished_run(user, nodes) -> Run:
    """A run of ``nodes`` created through the scheduler and then set COMPLETED in bulk (no
    worker: 10,000 nodes would take many minutes here)."""
    run = create_run(workflow(user, nodes), user)
    now = timezone.now()
    NodeRun.objects.filter(run=run).update(
        state="COMPLETED", attempt=1, started_at=now, finished_at=now, output=1
    )
    Run.objects.filter(pk=run.pk).update(
        status="COMPLETED", started_at=now, finished_at=now, result={"done": True}
    )
    return run


@pytest.mark.timeout(900)
def test_10000_node_finished_run_page_is_bounded_and_its_panel_opens(page, user, capsys):
    started = time.monotonic()
    run = finished_run(user, fan_out_nodes(9_998))
    assert NodeRun.objects.filter(run=run).count() == 10_000
    made = time.monotonic() - started
    response = page.goto(f"/dashboard/runs/{run.pk}/")
    html = response.body()
    page.wait_for_function("() => window.trellisRun !== undefined")
    elements = page.evaluate("() => document.getElementsByTagName('*').length")
    svg_elements = page.evaluate("() => document.querySelectorAll('svg.dag *').length")
    with capsys.disabled():
        print(
            f"\n10,000-node run page: {len(html) / 1e6:.2f} MB of HTML, {elements} elements "
            f"({svg_elements} in the graph); run created in {made:.1f} s"
        )
    assert len(html) < 2_500_000  # was ~12 MB by extrapolation of main's 1.2 MB per 1,000
    assert elements < 1_500 and svg_elements < 100
    assert "10000 of 10000 done" in page.locator("#summary-legend").inner_text()
    assert page.locator("#run-status").inner_text() == "COMPLETED"
    # A member's panel, through the group's list (reached by keyboard) and through "Go to node".
    group = page.locator("svg.dag .dag-group")
    assert group.get_attribute("role") == "button"
    assert group.get_attribute("aria-label") == "group of 9998 nodes, 9998 completed"
    group.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(".group-panel [data-select=w0]")
    page.focus(".group-panel [data-select=w0]")
    page.keyboard.press("Enter")
    page.wait_for_selector(".panel[data-node=w0][data-state=COMPLETED]")
    page.fill("#find-node input", "w9997")
    page.press("#find-node input", "Enter")
    page.wait_for_selector(".panel[data-node=w9997]")
    assert page.locator(".dag-group").get_attribute("class").endswith("selected")
    page.click("[data-open-group]")  # back to the group's list from a member's panel
    page.wait_for_selector(".group-panel")
    assert page.locator(".group-panel [data-role=range]").inner_text() == "1–50 of 9998"
    assert_fit_within_viewport(page)
    shot(page, "big-10000-nodes")
