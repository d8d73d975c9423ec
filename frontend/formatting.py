"""How the dashboard writes times, durations and JSON, in views and templates alike.

The shapes (``runs.services.shapes``) carry datetimes as ISO 8601 strings; these helpers take
those strings or datetimes, so a page shows the same text whichever it was given. Templates
use them as filters (``{% load trellis %}``): ``isodate`` formats as Django's ``date`` filter
does (local time, the same format strings), ``duration`` and ``pretty_json``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.template.defaultfilters import date as date_filter
from django.utils.timezone import template_localtime


def parse_time(value: datetime | str | None) -> datetime | None:
    """A datetime, or an ISO 8601 string read as one; None when empty or unreadable."""
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def isodate(value: datetime | str | None, fmt: str | None = None) -> str:
    """``value`` as ``{{ value|date:fmt }}`` writes a datetime; empty when there is none."""
    moment = parse_time(value)
    if moment is None:
        return ""
    return date_filter(template_localtime(moment), fmt)


def duration(start: datetime | str | None, end: datetime | str | None) -> str:
    """``0.42 s``, ``12.0 s``, ``3 min 05 s``, ``2 h 01 min``; empty when not started or not
    finished (the page's script counts running ones)."""
    start, end = parse_time(start), parse_time(end)
    if start is None or end is None:
        return ""
    seconds = max(0.0, (end - start).total_seconds())
    if seconds < 60:
        return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)
