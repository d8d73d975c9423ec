"""The one way the pure rules read a setting: Django's when configured, else the default,
so the rules also run without Django settings (the unit tests, a client)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def setting(name: str, default: Any) -> Any:
    try:
        return getattr(settings, name, default)
    except ImproperlyConfigured:  # settings not configured: pure use outside Django
        return default
