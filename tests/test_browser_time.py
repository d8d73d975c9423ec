"""The dashboard's views of time in a real browser (Debian's Chromium through Playwright, a real
daphne and the session's worker): the run timeline, the workflow grid and a map node's items.

The timeline is a canvas: the tests read the pixels drawn where the page says a node's bar is
(``window.trellisTimeline.barPoint``) and compare them with the state's colour (the CSS
variables ``--state-<state>-fg``). Screenshots of the two views go to
``test-artifacts/screenshots/`` (``timeline.png`` and ``grid.png``, the ones in docs/assets/).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from runs.engine.scheduler import create_run
from runs.models import NodeRun, Run
from tests import test_browser, test_browser_layout
from tests.conftest import wait_for_run
from tests.specs import py
from tests.test_browser import SHOTS, TIMEOUT_MS, started, wait_status, workflow

# The signed-in page of the browser tests (and the browser under it), shared as fixtures.
browser = test_browser.browser
page = test_browser.page
phone = test_browser_layout.phone  # a 390 x 844 page

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

# The colour drawn at a node's last bar, and the colour its state should have, as [r, g, b].
BAR_COLOUR = """(id) => {
    const point = window.trellisTimeline.barPoint(id);
    if (!point) return null;
    const canvas = document.querySelector('.timeline-canvas');
    const rect = canvas.getBoundingClientRect();
    const ratio = canvas.width / rect.width;
    const x = point.x;
    const [r, g, b] = canvas.getContext('2d').getImageData(
        Math.floor((x - rect.left) * ratio), Math.floor((point.y - rect.top) * ratio), 1, 1).data;
    const key = point.state === 'UPSTREAM_FAILED' ? 'upstream' : point.state.toLowerCase();
    const hex = getComputedStyle(document.documentElement)
        .getPropertyValue(`--state-${key}-fg`).trim().replace('#', '');
    const want = [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16));
    return {state: point.state, drawn: [r, g, b], want, width: point.width};
}"""


def bar(page, node_id: str) -> dict | None:
    return page.evaluate(BAR_COLOUR, node_id)


# How many pixels of the node's row are drawn in its last bar's state colour.
DRAWN_WIDTH = """(id) => {
    const found = (BAR_COLOUR)(id);
    const point = window.trellisTimeline.barPoint(id);
    const canvas = document.querySelector('.timeline-canvas');
    const rect = canvas.getBoundingClientRect();
    const ratio = canvas.width / rect.width;
    const row = canvas.getContext('2d').getImageData(
        0, Math.floor((point.y - rect.top) * ratio), canvas.width, 1).data;
    let count = 0;
    for (let i = 0; i < row.length; i += 4) {
        if ([0, 1, 2].every((c) => Math.abs(row[i + c] - found.want[c]) <= 2)) count += 1;
    }
    return {state: found.state, pixels: count / ratio};
}""".replace("BAR_COLOUR", BAR_COLOUR)


def wait_bar(page, node_id: str, state: str, timeout: int = TIMEOUT_MS) -> None:
    """Until the node's last bar is drawn in ``state``'s colour."""
    page.wait_for_function(
        f"""(id) => {{
            const found = ({BAR_COLOUR})(id);
            return found && found.state === '{state}'
                && found.drawn.every((v, i) => Math.abs(v - found.want[i]) <= 2);
        }}""",
        arg=node_id,
        timeout=timeout,
    )


def open_timeline(page) -> None:
    page.click("[data-testid=tab-timeline]")
    page.wait_for_function("() => window.trellisTimeline && window.trellisTimeline.model.loaded")
    assert page.is_hidden(".dag-card") and page.is_visible("#timeline-card")


def timeline_nodes():
    key = f"tl-{uuid.uuid4().hex[:8]}"
    steps = {"steps": 3, "pause": 0.1}
    return [
        py("extract", "report", kwargs=steps),
        py("left", "report", ["extract"], kwargs=steps),
        py("right", "sleep", ["extract"], kwargs={"seconds": 0.6}),
        py("flaky", "flaky", ["extract"], kwargs={"key": key, "failures": 1}, retries=2,
           backoff=0.2),
        py("join", "add", ["left", "right", "flaky"], kwargs={"a": 1, "b": 2}),
        {"id": "result", "handler": "output", "dependencies": ["join"]},
    ]  # fmt: skip


def test_timeline_draws_each_nodes_attempts_and_a_bar_opens_its_panel(worker, page, user):
    run = started(workflow(user, timeline_nodes()), user)
    assert wait_for_run(run.pk).status == "COMPLETED"
    page.goto(f"/dashboard/runs/{run.pk}/")
    wait_status(page, "COMPLETED")
    open_timeline(page)
    for node_id in ("extract", "left", "right", "flaky", "join", "result"):
        wait_bar(page, node_id, "COMPLETED")
    # flaky's first attempt failed: two bars on its row, the first one red.
    attempts = page.evaluate(
        "() => window.trellisTimeline.model.nodes.find(n => n.id === 'flaky').attempts"
        ".map(a => a.state)"
    )
    assert attempts == ["FAILED", "COMPLETED"]
    # Rows follow the layers: extract first, the output last.
    order = page.evaluate("() => window.trellisTimeline.model.nodes.map(n => n.id)")
    assert order[0] == "extract" and order[-1] == "result"

    point = page.evaluate("() => window.trellisTimeline.barPoint('right')")
    page.mouse.move(point["x"], point["y"])
    tip = page.locator(".timeline-tip")
    tip.wait_for(state="visible")
    assert "right" in tip.inner_text() and "attempt 1" in tip.inner_text()
    page.mouse.click(point["x"], point["y"])
    page.wait_for_selector("#node-panel .panel[data-node='right']")
    assert page.evaluate("() => location.hash") == "#node=right"

    # The keyboard reaches every row: arrows read a row out, Enter opens its node.
    page.focus(".timeline-scroll")
    for _ in range(4):
        page.keyboard.press("ArrowDown")
    fourth = order[3]
    live = page.locator("[data-role=timeline-live]")
    assert live.inner_text().startswith(f"{fourth} · completed")
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#node-panel .panel[data-node='{fourth}']")

    SHOTS.mkdir(parents=True, exist_ok=True)
    page.mouse.move(0, 0)
    page.evaluate("() => { const t = window.trellisTimeline; t.model.cursor = -1; t.draw(); }")
    page.evaluate("() => document.activeElement.blur()")
    page.locator("#timeline-card").screenshot(path=str(SHOTS / "timeline.png"))
    # The choice of view is remembered: the next run page opens on its timeline.
    page.reload()
    page.wait_for_function("() => window.trellisTimeline.model.loaded")
    assert page.is_visible("#timeline-card")


def test_a_running_bar_grows_live_then_turns_final(worker, page, user):
    nodes = [
        py("first", "add", kwargs={"a": 1, "b": 1}),
        py("slow", "sleep", ["first"], kwargs={"seconds": 6}),
    ]
    run = started(workflow(user, nodes), user)
    page.goto(f"/dashboard/runs/{run.pk}/")
    open_timeline(page)
    wait_bar(page, "slow", "RUNNING")
    drawn = page.evaluate(DRAWN_WIDTH, "slow")
    assert drawn["state"] == "RUNNING" and drawn["pixels"] >= 2
    # The clock redraws it: the running bar is drawn wider while the node still runs.
    page.wait_for_function(
        f"(w) => {{ const d = ({DRAWN_WIDTH})('slow'); return d.state === 'RUNNING'"
        " && d.pixels > w + 4; }",
        arg=drawn["pixels"],
    )
    wait_bar(page, "slow", "COMPLETED")
    wait_status(page, "COMPLETED")


def map_nodes():
    return [
        {"id": "start", "handler": "input"},
        py(
            "square",
            "add",
            ["start"],
            kwargs={"a": "{{ item }}", "b": 1},
            map="{{ start.output.data['values'] }}",
        ),
        {"id": "total", "handler": "output", "dependencies": ["square"]},
    ]


def test_grid_cells_are_coloured_by_state_and_open_that_node_with_its_items(worker, page, user):
    version = workflow(user, map_nodes())
    good = [started(version, user, {"values": [1, 2, 3]}) for _ in range(2)]
    bad = started(version, user, {"values": [1, "x", 3, 4]})
    for run in [*good, bad]:
        wait_for_run(run.pk)
    page.goto(f"/dashboard/workflows/{version.workflow.name}/")
    cell = page.locator(f"#workflow-grid a.tg-cell[href$='/runs/{bad.pk}/#node=square']")
    assert cell.get_attribute("data-state") == "FAILED"
    colours = page.evaluate(
        """() => {
            const css = (name) => {
                const probe = document.createElement('i');
                probe.style.color = `var(${name})`;
                document.body.append(probe);
                const value = getComputedStyle(probe).color;
                probe.remove();
                return value;
            };
            const cell = (state) => getComputedStyle(
                document.querySelector(`#workflow-grid a.tg-cell[data-state=${state}]`))
                .backgroundColor;
            return {
                failed: [cell('FAILED'), css('--state-failed-fg')],
                completed: [cell('COMPLETED'), css('--state-completed-fg')],
                upstream: [cell('UPSTREAM_FAILED'), css('--state-upstream-fg')],
            };
        }"""
    )
    for drawn, wanted in colours.values():
        assert drawn == wanted
    # Newest run first: the failed one is the first column.
    columns = page.eval_on_selector_all("#workflow-grid thead a.tg-run", "a => a.map(x => x.href)")
    assert columns[0].endswith(f"/runs/{bad.pk}/") and len(columns) == 3
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#workflow-grid").screenshot(path=str(SHOTS / "grid.png"))

    cell.click()
    page.wait_for_url(f"**/runs/{bad.pk}/#node=square")
    items = page.locator("#node-panel [data-role=map-items]")
    items.wait_for()
    assert items.locator("[data-testid=items-completed] b").inner_text() == "3"
    assert items.locator("[data-testid=items-failed] b").inner_text() == "1"
    failed_row = items.locator("tr[data-item='1']")
    assert failed_row.get_attribute("data-state") == "FAILED"
    assert "item 1:" in failed_row.inner_text()
    # Only the failed items.
    page.click("#node-panel [data-testid=items-failed]")
    page.wait_for_function(
        "() => document.querySelectorAll('#node-panel [data-role=map-items] tr[data-item]')"
        ".length === 1"
    )
    assert page.locator("#node-panel tr[data-item]").get_attribute("data-item") == "1"


def test_timeline_of_a_1000_node_run_draws_only_the_rows_in_view(page, user, capsys):
    """No worker: a finished 1,000-node fan-out written straight to the database."""
    nodes = [py("root", "add", kwargs={"a": 1, "b": 1})] + [
        py(f"leaf{i:04}", "add", ["root"], kwargs={"a": i, "b": 1}) for i in range(1000)
    ]
    run = create_run(workflow(user, nodes), user)
    start = timezone.now() - timedelta(minutes=5)
    Run.objects.filter(pk=run.pk).update(
        status="COMPLETED", started_at=start, finished_at=start + timedelta(seconds=60)
    )
    for block in range(10):  # ten waves of 100 leaves, each later than the last
        began = start + timedelta(seconds=2 + 5 * block)
        NodeRun.objects.filter(run=run, node_id__startswith=f"leaf0{block}").update(
            state="COMPLETED",
            attempt=1,
            queued_at=began - timedelta(seconds=1),
            started_at=began,
            finished_at=began + timedelta(seconds=4),
        )
    NodeRun.objects.filter(run=run, node_id="root").update(
        state="COMPLETED", attempt=1, started_at=start, finished_at=start + timedelta(seconds=1)
    )
    page.goto(f"/dashboard/runs/{run.pk}/")
    took = page.evaluate(
        """async () => {
            const t = performance.now();
            await window.trellisTimeline.show('timeline');
            return performance.now() - t;
        }"""
    )
    assert page.evaluate("() => window.trellisTimeline.model.nodes.length") == 1001
    # The same handful of elements for 1,001 rows: one canvas, no element per node.
    assert page.evaluate("() => document.querySelectorAll('#timeline-card *').length") < 20
    wait_bar(page, "leaf0000", "COMPLETED")
    page.evaluate(
        "() => { const s = document.querySelector('.timeline-scroll');"
        " s.scrollTop = s.scrollHeight; }"
    )
    wait_bar(page, "leaf0999", "COMPLETED")
    redraw = page.evaluate(
        """() => {
            const s = document.querySelector('.timeline-scroll');
            const t = performance.now();
            for (let i = 0; i < 20; i += 1) {
                s.scrollTop = (i * 997) % s.scrollHeight;
                s.dispatchEvent(new Event('scroll'));
                window.trellisTimeline.draw();
            }
            return (performance.now() - t) / 20;
        }"""
    )
    with capsys.disabled():
        print(f"\n1,001-node timeline: load + first draw {took:.0f} ms, a redraw {redraw:.1f} ms")


def test_the_timeline_and_a_map_panel_fit_a_phone(worker, phone, user):
    version = workflow(user, map_nodes())
    run = started(version, user, {"values": [1, "x", 3]})
    wait_for_run(run.pk)
    phone.goto(f"/dashboard/runs/{run.pk}/#node=square")
    phone.wait_for_selector("#node-panel [data-role=map-items] tr[data-item='1']")
    test_browser_layout.measure(phone, "run page with a map node's items")
    open_timeline(phone)
    wait_bar(phone, "square", "FAILED")
    test_browser_layout.measure(phone, "run page's timeline")
    width = phone.evaluate("() => document.querySelector('.timeline-canvas').clientWidth")
    assert 0 < width <= 390
