"""Shared fixtures: users, API and browser clients, and a real Celery worker in a subprocess.

Who's who: ``user`` (alice, the owner), ``other_user`` (bob), ``staff_user`` (carol, staff
but not a superuser) and, for the Django admin, pytest-django's ``admin_user`` (admin, a
superuser). ``api`` / ``other_api`` are REST clients authenticated as alice / bob;
``user_client`` / ``staff_client`` are Django test clients with a login session (the
dashboard), pytest-django's ``admin_client`` the same for ``admin_user``. Workflow documents
are built with tests/specs.py.

The worker is a `celery -A orchestration worker` process (prefork pool, as in production),
pointed at the test database and the same Redis as the tests: the embedded Valkey when
REDIS_URL is unset, else the machine's Redis on the database number REDIS_URL names.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from runs.ops.embedded_redis import ensure_for_settings
from runs.ops.processes import (
    celery_worker_argv,
    database_url,
    start_process_group,
    stop_process_group,
    wait_for_worker,
)
from tests.servers import json_server, local_egress, openai_server  # noqa: F401 - fixtures
from tests.specs import create, py, start

ROOT = Path(__file__).resolve().parent.parent
#: Lines tests want in the terminal summary even when they pass (e.g. fuzzing counts).
SUMMARY_LINES = pytest.StashKey[list]()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    for line in config.stash.get(SUMMARY_LINES, []):
        terminalreporter.write_line(line)


ARTIFACTS = ROOT / "test-artifacts"


def redis_url() -> str:
    """This session's Redis. Without REDIS_URL, the embedded Valkey starts at the first call,
    owned by the test process (so that killing a worker never takes it down)."""
    ensure_for_settings(settings)
    return settings.REDIS_URL


def _flush_redis() -> None:
    import redis

    client = redis.Redis.from_url(redis_url())
    client.flushdb()
    client.close()


class WorkerProcess:
    """A Celery worker subprocess; `restart()` gives a fresh one.

    ``wrapper`` prefixes the command, e.g. ``["ip", "netns", "exec", ns]`` to start the worker
    inside a network namespace (tests/test_multihost.py).
    """

    def __init__(
        self,
        env: dict[str, str],
        concurrency: int = 4,
        queues: str = "default",
        name: str = "test",
        wrapper: list[str] | None = None,
    ) -> None:
        self.env = env
        self.concurrency = concurrency
        self.queues = queues
        self.name = f"{name}-{os.getpid()}"
        self.wrapper = list(wrapper or [])
        self.proc: subprocess.Popen | None = None
        ARTIFACTS.mkdir(exist_ok=True)
        self.log_path = ARTIFACTS / f"worker-{name}.log"

    def start(self) -> None:
        argv = celery_worker_argv(self.name, self.queues, self.concurrency, "info")
        self.proc = start_process_group(
            [*self.wrapper, *argv], env=self.env, log_path=self.log_path, cwd=ROOT
        )
        wait_for_worker(self.name, self.proc, self.log_path)

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes, as a machine crash would."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        stop_process_group(self.proc, timeout=20)


@pytest.fixture(scope="session")
def _no_sessions_left_on_the_test_database(django_db_setup, django_db_blocker):
    """On PostgreSQL, end what still holds the test database once the session's processes
    are gone (a connection some thread of this process opened and never closed), so that
    pytest-django can drop it instead of warning "being accessed by other users"."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(scope="session")
