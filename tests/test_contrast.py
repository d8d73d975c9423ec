"""WCAG AA contrast (4.5:1 for normal text) of the dashboard's state badges, read from trellis.css.

How the pairs are found (no browser, no Django):

* The scheme: ``:root`` defines, for every state, ``--state-<state>-fg`` (text) and
  ``--state-<state>-bg`` (the badge's background). Each fg must have its bg and reach 4.5:1 on it,
  and on the white card (buttons and form errors use the fg alone).
* The rules: every rule that sets both ``color`` and ``background`` (badges, pills, alerts, event
  kinds, buttons...), with both resolving (through ``var()``) to a plain colour.
* The graph: for each ``.dag-node.state-<state>``, the fill of its ``.state-text`` and ``.label``
  on the fill of its ``.box`` (falling back to the plain ``.dag-node`` rules, as the cascade does).

The strong ``--<state>`` colours are for stripes, dots and bars (graphics) and are not checked here.
"""

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

CSS = Path(__file__).resolve().parent.parent / "frontend" / "static" / "frontend" / "trellis.css"
AA = 4.5


def parse(text: str) -> list[tuple[list[str], dict[str, str]]]:
    """(selectors, declarations) for every innermost rule; at-rule wrappers are looked through."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    rules = []
    for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", text):
        selectors = [s.strip() for s in selector.split(",") if s.strip()]
        declarations = {}
        for declaration in body.split(";"):
            name, sep, value = declaration.partition(":")
            if sep:
                declarations[name.strip()] = value.strip()
        rules.append((selectors, declarations))
    return rules


RULES = parse(CSS.read_text())
ROOT = {k: v for selectors, decls in RULES if selectors == [":root"] for k, v in decls.items()}


def resolve(value: str | None, depth: int = 0) -> str | None:
    """A ``#rgb``/``#rrggbb`` colour, following ``var()``; None for anything else."""
    if value is None or depth > 10:
        return None
    value = value.replace("!important", "").strip()
    var = re.fullmatch(r"var\((--[\w-]+)\)", value)
    if var:
        return resolve(ROOT.get(var.group(1)), depth + 1)
    if value in ("#fff", "white"):
        return "#ffffff"
    if re.fullmatch(r"#[0-9a-fA-F]{3}", value):
        return "#" + "".join(c * 2 for c in value[1:])
    if re.fullmatch(r"#[0-9a-fA-F]{6}", value):
        return value.lower()
    return None


def luminance(colour: str) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_contrast_formula_matches_known_values():
    assert contrast("#000000", "#ffffff") == pytest.approx(21)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


# ------------------------------------------------------------------------------ the scheme

SCHEME = sorted({m.group(1) for k in ROOT if (m := re.fullmatch(r"--state-([\w-]+)-(?:fg|bg)", k))})


def test_every_state_has_a_text_and_a_background_colour():
    assert len(SCHEME) >= 12, SCHEME  # the parse found the scheme
    for state in SCHEME:
        assert resolve(ROOT.get(f"--state-{state}-fg")), f"--state-{state}-fg"
        assert resolve(ROOT.get(f"--state-{state}-bg")), f"--state-{state}-bg"


@pytest.mark.parametrize("state", SCHEME)
def test_state_text_on_its_badge_background(state):
    fg, bg = resolve(ROOT[f"--state-{state}-fg"]), resolve(ROOT[f"--state-{state}-bg"])
    ratio = contrast(fg, bg)
    assert ratio >= AA, f"{state}: {fg} on {bg} is {ratio:.2f}:1"


@pytest.mark.parametrize("state", SCHEME)
def test_state_text_on_a_card(state):
    fg, card = resolve(ROOT[f"--state-{state}-fg"]), resolve(ROOT["--card"])
    ratio = contrast(fg, card)
    assert ratio >= AA, f"{state}: {fg} on {card} is {ratio:.2f}:1"


# ------------------------------------------------------------------------------ the rules


def text_pairs() -> list[tuple[str, str, str]]:
    pairs = []
    for selectors, decls in RULES:
        background = decls.get("background-color", decls.get("background"))
        fg, bg = resolve(decls.get("color")), resolve(background)
        if fg and bg:
            pairs.append((", ".join(selectors), fg, bg))
    return pairs


TEXT_PAIRS = text_pairs()


def test_every_state_badge_sets_its_text_on_its_background():
    sizes = {".state-lg"}
    selectors = {s for group, _ in RULES for s in group}
    badges = {s for s in selectors if re.fullmatch(r"\.state(-\w+)?", s)} - sizes
    paired = {s for selector, _, _ in TEXT_PAIRS for s in selector.split(", ")}
    assert len(badges) >= 12, badges
    assert badges <= paired, badges - paired


@pytest.mark.parametrize(("selector", "fg", "bg"), TEXT_PAIRS, ids=[p[0] for p in TEXT_PAIRS])
def test_rule_text_on_its_background(selector, fg, bg):
    ratio = contrast(fg, bg)
    assert ratio >= AA, f"{selector}: {fg} on {bg} is {ratio:.2f}:1"


# ------------------------------------------------------------------------------ the graph


def dag_fill(state: str, part: str) -> str | None:
    """The fill of ``part`` in a node of this state: the state rule, else the plain rule."""
    for selector in (f".dag-node.state-{state} .{part}", f".dag-node .{part}"):
        for selectors, decls in RULES:
            if selector in selectors and "fill" in decls:
                return resolve(decls["fill"])
    return None


