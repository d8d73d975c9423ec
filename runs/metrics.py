"""Prometheus metrics at ``/metrics``, read from the database and Redis at scrape time.

Workers run on many hosts and any web process may be scraped, so nothing here counts in
process memory: each scrape runs a handful of aggregated queries (GROUP BY with conditional
aggregation for the histogram buckets, one pass over the node table) and one pipelined LLEN
per queue. Histograms and the retry counter therefore describe the runs still in the
database: ``manage.py purge_runs`` lowers them, which Prometheus's ``rate()`` reads as a
counter reset.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, F, FloatField, Func, Q, Sum
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .engine.dispatch import queue_depths
from .engine.workers import served_queues
from .models import NodeRun, Run, Worker, WorkflowVersion
from .rules.states import RUN_STATES, NodeState
from .store.writes import now
from .web import authorization, json_error, user_for_token

logger = logging.getLogger(__name__)
N = NodeState

# Upper bounds (seconds) of the node duration and queue wait histograms: from a no-op node
# (a few ms) to the longest default timeout (an hour).
BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
)  # fmt: skip


class Seconds(Func):
    """``end - start`` in seconds, as a float, in native SQL: Django's DurationField
    arithmetic calls a Python function per row on SQLite, and the histograms evaluate it
    once per bucket."""

    arity = 2
    output_field = FloatField()

    def as_sql(self, compiler, connection, **extra_context):
        # PostgreSQL (and the SQL standard): the interval's length in seconds.
        return super().as_sql(
            compiler,
            connection,
            template="EXTRACT(EPOCH FROM (%(expressions)s))",
            arg_joiner=" - ",
            **extra_context,
        )

    def as_sqlite(self, compiler, connection, **extra_context):
        return super().as_sql(
            compiler,
            connection,
            template="((julianday(%(expressions)s)) * 86400.0)",
            arg_joiner=") - julianday(",
            **extra_context,
        )


def _seconds(end: str, start: str) -> Seconds:
    return Seconds(F(end), F(start))


def _histogram_aggregates(prefix: str, condition: Q, seconds: str) -> dict[str, Any]:
    """COUNT, SUM and one cumulative COUNT per bucket, each over the rows ``condition`` picks."""
    aggregates: dict[str, Any] = {
        f"{prefix}_count": Count("pk", filter=condition),
        f"{prefix}_sum": Sum(seconds, filter=condition),
    }
    for index, bound in enumerate(BUCKETS):
        aggregates[f"{prefix}_le{index}"] = Count(
            "pk", filter=condition & Q(**{f"{seconds}__lte": bound})
        )
    return aggregates


def node_statistics() -> list[dict[str, Any]]:
    """One row per (workflow version, handler): duration and queue-wait histograms, retries.

    One query over the node table, grouped by the run's version (a join on the run only);
    workflow names come from the small version table afterwards.

    - duration: ``finished_at - started_at`` of COMPLETED and FAILED nodes (their last
      attempt; for a node that waited, the wait is included);
    - queue wait: ``started_at - queued_at`` of every node whose latest claim came after its
      latest queueing (a node queued again and not yet claimed is left out, as is a clock
      skew between hosts that would make it negative);
    - retries: attempts after a node's first (failed attempts retried, attempts lost with a
      worker, and nodes re-run by a run retry).
    """
    finished = Q(
        state__in=(N.COMPLETED, N.FAILED),
        started_at__isnull=False,
        finished_at__isnull=False,
    )
    waited = Q(queued_at__isnull=False, started_at__gte=F("queued_at"))
    retried = Q(attempt__gt=1)
    return list(
        NodeRun.objects.annotate(
            duration=_seconds("finished_at", "started_at"),
            wait=_seconds("started_at", "queued_at"),
        )
        .values("run__workflow_version_id", "handler")
        .annotate(
            **_histogram_aggregates("duration", finished, "duration"),
            **_histogram_aggregates("wait", waited, "wait"),
            attempts_retried=Sum("attempt", filter=retried),
            nodes_retried=Count("pk", filter=retried),
        )
        .order_by()
    )


def _workflow_names(version_ids: Iterable[int]) -> dict[int, str]:
    return dict(
        WorkflowVersion.objects.filter(pk__in=set(version_ids)).values_list("pk", "workflow__name")
    )


class _Histogram:
    """Bucket counts of one label set, summed over workflow versions."""

    def __init__(self) -> None:
        self.buckets = [0] * len(BUCKETS)
        self.count = 0
        self.sum = 0.0

    def add(self, row: dict[str, Any], prefix: str) -> None:
        for index in range(len(BUCKETS)):
            self.buckets[index] += row[f"{prefix}_le{index}"]
        self.count += row[f"{prefix}_count"]
        self.sum += float(row[f"{prefix}_sum"] or 0)

    def as_buckets(self) -> list[tuple[str, int]]:
        pairs = [(_bound(bound), count) for bound, count in zip(BUCKETS, self.buckets, strict=True)]
        return [*pairs, ("+Inf", self.count)]


def _bound(value: float) -> str:
    return repr(float(value))


def broker_queues() -> set[str]:
    """The Celery queues to measure: the default one, every queue a worker that is not dead
    consumes, and every queue a QUEUED node was sent to (a queue nobody serves is the one
    whose depth matters most)."""
    queues = {settings.CELERY_TASK_DEFAULT_QUEUE, *served_queues()}
    queues.update(NodeRun.objects.filter(state=N.QUEUED).values_list("queue", flat=True).distinct())
    return queues


class TrellisCollector(Collector):
    """Every series, computed from the database and the broker when scraped."""

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        yield from self._runs()
        yield from self._nodes()
        yield from self._workers()
        yield from self._queues()
        elapsed = GaugeMetricFamily(
            "trellis_metrics_scrape_seconds", "Time taken to compute these metrics."
        )
        elapsed.add_metric([], time.perf_counter() - started)
        yield elapsed

    def _runs(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "trellis_runs",
            "Runs in the database by workflow and status.",
            labels=["workflow", "status"],
        )
        counts: dict[str, dict[str, int]] = defaultdict(dict)
        rows = (
            Run.objects.values("workflow_version__workflow__name", "status")
            .annotate(runs=Count("pk"))
            .order_by()
        )
        for row in rows:
            counts[row["workflow_version__workflow__name"]][row["status"]] = row["runs"]
        # Every status of a workflow that has runs, zeros included, so that a series does not
        # vanish when its last run moves on (alerts on "RUNNING > 0" resolve).
        for workflow in sorted(counts):
            for status in RUN_STATES:
                family.add_metric([workflow, status], counts[workflow].get(status, 0))
        yield family

    def _nodes(self) -> Iterator[Metric]:
        rows = node_statistics()
        names = _workflow_names(row["run__workflow_version_id"] for row in rows)
        durations: dict[tuple[str, str], _Histogram] = defaultdict(_Histogram)
        waits: dict[tuple[str, str], _Histogram] = defaultdict(_Histogram)
        retries: dict[tuple[str, str], int] = defaultdict(int)
        for row in rows:
            key = (names.get(row["run__workflow_version_id"], ""), row["handler"])
            durations[key].add(row, "duration")
            waits[key].add(row, "wait")
            retries[key] += (row["attempts_retried"] or 0) - row["nodes_retried"]
        duration = HistogramMetricFamily(
            "trellis_node_duration_seconds",
            "Run time of finished nodes (COMPLETED or FAILED, last attempt).",
            labels=["workflow", "handler"],
        )
        wait = HistogramMetricFamily(
            "trellis_node_queue_wait_seconds",
            "Time nodes waited from QUEUED to RUNNING (latest attempt).",
            labels=["workflow", "handler"],
        )
        retried = CounterMetricFamily(
            "trellis_node_retries",
            "Node attempts after the first (retries, attempts lost with a worker, run retries).",
            labels=["workflow", "handler"],
        )
        for key in sorted(durations):
            duration.add_metric(list(key), durations[key].as_buckets(), durations[key].sum)
            wait.add_metric(list(key), waits[key].as_buckets(), waits[key].sum)
            retried.add_metric(list(key), retries[key])
        yield duration
        yield wait
        yield retried

    def _workers(self) -> Iterator[Metric]:
        alive_since = now() - timedelta(seconds=3 * settings.TRELLIS_HEARTBEAT_SECONDS)
        alive = Worker.objects.filter(stopped_at__isnull=True, last_seen__gte=alive_since).count()
        family = GaugeMetricFamily(
            "trellis_workers_alive",
            "Worker processes whose heartbeat is fresh (as /api/v1/workers/ says alive).",
        )
        family.add_metric([], alive)
        yield family

    def _queues(self) -> Iterator[Metric]:
        import redis

        reachable = GaugeMetricFamily(
            "trellis_broker_up", "1 when the broker answered this scrape, else 0."
        )
        depth = GaugeMetricFamily(
            "trellis_queue_depth",
            "Messages waiting in a Celery queue (not yet taken by a worker).",
            labels=["queue"],
        )
        try:
            depths = queue_depths(broker_queues())
        except redis.RedisError:
            logger.warning("metrics: the broker did not answer", exc_info=True)
            reachable.add_metric([], 0)
            yield reachable
            return
        reachable.add_metric([], 1)
        for queue, messages in depths.items():
            depth.add_metric([queue], messages)
        yield reachable
        yield depth


# The challenge of every 401 from /metrics.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="trellis metrics"'}


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: for a staff session or a staff user's API token
    (``Authorization: Token …``), or ``Authorization: Bearer <TRELLIS_METRICS_TOKEN>`` when
    that setting is set. 401 without either, 403 for a
    signed-in user who is not staff. A ``Bearer`` or ``Token`` header decides alone: when it is
    wrong the answer is 401, even with a staff session; ``?token=`` is not read here."""
    if request.method not in ("GET", "HEAD"):
        return json_error("Method not allowed.", 405)
    scheme, credentials = authorization(request)
    expected = settings.TRELLIS_METRICS_TOKEN
    user = request.user
    if scheme == "token":
        user = user_for_token(credentials)  # a staff user's API token works too
        if user is None:
            return json_error("Invalid token.", 401, headers=CHALLENGE)
    if scheme == "bearer":
        if not expected or not hmac.compare_digest(credentials.encode(), expected.encode()):
            return json_error("Invalid metrics token.", 401, headers=CHALLENGE)
    elif not user.is_authenticated:
        return json_error("Authentication credentials were not provided.", 401, headers=CHALLENGE)
    elif not user.is_staff:
        return json_error("Metrics are for staff users.", 403)
    registry = CollectorRegistry()
    registry.register(TrellisCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
