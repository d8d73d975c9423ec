"""``GET /metrics``: who may scrape it, and series that follow from what really ran (a real
worker, the real Redis, the database)."""

from __future__ import annotations

import time
import uuid

import pytest
from django.conf import settings
from django.test import Client, override_settings
from kombu import Connection
from prometheus_client.parser import text_string_to_metric_families

from runs.engine.dispatch import queue_depths
from runs.engine.workers import liveness
from runs.models import NodeRun, Worker
from runs.services import control
from tests.conftest import wait_for_run
from tests.specs import py, run_spec, unique_name

pytestmark = pytest.mark.django_db(transaction=True)


def scrape(client: Client, **headers) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


# --- who may scrape ---------------------------------------------------------------------


def test_anonymous_scrape_is_401_with_the_api_error_shape():
    response = Client().get("/metrics")
    assert response.status_code == 401
    assert response.json() == {
        "error": "Authentication credentials were not provided.",
        "errors": [],
    }
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_signed_in_user_who_is_not_staff_gets_403(user_client):
    response = user_client.get("/metrics")
    assert response.status_code == 403
    assert response.json()["errors"] == []


def test_staff_session_may_scrape(staff_client):
    samples = scrape(staff_client)
    assert ("trellis_workers_alive", ()) in samples


@override_settings(TRELLIS_METRICS_TOKEN="s3cret-metrics-token")
def test_bearer_token_scrapes_without_a_session():
    samples = scrape(Client(), HTTP_AUTHORIZATION="Bearer s3cret-metrics-token")
    assert ("trellis_broker_up", ()) in samples


@override_settings(TRELLIS_METRICS_TOKEN="s3cret-metrics-token")
def test_wrong_bearer_token_is_401_even_with_a_staff_session(staff_client):
    response = staff_client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics-tokeN")
    assert response.status_code == 401
    assert response.json()["error"] == "Invalid metrics token."


def test_api_tokens_of_staff_may_scrape_others_may_not(user, staff_user):
    from rest_framework.authtoken.models import Token

    staff_token = Token.objects.create(user=staff_user).key
    samples = scrape(Client(), HTTP_AUTHORIZATION=f"Token {staff_token}")
    assert ("trellis_workers_alive", ()) in samples
    plain = Client().get(
        "/metrics", HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}"
    )
    assert plain.status_code == 403
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Token nope").status_code == 401


def test_bearer_token_is_refused_when_no_token_is_configured():
    assert settings.TRELLIS_METRICS_TOKEN == ""
    response = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ")
    assert response.status_code == 401


# --- queue depth: LLEN of kombu's lists, under the broker's key prefix ------------------


def test_queue_depth_counts_every_priority_list_under_the_global_keyprefix():
    queue = f"ops-depth-{uuid.uuid4().hex[:8]}"
    prefix = f"ops-{uuid.uuid4().hex[:6]}:"
    with Connection(
        settings.CELERY_BROKER_URL, transport_options={"global_keyprefix": prefix}
    ) as conn:
        simple = conn.SimpleQueue(queue)
        simple.put({"n": 1})
        simple.put({"n": 2})
        simple.put({"n": 3}, priority=6)  # lands in the list of priority step 6
        simple.close()
    options = {**settings.CELERY_BROKER_TRANSPORT_OPTIONS, "global_keyprefix": prefix}
    with override_settings(CELERY_BROKER_TRANSPORT_OPTIONS=options):
        assert queue_depths([queue]) == {queue: 3}
    # Without the prefix the same names are other (empty) keys.
    options = {**settings.CELERY_BROKER_TRANSPORT_OPTIONS, "global_keyprefix": ""}
    with override_settings(CELERY_BROKER_TRANSPORT_OPTIONS=options):
        assert queue_depths([queue]) == {queue: 0}


# --- series after a real run ------------------------------------------------------------


