"""Limits on what users send and what nodes produce (DESIGN §2 and §13).

Every limit is a setting (README "Limits"); exceeding one is a clear error, never a crash:
the API answers 400 or 413 with its error shape, a node fails with a sentence naming the
setting, an oversized event is stored as a marker saying what was dropped.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings


class PayloadTooLarge(Exception):
    """A request part over its limit; the API answers 413."""

    def __init__(self, message: str, path: str = "$") -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON (how it is stored)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode())


def json_depth(value: Any) -> int:
    """Nesting depth of JSON data (a scalar is 0, ``[]`` is 1), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            deepest = max(deepest, depth)
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def check_depth(value: Any, what: str = "the JSON document") -> None:
    """Raise ``ValueError`` when ``value`` nests deeper than ``TRELLIS_MAX_JSON_DEPTH``, or
    holds a NUL character in a string or key (PostgreSQL's jsonb cannot store one, so it is
    refused on every database alike)."""
    limit = settings.TRELLIS_MAX_JSON_DEPTH
    if json_depth(value) > limit:
        raise ValueError(f"{what} is nested deeper than {limit} levels (TRELLIS_MAX_JSON_DEPTH).")
    if _has_nul(value):
        raise ValueError(f"{what} contains a NUL character (\\u0000), which cannot be stored.")


def _has_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def check_event_data(data: Any, path: str = "$.data") -> None:
    """Raise :class:`PayloadTooLarge` for event data over ``TRELLIS_MAX_EVENT_BYTES``."""
    limit = settings.TRELLIS_MAX_EVENT_BYTES
    size = json_size(data)
    if size > limit:
        raise PayloadTooLarge(
            f"the event data is {size} bytes, over the limit of {limit} (TRELLIS_MAX_EVENT_BYTES).",
            path,
        )


def clip_event_data(data: Any) -> Any:
    """Event data a handler emits, or a marker in its place when it is over the limit (a log
    line too large to keep must not fail the node that wrote it)."""
    limit = settings.TRELLIS_MAX_EVENT_BYTES
    size = json_size(data)
    if size <= limit:
        return data
    return {"dropped": f"{size} bytes of event data, over TRELLIS_MAX_EVENT_BYTES ({limit})"}
