"""Structured logs: the JSON formatter, the run/node context, and a real worker's output with
``TRELLIS_LOG_FORMAT=json``."""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from datetime import datetime

import pytest
from django.conf import settings

from runs.logcontext import (
    ContextFilter,
    JSONFormatter,
    bind_log_context,
    current_log_context,
    in_own_log_context,
    log_context,
)
from runs.models import NodeRun
from tests.conftest import WorkerProcess, wait_for_run
from tests.specs import run_spec

PLAIN_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")


def render(logger_name: str, level: int, message: str, *args, exc_info=None) -> dict:
    record = logging.LogRecord(logger_name, level, __file__, 1, message, args, exc_info)
    assert ContextFilter().filter(record) is True
    line = JSONFormatter().format(record)
    assert "\n" not in line
    return json.loads(line)


def test_a_record_is_one_json_object_with_time_level_logger_message():
    entry = render("runs.tasks", logging.WARNING, "node %s failed", "fetch")
    assert entry.keys() == {"time", "level", "logger", "message"}
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "runs.tasks"
    assert entry["message"] == "node fetch failed"
    assert datetime.fromisoformat(entry["time"]).utcoffset().total_seconds() == 0


def test_the_bound_run_and_node_appear_and_go_when_the_block_ends():
    with log_context(run_id=uuid.UUID(int=7), node_id="fetch"):
        inside = render("x", logging.INFO, "working")
        with log_context(node_id="inner"):
            nested = render("x", logging.INFO, "nested")
        after_nested = render("x", logging.INFO, "back")
    outside = render("x", logging.INFO, "done")
    assert inside["run_id"] == str(uuid.UUID(int=7)) and inside["node_id"] == "fetch"
    assert nested["node_id"] == "inner" and nested["run_id"] == str(uuid.UUID(int=7))
    assert after_nested["node_id"] == "fetch"
    assert "run_id" not in outside and "node_id" not in outside


def test_what_a_task_body_binds_is_gone_when_it_returns_or_raises():
    @in_own_log_context
    def task_body(fail: bool) -> dict:
        bind_log_context(run_id="r1", node_id="n1")
        if fail:
            raise RuntimeError("the handler broke")
        return render("x", logging.INFO, "m")

    entry = task_body(False)
    assert entry["run_id"] == "r1" and entry["node_id"] == "n1"
    assert current_log_context() == {}
    with pytest.raises(RuntimeError):
        task_body(True)
    assert current_log_context() == {}


def test_execute_node_keeps_its_signature_for_celerys_argument_check():
    from runs.tasks import execute_node

    execute_node.__header__(1, "token")  # what a message carries
    with pytest.raises(TypeError):
        execute_node.__header__(1, "token", "extra")


def test_exceptions_are_one_field_of_the_same_line():
    try:
        raise ValueError("bad value")
    except ValueError:
        import sys

        entry = render("x", logging.ERROR, "it broke", exc_info=sys.exc_info())
    assert entry["message"] == "it broke"
    assert entry["exception"].startswith("Traceback")
    assert "ValueError: bad value" in entry["exception"]


def test_the_text_format_is_the_default():
    assert settings.TRELLIS_LOG_FORMAT == "text"
    assert settings.LOGGING["handlers"]["console"]["formatter"] == "plain"


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_json_worker_logs_one_object_per_line_with_the_run_and_node(worker, user):
    """A second worker, on its own queue, started with TRELLIS_LOG_FORMAT=json: a node that
    raises an unexpected error makes it log a warning carrying the run and node ids."""
    queue = f"json-logs-{uuid.uuid4().hex[:6]}"
    env = dict(worker.env, TRELLIS_LOG_FORMAT="json")  # the session's database and Redis
    process = WorkerProcess(env, concurrency=1, queues=queue, name="json")
    process.log_path.write_bytes(b"")
    process.start()
    try:
        explode = {"id": "explode", "handler": "python", "config": {"function": "boom"}}
        started = run_spec(user, [explode], prefix="logs", defaults={"queue": queue})
        run = wait_for_run(started.pk)
        assert run.status == "FAILED"
    finally:
        process.stop()
    assert NodeRun.objects.get(run=run).worker.startswith("json-")

    lines = [line for line in process.log_path.read_text().splitlines() if line.strip()]
    entries = []
    for line in lines:
        if line.startswith("{"):
            entries.append(json.loads(line))
        else:
            # Celery's start-up banner and its shutdown notice are printed, not logged
            # (`celery -q` leaves the banner out); no log record is in the text format.
            assert not PLAIN_LOG_LINE.match(line), line
    if os.geteuid() == 0:  # Celery warns a root worker: the warning is a record too
        assert any(e["logger"] == "py.warnings" for e in entries), "a warning was not JSON"
    assert entries, f"no JSON lines in {process.log_path}"
    failed = [
        e for e in entries if e["message"].startswith(f"node explode of run {run.pk} failed:")
    ]
    assert len(failed) == 1, lines
    assert failed[0]["level"] == "WARNING"
    assert failed[0]["logger"] == "runs.tasks"
    assert failed[0]["run_id"] == str(run.pk)
    assert failed[0]["node_id"] == "explode"
    # The recorded traceback, redacted of secrets, rather than exc_info (runs/secrets.py).
    assert "RuntimeError: boom" in failed[0]["message"]
    # Lines logged outside a node (start-up) carry no run.
    ready = [e for e in entries if e["message"].endswith(" ready.")]
    assert ready and "run_id" not in ready[0] and "node_id" not in ready[0]


def test_web_requests_about_a_run_log_with_its_id(rf):
    """What the middleware binds lasts for the request, sync or async."""
    from asgiref.sync import async_to_sync

    from runs.logcontext import RunLogContextMiddleware

    run_id = uuid.uuid4()
    seen = []

    def view(request):
        seen.append(current_log_context())
        return "response"

    middleware = RunLogContextMiddleware(view)
    assert middleware(rf.get(f"/api/v1/runs/{run_id}/events/")) == "response"
    middleware(rf.get(f"/workflows/{run_id}/results"))  # seed-004
    middleware(rf.get("/api/v1/runs/"))
    assert seen == [{"run_id": str(run_id)}, {"run_id": str(run_id)}, {}]
    assert current_log_context() == {}

    async def async_view(request):
        seen.append(current_log_context())
        return "streamed"

    middleware = RunLogContextMiddleware(async_view)
    assert async_to_sync(middleware)(rf.get(f"/dashboard/runs/{run_id}/")) == "streamed"
    assert seen[-1] == {"run_id": str(run_id)}
