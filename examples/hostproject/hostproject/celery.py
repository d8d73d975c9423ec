"""The host's own Celery app, as Celery's Django guide writes it: `celery -A hostproject worker`
runs the shop's tasks and Trellis's nodes alike."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hostproject.settings")

app = Celery("hostproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
