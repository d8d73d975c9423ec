"""``{{ secrets.NAME }}`` in node configs (DESIGN §13).

A secret's value comes, at run time on the worker, from the environment variable
``TRELLIS_SECRET_<NAME>`` or from the ``TRELLIS_SECRETS`` setting (a dict). Specs, runs and
the API hold only the name. Whatever a node that used a secret produces (output, error,
events) has every used value replaced by ``[secret NAME]`` before it is stored, so it
cannot reach events, the API, the dashboard, the admin or logs; the dashboard renders the
config with the same placeholders.

Secrets are in the scope of node configs only (not ``when``/``map``, which the scheduler
evaluates and could leak through a decision).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from django.conf import settings

ENV_PREFIX = "TRELLIS_SECRET_"
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MIN_REDACTED_LENGTH = 3  # shorter values would turn ordinary text into placeholders


class SecretError(Exception):
    """A template asked for a secret that is not configured on this worker."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.user_message = message


def placeholder(name: str) -> str:
    return f"[secret {name}]"


def lookup(name: str) -> str | None:
    if not NAME_RE.match(name):
        return None
    value = os.environ.get(ENV_PREFIX + name)
    if value is None:
        value = (getattr(settings, "TRELLIS_SECRETS", None) or {}).get(name)
    return None if value is None else str(value)


class Secrets(dict):
    """The ``secrets`` template variable: looks names up on first use and remembers which
    values were handed out, so that :meth:`redact` can take them out again."""

    def __init__(self) -> None:
        super().__init__()
        self.used: dict[str, str] = {}

    def __missing__(self, name: str) -> str:
        value = lookup(str(name))
        if value is None:
            raise SecretError(
                f"secret {name!r} is not set on this worker "
                f"(set {ENV_PREFIX}{name} or TRELLIS_SECRETS)"
            )
        self.used[str(name)] = value
        self[name] = value
        return value

    def redact(self, value: Any) -> Any:
        """``value`` (JSON data or text) with every secret value used so far replaced."""
        pairs = [
            (secret, placeholder(name))
            for name, secret in sorted(self.used.items(), key=lambda kv: -len(kv[1]))
            if len(secret) >= MIN_REDACTED_LENGTH
        ]
        if not pairs:
            return value
        return _replace_all(value, pairs)


def _replace_all(value: Any, pairs: list[tuple[str, str]]) -> Any:
    if isinstance(value, str):
        for secret, shown in pairs:
            value = value.replace(secret, shown)
        return value
    if isinstance(value, dict):
        return {_replace_all(k, pairs): _replace_all(v, pairs) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_replace_all(v, pairs) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    # Anything else is stored as its text (json default=str): redact that text.
    return _replace_all(json.loads(json.dumps(value, default=str)), pairs)


class MaskedSecrets(dict):
    """``secrets`` for display: every name renders as its placeholder, no value is read."""

    def __missing__(self, name: str) -> str:
        return placeholder(str(name))
