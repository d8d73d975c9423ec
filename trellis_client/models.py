"""Typed results: one dataclass per object of the API, each keeping the answer it came from
in ``raw`` (fields the server adds later are there before this module knows them).

Date-times are parsed to aware ``datetime`` objects; everything else is as the API sends it
(its one JSON shape per object: ``runs/services/shapes.py`` on the server).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from .errors import ErrorDetail, error_details

RUN_FINISHED = ("COMPLETED", "FAILED", "CANCELLED")
_DATES = {"created_at", "updated_at", "started_at", "finished_at", "queued_at", "last_seen",
          "stopped_at", "ts"}  # fmt: skip

T = TypeVar("T", bound="Model")


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 string from the API as a datetime (None when absent or unreadable)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass
class Model:
    """Base of the typed results: :meth:`from_dict` fills the fields the answer has."""

    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False, kw_only=True)

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        values: dict[str, Any] = {}
        for item in dataclasses.fields(cls):
            if item.name == "raw" or item.name not in data:
                continue
            value = data[item.name]
            values[item.name] = parse_time(value) if item.name in _DATES else value
        return cls(**cls._convert(values), raw=data)

    @classmethod
    def _convert(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Nested objects typed (subclasses override)."""
        return values


@dataclass
class Workflow(Model):
    """A workflow; ``spec`` is its latest version's document (``get_workflow`` only)."""

    name: str = ""
    description: str = ""
    latest_version: int = 0
    owner: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    spec: dict[str, Any] | None = None


@dataclass
class Version(Model):
    """One version of a workflow; ``spec`` is absent in a list of versions."""

    workflow: str = ""
    version: int = 0
    created_at: datetime | None = None
    created_by: str | None = None
    spec: dict[str, Any] | None = None


@dataclass
class PushResult(Model):
    """The answer to a push: ``created`` is False when the spec was identical to the latest."""

    name: str = ""
    version: int = 0
    created: bool = False


@dataclass
class ValidationResult(Model):
    """A dry run of a spec: ``plan`` is the node ids layer by layer when ``valid``."""

    valid: bool = False
    errors: list[ErrorDetail] = field(default_factory=list)
    plan: list[list[str]] = field(default_factory=list)

    @classmethod
    def _convert(cls, values: dict[str, Any]) -> dict[str, Any]:
        return {**values, "errors": error_details(values.get("errors"))}


@dataclass
class Node(Model):
    """A node of a run: its state, attempt, output or error, and timings."""

    id: str = ""
    handler: str = ""
    state: str = ""
    attempt: int = 0
    max_attempts: int = 1
    queue: str | None = None
    output: Any = None
    error: Any = None
    attempts: list[Any] = field(default_factory=list)
    worker: str | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    warning: str | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish (None until both are known)."""
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


@dataclass
class Run(Model):
    """A run; ``nodes`` and ``result`` come with ``get_run`` (a list row leaves them out)."""

    id: str = ""
    workflow: str = ""
    version: int = 0
    status: str = ""
    owner: str | None = None
    inputs: Any = None
    params: Any = None
    session: str | None = None
    parent_node: str | None = None
    error: Any = None
    waiting: Any = None
    needs_input: bool = False
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    nodes: list[Node] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    result: Any = None

    @property
    def finished(self) -> bool:
        return self.status in RUN_FINISHED

    @classmethod
    def _convert(cls, values: dict[str, Any]) -> dict[str, Any]:
        return {**values, "nodes": [Node.from_dict(n) for n in values.get("nodes") or []]}


@dataclass
class RunResult(Model):
    """A run's result: ``completed`` is True once the run is finished, whatever its status."""

    id: str = ""
    status: str = ""
    completed: bool = False
    result: Any = None
    error: Any = None


@dataclass
class Event(Model):
    """One event of a run's history or stream (``kind``: ``run.status``, ``node.status``,
    ``node.log``, ``run.result`` …)."""

    id: int = 0
    run: str = ""
    ts: datetime | None = None
    kind: str = ""
    node: str = ""
    data: Any = None


@dataclass
class Session(Model):
    """A session and its JSON state, shared by the runs started in it."""

    id: str = ""
    name: str = ""
    state: dict[str, Any] = field(default_factory=dict)
    revision: int = 0
    owner: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass
class Worker(Model):
    """A Celery worker and its liveness (``alive``, ``stale`` or ``dead``)."""

    hostname: str = ""
    pid: int | None = None
    queues: list[str] = field(default_factory=list)
    concurrency: int | None = None
    started_at: datetime | None = None
    last_seen: datetime | None = None
    stopped_at: datetime | None = None
    liveness: str = ""
    nodes_running: int = 0
