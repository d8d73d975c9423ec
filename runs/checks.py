"""System checks (``manage.py check``): what a host project must have for Trellis to work.

Each finding names the app or setting and says what to add. IDs: ``trellis.E001`` a missing
app, ``E002`` no channel layer, ``E003`` no Celery broker, ``E004`` a knob of the wrong type
or below its minimum, ``E005`` DRF's schema class is not drf-spectacular's; ``W001`` Celery
settings that weaken Trellis's crash guarantees.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks

from .rules.config import KNOBS

SPECTACULAR_SCHEMA = "drf_spectacular.openapi.AutoSchema"

# Apps the runs app needs, and why (the dashboard, `frontend`, is optional).
REQUIRED_APPS = {
    "django.contrib.auth": "runs belong to users",
    "django.contrib.contenttypes": "django.contrib.auth needs it",
    "rest_framework": "the REST API",
    "rest_framework.authtoken": "API tokens",
    "drf_spectacular": "the OpenAPI document at api/schema/",
    "drf_spectacular_sidecar": "Swagger UI's files, served without a CDN",
    "django_filters": "the run list's filters (and their OpenAPI parameters)",
    "django_celery_beat": "schedules of workflows and the periodic tasks",
    "channels": "live event streams",
    "handlers": "the node handlers",
}


def _missing_apps() -> list[checks.CheckMessage]:
    return [
        checks.Error(
            f"Trellis needs {name!r} in INSTALLED_APPS ({why}).",
            hint=f"Add {name!r} to INSTALLED_APPS.",
            id="trellis.E001",
        )
        for name, why in REQUIRED_APPS.items()
        if not apps.is_installed(name)
    ]


def _knob_problem(name: str, value: Any) -> str | None:
    knob = KNOBS[name]
    default = knob.default
    if default is None:  # a path or a name, or None for "derive it"
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "must be True or False"
    if isinstance(default, int | float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be a number, not {type(value).__name__}"
        if knob.minimum is not None and value < knob.minimum:
            return f"must be at least {knob.minimum:g}"
        return None
    kinds = (list, tuple) if isinstance(default, list) else type(default)
    if not isinstance(value, kinds):
        return f"must be a {type(default).__name__}, not {type(value).__name__}"
    return None


def _bad_knobs() -> list[checks.CheckMessage]:
    found = []
    for name in KNOBS:
        problem = _knob_problem(name, getattr(settings, name, KNOBS[name].default))
        if problem:
            found.append(
                checks.Error(
                    f"{name} {problem}.", hint=KNOBS[name].help, obj=name, id="trellis.E004"
                )
            )
    return found


def _services() -> list[checks.CheckMessage]:
    found: list[checks.CheckMessage] = []
    if not getattr(settings, "CHANNEL_LAYERS", None):
        found.append(
            checks.Error(
                "CHANNEL_LAYERS is not set: Trellis streams run events through a channel layer.",
                hint="Set CHANNEL_LAYERS to channels_redis's RedisChannelLayer on your Redis.",
                id="trellis.E002",
            )
        )
    if not getattr(settings, "CELERY_BROKER_URL", None):
        found.append(
            checks.Error(
                "CELERY_BROKER_URL is not set: Trellis sends nodes to workers and reads queue "
                "depths and readiness through the Celery broker (Redis).",
                hint="Set CELERY_BROKER_URL (e.g. redis://localhost:6379/0) and configure your "
                "Celery app with config_from_object('django.conf:settings', namespace='CELERY').",
                id="trellis.E003",
            )
        )
    schema_class = (getattr(settings, "REST_FRAMEWORK", None) or {}).get("DEFAULT_SCHEMA_CLASS")
    if schema_class != SPECTACULAR_SCHEMA:
        found.append(
            checks.Error(
                "REST_FRAMEWORK['DEFAULT_SCHEMA_CLASS'] is not drf-spectacular's: Trellis's "
                "OpenAPI document (api/schema/) is built by drf-spectacular.",
                hint=f"Set REST_FRAMEWORK = {{'DEFAULT_SCHEMA_CLASS': '{SPECTACULAR_SCHEMA}'}}.",
                id="trellis.E005",
            )
        )
    prefetch = getattr(settings, "CELERY_WORKER_PREFETCH_MULTIPLIER", 4)
    if prefetch != 1:
        found.append(
            checks.Warning(
                f"CELERY_WORKER_PREFETCH_MULTIPLIER is {prefetch}: a worker reserves that many "
                "node messages per process, and a long node holds the others back.",
                hint="Set CELERY_WORKER_PREFETCH_MULTIPLIER = 1.",
                id="trellis.W001",
            )
        )
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {}
    visibility = options.get("visibility_timeout", 3600)
    longest = getattr(
        settings, "TRELLIS_MAX_NODE_TIMEOUT", KNOBS["TRELLIS_MAX_NODE_TIMEOUT"].default
    )
    if visibility <= longest:
        found.append(
            checks.Warning(
                f"The broker's visibility_timeout ({visibility:g} s) is not longer than "
                f"TRELLIS_MAX_NODE_TIMEOUT ({longest:g} s): Redis would deliver a long node's "
                "message again while it still runs.",
                hint="Set CELERY_BROKER_TRANSPORT_OPTIONS = {'visibility_timeout': "
                "TRELLIS_MAX_NODE_TIMEOUT + 600}.",
                id="trellis.W001",
            )
        )
    return found


def check_setup(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Registered by the runs app: missing apps, services and badly typed knobs."""
    return [*_missing_apps(), *_services(), *_bad_knobs()]
