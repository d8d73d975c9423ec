"""The handler registry and the small types handlers share with the engine.

A handler is a class registered by name with a JSON Schema for its config and a
``run(ctx, config)`` method returning JSON-serializable output. The engine imports this
module; this module imports nothing of the engine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .signatures import kwargs_schema


class HandlerError(Exception):
    """An expected node failure. ``retryable`` says whether another attempt may succeed."""

    def __init__(self, message: str, *, retryable: bool = False, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.data = data


@dataclass(frozen=True)
class WaitForEvent:
    """Instruction: park the node in WAITING until an event is posted for it (or timeout)."""

    timeout: float | None = None


@dataclass(frozen=True)
class StartChildRun:
    """Instruction: start a run of another workflow; the node completes with its result."""

    workflow: str
    inputs: dict[str, Any] = field(default_factory=dict)
    version: int | None = None
    timeout: float | None = None


Instruction = WaitForEvent | StartChildRun


class SessionHandle:
    """What a handler sees of its run's session: read, and atomic read-modify-write.

    The engine supplies the two callables; handlers never touch the database themselves.
    """

    def __init__(
        self,
        read: Callable[[], dict[str, Any]],
        update: Callable[[Callable[[dict[str, Any]], dict[str, Any] | None]], dict[str, Any]],
    ) -> None:
        self._read = read
        self._update = update

    def get(self) -> dict[str, Any]:
        """The session state now."""
        return self._read()

    def update(self, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any]:
        """Apply ``change(state)`` under a lock and return the new state. ``change`` may mutate
        the dict it gets and return None, or return a new dict."""
        return self._update(change)


class Context:
    """What a running handler sees of its run. Built by the engine for every attempt."""

    def __init__(
        self,
        *,
        run_id: str,
        node_id: str,
        attempt: int,
        inputs: dict[str, Any],
        upstream: dict[str, Any],
        dependencies: tuple[str, ...] = (),
        params: dict[str, Any] | None = None,
        deadline: float | None = None,
        emit: Callable[[str, Any], None] | None = None,
        is_cancelled: Callable[[], bool] | None = None,
        session: Any = None,
    ) -> None:
        self.run_id = run_id
        self.node_id = node_id
        self.attempt = attempt
        self.inputs = inputs
        self.upstream = upstream  # outputs of completed parents and referenced ancestors
        self.dependencies = tuple(dependencies)  # this node's direct parents, in spec order
        self.params = params or {}
        self.deadline = deadline  # time.time() value after which the node has timed out
        self.session = session
        self._emit = emit
        self._is_cancelled = is_cancelled

    def emit(self, kind: str, data: Any = None) -> None:
        """Record a node event (``node.<kind>`` unless kind already has a dot)."""
        if self._emit is not None:
            self._emit(kind, data)

    def log(self, message: str) -> None:
        self.emit("node.log", {"message": message})

    def markdown(self, text: str) -> None:
        self.emit("node.markdown", {"text": text})

    def progress(self, fraction: float, message: str = "") -> None:
        self.emit(
            "node.progress", {"fraction": max(0.0, min(1.0, float(fraction))), "message": message}
        )

    def is_cancelled(self) -> bool:
        return bool(self._is_cancelled and self._is_cancelled())

    def remaining(self) -> float | None:
        """Seconds left before the node's deadline (None when it has none)."""
        return None if self.deadline is None else max(0.0, self.deadline - time.time())


class Handler:
    """Base class for handlers. Subclasses set ``name`` (via @register) and ``config_schema``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}

    def run(self, ctx: Context, config: dict[str, Any]) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def config_schema_for(self, config: dict[str, Any]) -> dict[str, Any]:
        """The schema this config is validated against at submit: ``config_schema``, unless
        the config names what it calls (the ``python`` handler narrows ``kwargs`` to the
        function's signature). Return the same object for the same target: the checker
        caches a validator per schema."""
        return self.config_schema

    def check_config(self, config: dict[str, Any]) -> list[tuple[str, str]]:
        """Checks beyond the schema at spec validation: ``(config key, sentence)`` problems.

        Only literal values can be judged here (templates are checked when rendered); no
        network access.
        """
        return []


_handlers: dict[str, Handler] = {}
_python_functions: dict[str, Callable[..., Any]] = {}
# name -> (function, its kwargs schema), recorded when the function is registered.
_kwargs_schemas: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {}


def register(name: str) -> Callable[[type[Handler]], type[Handler]]:
    """Class decorator: ``@register("my_handler") class MyHandler(Handler): ...``."""

    def decorate(cls: type[Handler]) -> type[Handler]:
        cls.name = name
        _handlers[name] = cls()
        return cls

    return decorate


def get_handler(name: str) -> Handler:
    try:
        return _handlers[name]
    except KeyError:
        raise KeyError(f"unknown handler {name!r}") from None


def handler_names() -> list[str]:
    return sorted(_handlers)


def python_function(name: str | Callable[..., Any] | None = None) -> Any:
    """Register a function the ``python`` handler may call by name.

    ``@python_function``, ``@python_function()`` and ``@python_function("name")`` (or
    ``name="name"``) all work; the default name is the function's own. The function is
    called as ``fn(ctx, **kwargs)`` when its first parameter is ``ctx`` (or hinted
    ``Context``), else as ``fn(**kwargs)``, with the node's rendered ``kwargs``. Its signature
    becomes the schema the node's ``kwargs`` are checked against at submit
    (:mod:`handlers.signatures`). Only registered names are callable: an import path from a
    spec is never imported.
    """
    if callable(name):  # the bare decorator
        return python_function()(name)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        registered = name or fn.__name__
        _python_functions[registered] = fn
        _kwargs_schemas[registered] = (fn, kwargs_schema(fn))
        return fn

    return decorate


def get_python_function(name: str) -> Callable[..., Any]:
    try:
        return _python_functions[name]
    except KeyError:
        raise KeyError(f"no python function registered as {name!r}") from None


def python_function_names() -> list[str]:
    return sorted(_python_functions)


def python_function_name(fn: Callable[..., Any]) -> str | None:
    """The name ``fn`` is registered under (its own name first), or None."""
    if _python_functions.get(getattr(fn, "__name__", "")) is fn:
        return fn.__name__
    return next((name for name, known in _python_functions.items() if known is fn), None)


def python_function_schema(name: str) -> dict[str, Any] | None:
    """The kwargs schema recorded for the function registered as ``name`` (None when there
    is none, or the registry entry was replaced without the decorator)."""
    recorded = _kwargs_schemas.get(name)
    if recorded is None or _python_functions.get(name) is not recorded[0]:
        return None
    return recorded[1]
