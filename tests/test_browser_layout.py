"""Layout in a real browser. The dashboard on a phone (390 × 844, the issue's measure): no page
scrolls sideways and no text is dark on dark. The admin's run page (1400 × 900, a laptop) fits
its width too. Headless Chromium against a real daphne, as in tests/test_browser.py,
whose fixtures and helpers this file shares.

The colour check reads what the browser computed: each visible element that holds text of its
own, its ``color`` against its effective background, found by walking up its ancestors to the
first opaque ``background-color``. A ``background-image`` on the way (a gradient) counts with
every colour it names, the darkest and lightest alike, so the sidebar's old gradient that stayed
behind the page on small screens fails this check.
"""

from __future__ import annotations

import re

import pytest

from runs.models import NodeRun
from tests.conftest import wait_for_run
from tests.specs import py
from tests.test_browser import (  # noqa: F401 - fixtures and marks used by name
    SHOTS,
    TIMEOUT_MS,
    browser,
    login,
    pytestmark,
    started,
    wait_status,
    workflow,
)

PHONE = {"width": 390, "height": 844}
AA = 4.5

# What the page measures: the sideways overflow, and every text element whose colour on its
# effective background is under AA, with both colours and the ratio (for the failure message).
MEASURE = """([aa, width]) => {
  const parse = (text) => {
    const m = text.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const [r, g, b, a = 1] = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return {r, g, b, a};
  };
  const colours = (image) => (image.match(/rgba?\\([^)]+\\)/g) || []).map(parse)
    .filter((c) => c && c.a > 0);
  const lum = ({r, g, b}) => {
    const ch = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * ch(r) + 0.7152 * ch(g) + 0.0722 * ch(b);
  };
  const ratio = (a, b) => {
    const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  };
  const backgrounds = (element) => {
    const found = [];
    for (let node = element; node; node = node.parentElement) {
      const style = getComputedStyle(node);
      if (style.backgroundImage !== 'none') found.push(...colours(style.backgroundImage));
      const colour = parse(style.backgroundColor);
      if (colour && colour.a >= 0.99) { found.push(colour); return found; }
    }
    found.push({r: 255, g: 255, b: 255, a: 1});  // the canvas
    return found;
  };
  const visible = (element) => {
    const box = element.getBoundingClientRect();
    const style = getComputedStyle(element);
    return box.width > 0 && box.height > 0 && style.visibility !== 'hidden'
      && Number(style.opacity) > 0 && !element.closest('[hidden], .hidden, .skip-link');
  };
  const ownText = (element) => [...element.childNodes]
    .some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
  const low = [];
  let checked = 0, headings = 0;
  for (const element of document.querySelectorAll('body *')) {
    if (['SCRIPT', 'STYLE', 'NOSCRIPT', 'OPTION'].includes(element.tagName)) continue;
    if (element.closest('svg') || !ownText(element) || !visible(element)) continue;
    const fg = parse(getComputedStyle(element).color);
    checked += 1;
    if (element.matches('h1, h1 *, h2, h2 *, h3, .brand *')) headings += 1;
    for (const bg of backgrounds(element)) {
      const r = ratio(fg, bg);
      if (r < aa) {
        const text = element.textContent.trim().slice(0, 30);
        low.push(`${element.tagName.toLowerCase()}.${element.className} "${text}": `
          + `${r.toFixed(2)}:1 (rgb ${fg.r},${fg.g},${fg.b} on ${bg.r},${bg.g},${bg.b})`);
        break;
      }
    }
  }
  // For the failure message: the outermost elements that reach past the right edge.
  const wide = [...document.querySelectorAll('body *')]
    .filter((e) => e.getBoundingClientRect().right > width + 0.5
      && !(e.parentElement && e.parentElement.getBoundingClientRect().right > width + 0.5))
    .slice(0, 8).map((e) => `${e.tagName.toLowerCase()}.${e.className.baseVal ?? e.className}`
      + ` (${Math.round(e.getBoundingClientRect().right)} px)`);
  return {
    scrollWidth: document.scrollingElement.scrollWidth, wide,
    innerWidth: window.innerWidth,
    checked, headings, low,
  };
}"""