DAG_STATE = re.compile(r"\.dag-node\.state-(\w+)")
DAG_STATES = sorted({m.group(1) for group, _ in RULES for s in group if (m := DAG_STATE.match(s))})
DAG_TEXT = [(state, part) for state in DAG_STATES for part in ("state-text", "label")]


@pytest.mark.parametrize(("state", "part"), DAG_TEXT, ids=[f"{s}-{p}" for s, p in DAG_TEXT])
def test_graph_node_text_on_its_box(state, part):
    # .state-text sits inside .sub: with no fill of its own it is drawn in the .sub colour.
    fg = dag_fill(state, part) or (dag_fill(state, "sub") if part == "state-text" else None)
    bg = dag_fill(state, "box")
    assert fg and bg, (state, part, fg, bg)
    ratio = contrast(fg, bg)
    assert ratio >= AA, f".dag-node.state-{state} .{part}: {fg} on {bg} is {ratio:.2f}:1"


def test_graph_states_were_found():
    assert len(DAG_STATES) >= 10, DAG_STATES


# ------------------------------------------------------------------------------ the palette
# The dashboard's plain text colours (body, soft and muted text, links) drawn on every light
# surface the stylesheet paints: the page, cards, table headers and rows, code and <pre>,
# alerts, flashes, pills, event kinds, badges, the DAG's node boxes, and the colours that rows
# flash through. Graphics that never hold text are left out, each with its reason.

NOT_TEXT_SURFACES = {
    '.live[data-mode="live"] i',  # the live dot
    '.live[data-mode="polling"] i',
    ".progress-line",  # a 6 px track
    ".summary-bar",  # a 10 px bar
    ".dag-scroll",  # behind the graph picture: its nodes draw their own boxes
}
LIGHT = 0.4  # relative luminance: dark surfaces (the sidebar, toasts) carry light text


def light_surfaces() -> dict[str, str]:
    """colour → the first selector painting it, for every light background (and DAG box fill)."""
    surfaces: dict[str, str] = {}
    for selectors, decls in RULES:
        if set(selectors) & NOT_TEXT_SURFACES:
            continue
        boxes = any(s.endswith(" .box") for s in selectors)
        for name in ("background", "background-color", "fill"):
            if name == "fill" and not boxes or name not in decls:
                continue
            for token in re.findall(r"var\(--[\w-]+\)|#[0-9a-fA-F]{3,6}\b|\bwhite\b", decls[name]):
                colour = resolve(token)
                if colour and luminance(colour) > LIGHT:
                    surfaces.setdefault(colour, selectors[0])
    return surfaces


SURFACES = light_surfaces()
PALETTE_TEXT = ("--fg", "--fg-soft", "--muted")


def test_the_light_surfaces_were_found():
    assert len(SURFACES) >= 20, SURFACES
    for expected in ("--bg", "--card", "--state-failed-bg", "--accent-soft"):
        assert resolve(ROOT[expected]) in SURFACES, expected
    assert "#fff7d6" in SURFACES  # a row's flash (keyframes are read too)


CASES = [(text, colour) for text in PALETTE_TEXT for colour in sorted(SURFACES)]


@pytest.mark.parametrize(("text", "surface"), CASES, ids=[f"{t}-on-{c}" for t, c in CASES])
def test_palette_text_on_every_light_surface(text, surface):
    fg = resolve(ROOT[text])
    ratio = contrast(fg, surface)
    assert ratio >= AA, f"{text} {fg} on {surface} ({SURFACES[surface]}) is {ratio:.2f}:1"


MUTED_RULES = [
    ", ".join(selectors)
    for selectors, decls in RULES
    if "var(--muted)" in (decls.get("color", ""), decls.get("fill", ""))
]


def test_muted_text_is_only_ever_the_muted_colour():
    # The check above covers muted text wherever it is drawn, because every rule that draws
    # it uses var(--muted) (DAG node subtitles and times among them) rather than a copy.
    assert any(".dag-node .sub" in r for r in MUTED_RULES), MUTED_RULES
    assert any(".dag-node .meta" in r for r in MUTED_RULES), MUTED_RULES
    assert len(MUTED_RULES) >= 15, MUTED_RULES


@pytest.mark.parametrize("state", DAG_STATES)
@pytest.mark.parametrize("part", ["sub", "meta"])
def test_graph_node_muted_text_on_its_box(state, part):
    """A node's handler name and time are drawn in the muted colour on the state's box."""
    fg, bg = dag_fill(state, part), dag_fill(state, "box")
    assert fg and bg, (state, part, fg, bg)
    ratio = contrast(fg, bg)
    assert ratio >= AA, f".dag-node.state-{state} .{part}: {fg} on {bg} is {ratio:.2f}:1"


@pytest.mark.parametrize("text", ["--side-fg", "#ffffff"])
def test_sidebar_text_on_the_sidebar(text):
    fg = resolve(ROOT.get(text, text))
    ratio = contrast(fg, resolve(ROOT["--side"]))
    assert ratio >= AA, f"{text} on --side is {ratio:.2f}:1"


def test_links_on_the_page_cards_and_table_rows():
    link = resolve(ROOT["--accent"])
    for surface in ("--bg", "--card", "--accent-soft"):
        ratio = contrast(link, resolve(ROOT[surface]))
        assert ratio >= AA, f"links on {surface}: {ratio:.2f}:1"
