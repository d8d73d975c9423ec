"""Markdown from handlers and prompts, rendered and sanitized (frontend/markdown.py)."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from frontend.markdown import render_markdown

pytestmark = pytest.mark.unit


class Elements(HTMLParser):
    """Every start tag with its attributes, as the browser would build them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Elements()
    parser.feed(html)
    return parser.tags


HOSTILE = """
<script>alert(1)</script>
<img src=x onerror="alert(2)">
<b onmouseover="alert(3)">bold</b>
<a href="javascript:alert(4)">js link</a>
[md js link](javascript:alert(5))
<a href="JaVaScRiPt:alert(6)">mixed case</a>
<iframe src="https://evil.example"></iframe>
<style>body { display: none }</style>
<form action="https://evil.example"><input name=x></form>
<div style="position:fixed" class="x">styled</div>
"""


def test_scripts_event_handlers_and_javascript_links_are_removed():
    html = render_markdown(HOSTILE)
    tags = elements(html)
    names = {tag for tag, _ in tags}
    assert not names & {"script", "img", "iframe", "style", "form", "input"}
    for _, attrs in tags:
        assert not [name for name in attrs if name.startswith("on")]
        assert "style" not in attrs
        assert not (attrs.get("href") or "").lower().startswith("javascript")
    assert "alert(1)" not in html  # the script's body goes with it
    assert "bold" in html and "js link" in html and "styled" in html  # text is kept


def test_headings_lists_code_tables_and_safe_links_survive():
    html = render_markdown(
        "# Title\n\n## Sub\n\n- one\n- two\n\n1. first\n\n"
        "Some `inline` and **strong** and _em_.\n\n"
        "```python\nprint('<hi>')\n```\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
        "[docs](https://example.com/x) <mailto:ops@example.com>\n"
    )
    names = [tag for tag, _ in elements(html)]
    for tag in ("h1", "h2", "ul", "ol", "li", "code", "pre", "strong", "em", "table", "td"):
        assert tag in names, tag
    assert "print(&#x27;&lt;hi&gt;&#x27;)" in html or "print('&lt;hi&gt;')" in html
    links = [attrs for tag, attrs in elements(html) if tag == "a"]
    assert {"https://example.com/x", "mailto:ops@example.com"} == {a["href"] for a in links}
    assert all("noopener" in (a.get("rel") or "") for a in links)


def test_empty_and_plain_text():
    assert render_markdown("") == ""
    assert render_markdown(None) == ""
    assert render_markdown("a < b & c") == "<p>a &lt; b &amp; c</p>\n"
