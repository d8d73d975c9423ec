"""Every Trellis knob: its ``TRELLIS_…`` setting name, default and meaning, in one table.

The table is the one source of defaults:

- the standalone ``orchestration/settings.py`` reads each knob from the environment with
  these defaults;
- in a host project, :func:`apply_defaults` (``runs`` app ready) fills in every knob the
  host's settings leave out, so the apps never meet a missing ``TRELLIS_…`` attribute;
- the pure rules read a knob with :func:`setting`, which also works without Django settings
  (the unit tests, a client).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class Knob:
    default: Any
    help: str
    minimum: float | None = None


MIB = 1024 * 1024

KNOBS: dict[str, Knob] = {
    # Limits of what a workflow may be and do
    "TRELLIS_MAX_NODES": Knob(10_000, "Nodes a workflow may have.", 1),
    "TRELLIS_MAX_SPEC_BYTES": Knob(5 * MIB, "Size of a workflow document, in bytes.", 1024),
    "TRELLIS_MAX_REQUEST_BYTES": Knob(
        5 * MIB + 64 * 1024, "Size of a request body (DATA_UPLOAD_MAX_MEMORY_SIZE).", 1024
    ),
    "TRELLIS_MAX_TEMPLATE_LENGTH": Knob(10_000, "Characters of one template.", 10),
    "TRELLIS_MAX_RENDERED_BYTES": Knob(1_000_000, "Bytes one template may render to.", 1024),
    "TRELLIS_MAX_RENDER_SECONDS": Knob(2.0, "Seconds one template may take to render.", 0.01),
    "TRELLIS_MAX_MAP_ITEMS": Knob(1000, "Items a `map` node may fan out to.", 1),
    "TRELLIS_MAX_EVENT_BYTES": Knob(256 * 1024, "Size of one event's data, in bytes.", 256),
    "TRELLIS_MAX_JSON_DEPTH": Knob(64, "Nesting depth of inputs, outputs and events.", 4),
    "TRELLIS_MAX_OUTPUT_BYTES": Knob(5 * MIB, "Size of a node's output, in bytes.", 1024),
    "TRELLIS_MAX_NODE_TIMEOUT": Knob(3600, "The longest `timeout` a node may ask for (s).", 1),
    # Node defaults
    "TRELLIS_DEFAULT_NODE_TIMEOUT": Knob(300, "A node's timeout when its spec sets none (s).", 1),
    "TRELLIS_DEFAULT_RETRIES": Knob(0, "A node's retries when its spec sets none.", 0),
    "TRELLIS_DEFAULT_BACKOFF": Knob(1.0, "First retry delay when the spec sets none (s).", 0),
    "TRELLIS_MAX_BACKOFF": Knob(300.0, "The longest delay between two attempts (s).", 0),
    "TRELLIS_DEFAULT_QUEUE": Knob(
        None, "The Celery queue of nodes without `queue`; None: the Celery app's default queue."
    ),
    # Handlers
    "TRELLIS_LLM_BASE_URL": Knob("", "OpenAI-compatible server of `call_llm_service` nodes."),
    "TRELLIS_LLM_API_KEY": Knob("", "API key sent to TRELLIS_LLM_BASE_URL only."),
    "TRELLIS_LLM_MODEL": Knob("", "Model of LLM nodes that name none."),
    "TRELLIS_EGRESS_ALLOW": Knob(
        [], "Private hosts, domains or networks that HTTP and LLM nodes may reach."
    ),
    "TRELLIS_SECRETS": Knob({}, "Secrets by name for `{{ secrets.NAME }}` (or TRELLIS_SECRET_*)."),
    "TRELLIS_CAPTURE_LOG_LEVEL": Knob(
        "INFO", "Handlers' `logging` records from this level become node logs (OFF: none)."
    ),
    "TRELLIS_CAPTURE_LOG_LINES": Knob(
        200, "Lines of `logging` and `print` output kept per node attempt.", 0
    ),
    "TRELLIS_CAPTURE_LINE_BYTES": Knob(2000, "Bytes of one captured line; the rest is cut.", 80),
    # Workers and recovery
    "TRELLIS_HEARTBEAT_SECONDS": Knob(5.0, "How often a worker reports it is alive (s).", 0.1),
    "TRELLIS_WORKER_DEAD_AFTER": Knob(30.0, "Silence before a worker counts as lost (s).", 0.5),
    "TRELLIS_RECONCILE_SECONDS": Knob(5.0, "How often beat runs the reconciler (s).", 0.5),
    "TRELLIS_RESEND_QUEUED_AFTER": Knob(
        120.0, "A node QUEUED this long with no worker taking it is sent again (s).", 1
    ),
    "TRELLIS_QUEUE_LIMITS": Knob({}, "Running nodes allowed per queue, e.g. {'llm': 4}."),
    "TRELLIS_QUEUE_RETRY_SECONDS": Knob(1.0, "Retry period of a node held by a queue limit.", 0.05),
    "TRELLIS_SHUTDOWN_GRACE": Knob(25.0, "Seconds a stopping worker lets running nodes finish.", 0),
    "TRELLIS_CONTINUE_HOPS": Knob(
        50,
        "Nodes a worker runs in the same task after its own, when they become ready on its"
        " queue (0: every node goes through the broker).",
        0,
    ),
    "TRELLIS_CONTINUE_SECONDS": Knob(
        30.0,
        "How long after it began a task may still take a further node (s); node messages"
        " carry this much more time limit, each node's own timeout is kept in the worker.",
        0,
    ),
    "TRELLIS_LOST_ATTEMPTS": Knob(3, "Attempts lost with their worker before a node fails.", 0),
    "TRELLIS_WORKER_DB_MAX_AGE": Knob(300, "Seconds a worker keeps a database connection.", 0),
    "TRELLIS_RETENTION_DAYS": Knob(0, "Delete finished runs older than this (0: keep all).", 0),
    # Streams and the web process
    "TRELLIS_STREAM_HEARTBEAT_SECONDS": Knob(15.0, "Idle seconds before an SSE keep-alive.", 0.05),
    "TRELLIS_STREAM_RECHECK_SECONDS": Knob(
        5.0, "How often an idle stream re-reads the event table (s).", 0.05
    ),
    "TRELLIS_SERVE_STATIC": Knob(True, "The ASGI app serves static files (daphne does not)."),
    "TRELLIS_METRICS_TOKEN": Knob("", "Bearer token for /metrics (staff sessions always work)."),
    # Standalone stack (orchestration/): where it keeps its files
    "TRELLIS_DATA_DIR": Knob(None, "Data dir (SQLite, embedded Valkey); None: BASE_DIR/.trellis."),
    "TRELLIS_EXAMPLES_DIR": Knob(None, "Specs `manage.py up` imports at start; None: none."),
    "TRELLIS_EMBEDDED_REDIS": Knob(False, "Start the embedded Valkey (standalone, no REDIS_URL)."),
    "TRELLIS_LOG_FORMAT": Knob("text", "Log lines as `text` or `json`."),
}

_MISSING = object()


def setting(name: str, default: Any = _MISSING) -> Any:
    """The value of knob ``name``: Django's setting when configured, else the table's (or
    ``default``'s) value."""
    if default is _MISSING:
        default = KNOBS[name].default
    try:
        return getattr(settings, name, default)
    except ImproperlyConfigured:  # settings not configured: pure use outside Django
        return default


def default_queue() -> str:
    """The queue of nodes that name none: TRELLIS_DEFAULT_QUEUE, else the Celery app's default
    queue as Django settings give it (``CELERY_TASK_DEFAULT_QUEUE``; Celery's own default is
    ``celery``), so that a worker started the conventional way serves it."""
    return setting("TRELLIS_DEFAULT_QUEUE") or setting("CELERY_TASK_DEFAULT_QUEUE", "celery")


def default_of(name: str) -> Any:
    """The default of knob ``name`` (a fresh copy of a list or dict)."""
    value = KNOBS[name].default
    return type(value)(value) if isinstance(value, list | dict) else value


def apply_defaults(target: Any) -> list[str]:
    """Give ``target`` (Django's settings) every knob it lacks, at its default; return the
    names it lacked. ``TRELLIS_DATA_DIR`` defaults to ``BASE_DIR / ".trellis"`` (the working
    directory's when there is no ``BASE_DIR``)."""
    missing = [name for name in KNOBS if not hasattr(target, name)]
    for name in missing:
        value = default_of(name)
        if name == "TRELLIS_DATA_DIR":
            value = Path(getattr(target, "BASE_DIR", None) or Path.cwd()) / ".trellis"
        setattr(target, name, value)
    return missing
