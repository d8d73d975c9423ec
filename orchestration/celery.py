"""The Celery app: `celery -A orchestration worker` / `celery -A orchestration beat`."""

import os

from celery import Celery
from django.conf import settings

from runs.ops.embedded_redis import ensure_for_settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestration.settings")

app = Celery("trellis")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_configure.connect
def _embedded_valkey(sender=None, **kwargs) -> None:
    """Without REDIS_URL, the first process that configures the app (a worker, beat, or one
    that sends a task) starts or finds the data dir's Valkey before connecting to it."""
    ensure_for_settings(settings)
