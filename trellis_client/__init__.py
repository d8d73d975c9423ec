"""A Python client for Trellis's REST API, and the ``trellis`` command (:mod:`.cli`).

Importing it needs neither Django nor Trellis's server packages::

    from trellis_client import Client

    with Client("http://127.0.0.1:8000", token) as trellis:     # or Client(): TRELLIS_URL/_TOKEN
        trellis.push_workflow(Path("shout.yaml"))
        run = trellis.start_run("shout", {"name": "ada"})
        for event in trellis.follow(run.id):                     # live, resumes after a drop
            print(event.kind, event.node, event.data)
        print(trellis.get_run(run.id).result)

``AsyncClient`` has the same methods, awaited. Errors: :class:`ApiError` (``AuthError``,
``NotFound``, ``Conflict``, ``ValidationFailed``) and :class:`ConnectionFailed`.
"""

from .client import AsyncClient, Client
from .config import ConfigError
from .errors import (
    ApiError,
    AuthError,
    Conflict,
    ConnectionFailed,
    ErrorDetail,
    NotFound,
    TrellisError,
    ValidationFailed,
)
from .models import (
    Event,
    Node,
    PushResult,
    Run,
    RunResult,
    Session,
    ValidationResult,
    Version,
    Worker,
    Workflow,
)

__all__ = [
    "ApiError",
    "AsyncClient",
    "AuthError",
    "Client",
    "ConfigError",
    "Conflict",
    "ConnectionFailed",
    "ErrorDetail",
    "Event",
    "Node",
    "NotFound",
    "PushResult",
    "Run",
    "RunResult",
    "Session",
    "TrellisError",
    "ValidationFailed",
    "ValidationResult",
    "Version",
    "Worker",
    "Workflow",
]