@pytest.fixture
def phone(browser, web_server, user):  # noqa: F811 - the shared fixture, by name
    context = browser.new_context(viewport=PHONE, base_url=web_server, is_mobile=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    login(page)
    yield page
    context.close()
    assert not errors, errors


def measure(page, where: str) -> dict:
    page.wait_for_load_state("load")
    result = page.evaluate(MEASURE, [AA, PHONE["width"]])
    assert result["headings"] >= 1, f"{where}: no heading measured"
    # A mobile browser widens its layout viewport (and innerWidth) to fit a page that is too
    # wide: the viewport must still be the phone's.
    assert result["innerWidth"] == PHONE["width"], (
        f"{where}: laid out {result['innerWidth']} px wide; past the edge: {result['wide']}"
    )
    assert result["scrollWidth"] <= result["innerWidth"], (
        f"{where} scrolls sideways: {result['scrollWidth']} px wide at "
        f"{result['innerWidth']} px; past the edge: {result['wide']}"
    )
    assert not result["low"], f"{where}: text under {AA}:1: {result['low']}"
    return result


def test_every_page_fits_a_phone_with_readable_text(worker, phone, user):
    long_id = "a_node_with_a_rather_long_identifier_for_a_phone"
    version = workflow(
        user,
        [
            py("extract", "add", kwargs={"a": 1, "b": 2}),
            py(long_id, "echo", ["extract"], kwargs={"got": "{{ extract.output }}"}),
            py("fails", "boom", ["extract"], retries=1),
        ],
        inputs={
            "type": "object",
            "properties": {"label": {"type": "string", "default": "nightly"}},
        },
    )
    run = started(version, user)
    name = version.workflow.name

    phone.goto(f"/dashboard/runs/{run.pk}/")
    wait_status(phone, "FAILED")
    assert NodeRun.objects.get(run=run, node_id="fails").attempt == 2
    measured = {"run": measure(phone, "run page")}
    phone.click(".dag-node[data-node=fails]")  # a panel with an error, traceback and attempts
    phone.wait_for_selector(".panel[data-node=fails] .error-box")
    phone.wait_for_selector("#node-panel:not(.panel-loading) .panel[data-node=fails]")
    measured["run with panel"] = measure(phone, "run page with the node panel open")
    SHOTS.mkdir(parents=True, exist_ok=True)
    phone.screenshot(path=str(SHOTS / "phone.png"))  # docs/assets/phone.png is a copy

    for where, url in (
        ("runs list", "/dashboard/"),
        ("workflows list", "/dashboard/workflows/"),
        ("workflow page", f"/dashboard/workflows/{name}/"),
        ("workers page", "/dashboard/workers/"),
        ("sessions page", "/dashboard/sessions/"),
    ):
        phone.goto(url)
        measured[where] = measure(phone, where)
        phone.screenshot(path=str(SHOTS / f"phone-{where.replace(' ', '-')}.png"), full_page=True)
    # The check saw real pages: many text elements each, headings among them.
    assert all(m["checked"] >= 10 for m in measured.values()), measured


def test_the_admin_run_page_fits_a_laptop_and_shows_seconds(
    worker,
    browser,  # noqa: F811 - the shared fixture, by name
    web_server,
    admin_user,
):
    long_error = "a long error without spaces: " + "x" * 300
    version = workflow(
        admin_user,
        [
            py("first_node_with_a_long_name", "add", kwargs={"a": 1, "b": 2}),
            py("fails", "fail", ["first_node_with_a_long_name"], kwargs={"message": long_error}),
        ],
    )
    run = started(version, admin_user, {"token": "y" * 400})
    context = browser.new_context(viewport={"width": 1400, "height": 900}, base_url=web_server)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        page.goto("/admin/login/")
        page.fill("#id_username", admin_user.username)
        page.fill("#id_password", "password")
        page.click("input[type=submit]")
        page.wait_for_url("**/admin/")
        wait_for_run(run.pk)
        page.goto(f"/admin/trellis/run/{run.pk}/change/")
        widths = page.evaluate("() => [document.scrollingElement.scrollWidth, window.innerWidth]")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "admin-run.png"), full_page=True)
        assert widths[0] <= widths[1], f"the admin run page is {widths[0]} px wide at {widths[1]}"
        finished = page.locator(".field-finished_at_s .readonly").inner_text()
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", finished), finished  # seconds
    finally:
        context.close()
