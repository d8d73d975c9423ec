"""The spec's vocabulary: its keys and limits, the parsed types and the error type.

Also the small helpers that :mod:`.checker` and :mod:`.documents` share (settings lookups,
JSONPath formatting, the error list).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEFAULT_KEYS",
    "DEFAULT_TRIGGER_RULE",
    "MAX_BACKOFF",
    "MAX_NAME_LENGTH",
    "MAX_RETRIES",
    "NODE_ID_PATTERN",
    "NODE_KEYS",
    "OPTION_KNOBS",
    "QUEUE_PATTERN",
    "TOP_LEVEL_KEYS",
    "TRIGGER_RULES",
    "NodeSpec",
    "SpecError",
    "WorkflowSpec",
]

TRIGGER_RULES = ("all_success", "all_done", "none_failed")
TOP_LEVEL_KEYS = (
    "name",
    "description",
    "inputs",
    "defaults",
    "schedule",
    "dag",
    "max_concurrent_runs",
)
NODE_KEYS = (
    "id",
    "handler",
    "dependencies",
    "config",
    "retries",
    "backoff",
    "timeout",
    "queue",
    "when",
    "map",
    "trigger_rule",
    "description",
)
DEFAULT_KEYS = ("retries", "backoff", "timeout", "queue", "trigger_rule")
DEFAULT_TRIGGER_RULE = "all_success"
# The knob a node option falls back to when neither the node nor the spec's `defaults` sets
# it (the queue's knob may be unset too: then the Celery app's default queue).
OPTION_KNOBS = {
    "retries": "TRELLIS_DEFAULT_RETRIES",
    "backoff": "TRELLIS_DEFAULT_BACKOFF",
    "timeout": "TRELLIS_DEFAULT_NODE_TIMEOUT",
    "queue": "TRELLIS_DEFAULT_QUEUE",
}
NODE_ID_PATTERN = r"[A-Za-z_][A-Za-z0-9_-]{0,99}"
QUEUE_PATTERN = r"[A-Za-z0-9_.-]{1,100}"
MAX_NAME_LENGTH = 200
MAX_RETRIES = 100
MAX_BACKOFF = 3600.0

_MAX_MESSAGE = 300


# --------------------------------------------------------------------------- types


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One node with its effective settings (node value > spec defaults > settings)."""

    id: str
    handler: str
    dependencies: tuple[str, ...]
    config: dict[str, Any]
    retries: int
    backoff: float
    timeout: float
    queue: str
    when: str | None
    map: str | None
    trigger_rule: str
    refs: frozenset[str]  # node ids read by any template in config / when / map
    description: str = ""


@dataclass(frozen=True, slots=True)
class WorkflowSpec:
    """A validated workflow document and the graph facts derived from it."""

    name: str
    description: str
    inputs_schema: dict[str, Any] | None
    defaults: dict[str, Any]
    schedule: str | None
    nodes: dict[str, NodeSpec]  # in document order
    children: dict[str, tuple[str, ...]]  # every node id, children in document order
    layers: list[list[str]]  # topological generations, each in document order
    output_nodes: tuple[str, ...]
    doc: dict[str, Any]
    max_concurrent_runs: int | None = None
    roots: tuple[str, ...] = field(default=())


class SpecError(Exception):
    """An invalid spec. ``errors`` is the full list of ``{"path", "message"}`` dicts."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = list(errors) or [{"path": "$", "message": "the spec is invalid"}]
        first = self.errors[0]
        count = len(self.errors)
        more = "…" if count > 1 else ""
        super().__init__(
            f"{count} error{'s' if count != 1 else ''}: {first['path']}: {first['message']}{more}"
        )

    def __reduce__(self) -> tuple[type[SpecError], tuple[list[dict[str, str]]]]:
        return (type(self), (self.errors,))


# --------------------------------------------------------------------------- helpers


def _key_path(base: str, key: Any) -> str:
    """``$.a`` for plain keys, ``$['a-b']`` for others (JSONPath)."""
    if isinstance(key, int):
        return f"{base}[{key}]"
    key = str(key)
    if key.isascii() and key.isidentifier():
        return f"{base}.{key}"
    quoted = key.replace("\\", "\\\\").replace("'", "\\'")
    return f"{base}['{quoted}']"


def _clip(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 1] + "…"


class _Errors(list[dict[str, str]]):
    """The error list; ``add`` makes each message one clipped sentence."""

    def add(self, path: str, message: str) -> None:
        message = message.strip()
        if not message.endswith((".", "!", "?", "…")):
            message += "."
        self.append({"path": path, "message": _clip(message)})
