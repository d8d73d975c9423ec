"""The raw side of ``manage.py bench``: a Celery task that does nothing.

Registered only in the workers the benchmark starts (``celery worker --include
runs.ops.bench_tasks``), never in production workers."""

from __future__ import annotations

from typing import Any

from celery import shared_task


@shared_task(name="trellis.bench.noop", ignore_result=False)
def bench_noop(*args: Any, **kwargs: Any) -> None:
    """A raw Celery task that does nothing: the raw side of `manage.py bench`."""
    return None
