"""A handler's ``logging`` records and ``print`` output become ``node.log`` events of its node
and attempt (runs/capture.py): bounded, redacted, apart per node, shown in the node panel."""

from __future__ import annotations

import logging
import threading
import uuid

import pytest
from django.db import connection

from runs.capture import capture_attempt
from runs.engine.secrets import Secrets
from runs.models import NodeRun, RunEvent
from tests.conftest import wait_for_run
from tests.specs import py, run_spec

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SECRET = "tok-7f3a9c1e5b"  # TRELLIS_SECRET_TEST_TOKEN in tests/settings.py


def _logs(run, node_id: str) -> list[dict]:
    return [
        event.data
        for event in RunEvent.objects.filter(run=run, node_id=node_id, kind="node.log").order_by(
            "id"
        )
    ]


def _messages(run, node_id: str) -> list[str]:
    return [data["message"] for data in _logs(run, node_id)]


def test_logging_and_print_of_a_handler_are_node_logs_with_the_attempt(worker, user, user_client):
    key = uuid.uuid4().hex
    run = run_spec(
        user,
        [py("talk", "chatty", kwargs={"tag": "shop", "fail_first": key}, retries=1, backoff=0.1)],
    )
    run = wait_for_run(run.pk)
    assert run.status == "COMPLETED", run.error
    logs = _logs(run, "talk")
    expected = [
        {"message": "shop logged 0", "logger": "shop", "level": "INFO", "source": "logging"},
        {"message": "shop printed 0", "logger": "stdout", "level": "INFO", "source": "print"},
        {"message": "shop logged 1", "logger": "shop", "level": "INFO", "source": "logging"},
        {"message": "shop printed 1", "logger": "stdout", "level": "INFO", "source": "print"},
    ]
    assert logs == [{**line, "attempt": attempt} for attempt in (1, 2) for line in expected]
    # not captured: below TRELLIS_CAPTURE_LOG_LEVEL, and Trellis's own `runs.*` loggers
    assert not any("debug line" in m or "engine line" in m for m in _messages(run, "talk"))
    panel = user_client.get(f"/dashboard/runs/{run.pk}/nodes/talk/")
    assert panel.status_code == 200
    assert panel.content.decode().count("shop printed 1") == 2  # one per attempt


def test_lines_over_the_limit_are_dropped_with_one_note(worker, user, settings):
    run = run_spec(user, [py("talk", "chatty", kwargs={"tag": "many", "lines": 150})])
    run = wait_for_run(run.pk)
    assert run.status == "COMPLETED", run.error
    logs = _logs(run, "talk")
    limit = settings.TRELLIS_CAPTURE_LOG_LINES  # the worker's too: both read the default
    assert len(logs) == limit + 1
    assert logs[limit - 1]["message"] == f"many printed {limit // 2 - 1}"
    assert logs[-1]["source"] == "capture"
    assert logs[-1]["message"].startswith(f"{300 - limit} more lines")
    assert "TRELLIS_CAPTURE_LOG_LINES" in logs[-1]["message"]


def test_a_secret_in_a_captured_line_is_redacted(worker, user):
    run = run_spec(
        user,
        [
            py(
                "talk",
                "chatty",
                kwargs={"tag": "k", "lines": 0, "secret": "{{ secrets.TEST_TOKEN }}"},
            )
        ],
    )
    run = wait_for_run(run.pk)
    assert run.status == "COMPLETED", run.error
    assert _messages(run, "talk") == ["k uses key [secret TEST_TOKEN]"]
    stored = RunEvent.objects.filter(run=run).values_list("data", flat=True)
    assert not any(SECRET in str(data) for data in stored)


def test_two_nodes_running_at_once_keep_their_lines_apart(worker, user):
    run = run_spec(
        user,
        [
            py("left", "chatty", kwargs={"tag": "left", "lines": 10, "pause": 0.05}),
            py("right", "chatty", kwargs={"tag": "right", "lines": 10, "pause": 0.05}),
        ],
    )
    run = wait_for_run(run.pk)
    assert run.status == "COMPLETED", run.error
    left, right = (NodeRun.objects.get(run=run, node_id=n) for n in ("left", "right"))
    assert left.started_at < right.finished_at and right.started_at < left.finished_at
    for tag in ("left", "right"):
        messages = _messages(run, tag)
        assert len(messages) == 20
        assert all(message.startswith(f"{tag} ") for message in messages)


def test_threads_of_one_process_capture_only_their_own_lines(user, capsys):
    """A thread-pool worker runs attempts side by side in one process: each thread's lines go
    to its own node, and a thread with no attempt is left alone."""
    run = run_spec(user, [py("idle", "sleep", kwargs={"seconds": 0})])
    secrets = Secrets()
    assert secrets["TEST_TOKEN"] == SECRET  # resolved, as a config using it would be
    started = threading.Barrier(3)

    def attempt(node_id: str) -> None:
        try:
            with capture_attempt(run.pk, node_id, 3, secrets.redact):
                started.wait()
                for index in range(20):
                    logging.getLogger("shop").info("%s %d %s", node_id, index, SECRET)
                    print(f"{node_id} out {index}")
                logging.getLogger("runs.engine").warning("%s engine", node_id)
                started.wait()
        finally:
            connection.close()

    def bystander() -> None:
        started.wait()
        for index in range(20):
            print(f"bystander {index}")
            logging.getLogger("shop").info("bystander logged %d", index)
        started.wait()

    threads = [threading.Thread(target=attempt, args=(name,)) for name in ("thread-a", "thread-b")]
    threads.append(threading.Thread(target=bystander))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for node_id in ("thread-a", "thread-b"):
        logs = _logs(run, node_id)
        assert len(logs) == 40
        assert {data["attempt"] for data in logs} == {3}
        assert all(data["message"].startswith(f"{node_id} ") for data in logs)
        assert f"{node_id} 19 [secret TEST_TOKEN]" in [data["message"] for data in logs]
        assert f"{node_id} out 19" in [data["message"] for data in logs]
    stored = RunEvent.objects.filter(run=run).values_list("data", flat=True)
    assert not any("bystander" in str(data) for data in stored)
    printed = capsys.readouterr().out  # captured lines still reach the stream as before
    assert "bystander 19" in printed and "thread-a out 19" in printed
