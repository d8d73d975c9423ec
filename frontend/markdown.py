"""Markdown from handlers (``ctx.markdown``, a waiting node's prompt) as safe HTML.

The one place the dashboard turns Markdown into HTML: the node panel, the waiting node's
form and the fragment the run page fetches for a live ``node.markdown`` event all call
:func:`render_markdown`. markdown-it-py renders CommonMark (with tables and strikethrough;
raw HTML passes through), then nh3 (the Ammonia sanitizer) keeps only the tags and
attributes below: no scripts, styles, frames or forms, no ``on*`` attributes, and links only
to http, https and mailto URLs.
"""

from __future__ import annotations

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt",
    "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "kbd", "li", "ol", "p", "pre", "s",
    "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "th", "thead", "tr",
    "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "code": {"class"},  # ``language-…`` from fenced code blocks
    "ol": {"start"},
    "td": {"align"},
    "th": {"align"},
}
URL_SCHEMES = {"http", "https", "mailto"}

_parser = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def render_markdown(text: str) -> SafeString:
    """``text`` (Markdown) as sanitized HTML, safe to put in a page as it is."""
    html = _parser.render(str(text or ""))
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return mark_safe(clean)  # noqa: S308 - sanitized by nh3 just above