def wait_for_live_worker(timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(liveness(row) == "alive" for row in Worker.objects.all()):
            return
        time.sleep(0.1)
    raise AssertionError(f"no worker heart-beat within {timeout} s")


@pytest.mark.integration
def test_metrics_follow_from_a_run_on_the_worker(worker, user, staff_client):
    name = unique_name("metrics")
    key = uuid.uuid4().hex
    nodes = [
        py("nap", "sleep", kwargs={"seconds": 0.3}),
        py("shaky", "flaky", ["nap"], kwargs={"key": key, "failures": 1}, retries=1, backoff=0.01),
        {"id": "out", "handler": "output", "dependencies": ["shaky"]},
    ]
    run = wait_for_run(run_spec(user, nodes, name=name).pk)
    assert run.status == "COMPLETED", run.error
    # A second run whose node goes to a queue no worker consumes: it stays RUNNING, its
    # message waits in Redis.
    unserved = f"ops-unserved-{uuid.uuid4().hex[:8]}"
    stuck = run_spec(
        user, [py("idle", "add", kwargs={"a": 1, "b": 1}, queue=unserved)], name=f"{name}-stuck"
    )

    try:
        # Heartbeats are periodic (and a transactional test's teardown empties the worker
        # table): wait for a fresh one, as a real scrape would simply see.
        wait_for_live_worker()
        samples = scrape(staff_client)
    finally:
        control.cancel(stuck.pk)

    assert value(samples, "trellis_runs", workflow=name, status="COMPLETED") == 1
    assert value(samples, "trellis_runs", workflow=name, status="RUNNING") == 0
    assert value(samples, "trellis_runs", workflow=name, status="FAILED") == 0
    assert value(samples, "trellis_runs", workflow=f"{name}-stuck", status="RUNNING") == 1

    nodes = {node.node_id: node for node in NodeRun.objects.filter(run=run)}
    python = {"workflow": name, "handler": "python"}
    output = {"workflow": name, "handler": "output"}

    # Durations: the two python nodes and the output node finished.
    assert value(samples, "trellis_node_duration_seconds_count", **python) == 2
    assert value(samples, "trellis_node_duration_seconds_count", **output) == 1
    expected = sum(
        (nodes[n].finished_at - nodes[n].started_at).total_seconds() for n in ("nap", "shaky")
    )
    # SQLite's date functions read only milliseconds: each of the two durations may be off
    # by up to 1 ms in the database's sum.
    assert value(samples, "trellis_node_duration_seconds_sum", **python) == pytest.approx(
        expected, abs=2e-3
    )
    assert value(samples, "trellis_node_duration_seconds_sum", **python) >= 0.3
    # Buckets are cumulative counts of the nodes at or under the bound; `nap` slept 0.3 s,
    # so it is never in the 0.25 s bucket.
    under = sum(
        1
        for n in ("nap", "shaky")
        if (nodes[n].finished_at - nodes[n].started_at).total_seconds() <= 0.25
    )
    assert under <= 1
    assert value(samples, "trellis_node_duration_seconds_bucket", **python, le="0.25") == under
    assert value(samples, "trellis_node_duration_seconds_bucket", **python, le="+Inf") == 2
    assert value(samples, "trellis_node_duration_seconds_bucket", **python, le="3600.0") == 2

    # Queue wait: every node's latest claim came after its latest queueing.
    assert value(samples, "trellis_node_queue_wait_seconds_count", **python) == 2
    waited = sum(
        (nodes[n].started_at - nodes[n].queued_at).total_seconds() for n in ("nap", "shaky")
    )
    # As for durations: two waits, each up to 1 ms off in SQLite's millisecond arithmetic.
    assert value(samples, "trellis_node_queue_wait_seconds_sum", **python) == pytest.approx(
        waited, abs=2e-3
    )
    assert value(samples, "trellis_node_queue_wait_seconds_count", **output) == 1

    # `shaky` failed once and was retried; nothing else was.
    assert nodes["shaky"].attempt == 2
    assert value(samples, "trellis_node_retries_total", **python) == 1
    assert value(samples, "trellis_node_retries_total", **output) == 0

    assert value(samples, "trellis_workers_alive") >= 1
    assert value(samples, "trellis_broker_up") == 1
    assert value(samples, "trellis_queue_depth", queue=unserved) == 1
    assert value(samples, "trellis_queue_depth", queue="default") == 0
