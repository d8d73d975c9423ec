"""A spec's ``schedule`` (cron) as a django-celery-beat PeriodicTask that starts runs with the
spec's default inputs. Saving a version updates or removes the task."""

from __future__ import annotations

import json

from django_celery_beat.models import CrontabSchedule, PeriodicTask

from ..models import Workflow


def task_name(workflow: Workflow) -> str:
    return f"trellis:workflow:{workflow.name}"


def sync_schedule(workflow: Workflow, cron: str | None) -> PeriodicTask | None:
    """Make the workflow's PeriodicTask match ``cron`` (None removes it)."""
    name = task_name(workflow)
    if not cron:
        PeriodicTask.objects.filter(name=name).delete()
        return None
    minute, hour, day_of_month, month_of_year, day_of_week = cron.split()
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
        timezone="UTC",
    )
    task, _ = PeriodicTask.objects.update_or_create(
        name=name,
        defaults={
            "task": "trellis.start_scheduled_run",
            "crontab": crontab,
            "interval": None,
            "args": json.dumps([workflow.name]),
            "enabled": True,
        },
    )
    return task