def llm_server():
    """An OpenAI-compatible server the session's worker is configured to use."""
    from tests.servers import OpenAIServer

    with OpenAIServer() as server:
        yield server


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a process the tests start (worker, daphne): this session's
    settings, Redis, database and data dir, plus ``extra``."""
    from django.db import connection

    return dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="tests.settings",
        REDIS_URL=redis_url(),
        DATABASE_URL=database_url(connection.settings_dict),
        TRELLIS_DATA_DIR=str(settings.TRELLIS_DATA_DIR),
        PYTHONUNBUFFERED="1",
        **extra,
    )


@pytest.fixture(scope="session")
def worker(django_db_setup, django_db_blocker, llm_server):
    """A real Celery worker process for the whole session (LLM provider: ``llm_server``)."""

    _flush_redis()
    env = child_env(
        TRELLIS_EGRESS_ALLOW="127.0.0.1,localhost",
        TRELLIS_LLM_BASE_URL=llm_server.base_url,
        TRELLIS_LLM_MODEL="test-model",
        TRELLIS_LLM_API_KEY="",
    )
    process = WorkerProcess(env)
    process.start()
    yield process
    process.stop()


def _daphne(**kwargs):
    from tests.webserver import DaphneProcess

    server = DaphneProcess(**kwargs)
    server.start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def web_server(django_db_setup, django_db_blocker):
    """A real daphne (HTTP + WebSocket) on a free port, on the test database and Redis, with a
    short SSE heartbeat. Yields its base URL."""
    yield from _daphne(env=child_env(TRELLIS_STREAM_HEARTBEAT_SECONDS="0.5"))


@pytest.fixture(scope="session")
def prefixed_web_server(django_db_setup, django_db_blocker):
    """A daphne serving a host project that mounts Trellis under ``/trellis/``: HTTP from
    tests/testapp/prefixed_urls.py, WebSockets from tests/testapp/asgi.py. Yields its base URL."""
    yield from _daphne(
        env=child_env(TRELLIS_TEST_ROOT_URLCONF="tests.testapp.prefixed_urls"),
        app="tests.testapp.asgi:application",
        name="prefixed",
    )


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password="alice-password")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("bob", password="bob-password")


@pytest.fixture
def staff_user(django_user_model):
    """Staff (sees every user's runs, may scrape /metrics), not a superuser."""
    return django_user_model.objects.create_user("carol", password="carol-password", is_staff=True)


def _signed_in(user, *, api: bool = False):
    """A REST client authenticated as ``user`` (``api``), else a Django test client with
    ``user``'s login session (a fresh one each time: never pytest-django's ``client``)."""
    from django.test import Client
    from rest_framework.test import APIClient

    if api:
        client = APIClient()
        client.force_authenticate(user)
    else:
        client = Client()
        client.force_login(user)
    return client


@pytest.fixture
def api(user):
    return _signed_in(user, api=True)


@pytest.fixture
def other_api(other_user):
    return _signed_in(other_user, api=True)


@pytest.fixture
def user_client(user):
    return _signed_in(user)


@pytest.fixture
def staff_client(staff_user):
    return _signed_in(staff_user)


@pytest.fixture
def stand_in_handlers(monkeypatch):
    """The stand-in handlers of tests/specs.py in the registry, for this test only."""
    from handlers import registry
    from tests.specs import STAND_INS, stand_in

    for name, schema in STAND_INS.items():
        monkeypatch.setitem(registry._handlers, name, stand_in(name, schema))


@pytest.fixture
def python_workflows(monkeypatch):
    """An empty registry of Python workflows for this test: the ones it defines are forgotten
    after it, and the testapp's (tests/testapp/workflows.py) are back."""
    from runs import authoring

    monkeypatch.setattr(authoring, "_workflows", {})


def _poll(read, done, timeout: float, interval: float):
    """``read()`` every ``interval`` s until ``done(value)`` or ``timeout``; the last value."""
    deadline = time.monotonic() + timeout
    value = read()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(interval)
        value = read()
    return value


def wait_for_run(run_id, timeout: float = 60.0, states=("COMPLETED", "FAILED", "CANCELLED")):
    """Poll the database until the run reaches one of ``states``; return the Run."""
    from runs.models import NodeRun, Run

    run = _poll(lambda: Run.objects.get(pk=run_id), lambda r: r.status in states, timeout, 0.05)
    if run.status in states:
        return run
    nodes = list(NodeRun.objects.filter(run_id=run_id).values_list("node_id", "state"))
    raise AssertionError(f"run {run_id} still {run.status} after {timeout} s; nodes: {nodes}")


def wait_node(run_id, node_id, states, timeout: float = 30.0):
    """Poll the database until the node is in one of ``states``; return the NodeRun."""
    from runs.models import NodeRun

    def read():
        return NodeRun.objects.get(run_id=run_id, node_id=node_id)

    node = _poll(read, lambda n: n.state in states, timeout, 0.02)
    if node.state in states:
        return node
    raise AssertionError(f"{node_id} still {node.state}")


def failed_flaky_run(api):
    """A FAILED run of a -> (side, flaky -> child) whose `flaky` fails its first call only (so a
    retry or a clear succeeds); returns the run id and its nodes by id."""
    nodes = [
        py("a", "add", kwargs={"a": 1, "b": 1}),
        py("side", "add", ["a"], kwargs={"a": 2, "b": 2}),
        py("flaky", "flaky", ["a"], kwargs={"key": uuid.uuid4().hex, "failures": 1}),
        py("child", "add", ["flaky"], kwargs={"a": "{{ flaky.output.calls }}", "b": 10}),
    ]
    run_id = start(api, create(api, nodes))
    run = wait_for_run(run_id)
    assert run.status == "FAILED"
    before = nodes_of(run)
    assert before["flaky"].state == "FAILED" and before["child"].state == "UPSTREAM_FAILED"
    return run_id, before


def nodes_of(run):
    """The run's NodeRuns by node id."""
    from runs.models import NodeRun

    return {n.node_id: n for n in NodeRun.objects.filter(run=run)}


def completed_events(run_id, node_id) -> int:
    """How many times the node was recorded COMPLETED (exactly once, whatever happened)."""
    from runs.models import RunEvent

    return RunEvent.objects.filter(
        run_id=run_id, node_id=node_id, kind="node.status", data__state="COMPLETED"
    ).count()


@pytest.fixture(autouse=True)
def _engine_test(request):
    """What every test but the pure ones (marker ``unit``) needs: this session's Redis, the
    PostgreSQL clean-up at the end, and per-process caches that do not outlive the test
    (rolled-back tests reuse primary keys). Pure tests skip it all: no database, no server."""
    if request.node.get_closest_marker("unit") is not None:
        yield
        return
    redis_url()
    request.getfixturevalue("_no_sessions_left_on_the_test_database")
    from runs.engine.definitions import _cached_run, _cached_spec, _version_for_scope

    caches = (_cached_spec, _cached_run, _version_for_scope)
    for cache in caches:
        cache.cache_clear()
    yield
    for cache in caches:
        cache.cache_clear()


def pytest_ignore_collect(collection_path, config):
    """``-m unit`` collects only the modules that hold unit tests: the others would be
    imported (their assertions rewritten, their libraries loaded) only to be deselected."""
    if (
        config.getoption("markexpr", "") == "unit"
        and collection_path.suffix == ".py"
        and collection_path.name.startswith("test_")
    ):
        return "pytest.mark.unit" not in collection_path.read_text()
    return None
