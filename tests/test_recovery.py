"""Durability: worker crashes, a broker restart, duplicate messages, liveness.

Guarantee under test: a node may execute more than once after a crash (at-least-once), but it
is recorded COMPLETED exactly once, and every run finishes.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import pytest
from django.conf import settings

from runs.engine.reconciler import reconcile
from runs.models import NodeRun, Run, Worker
from tests.conftest import WorkerProcess, completed_events, wait_for_run, wait_node
from tests.specs import create, py, start
from tests.testapp.handlers import count_calls

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

RECOVERY_BOUND = 60  # seconds a crashed node may take to complete elsewhere


class Reconciler:
    """The reconciler loop (what beat runs every few seconds), in a thread of the test."""

    def __init__(self, every: float = 0.5) -> None:
        self.every = every
        self.passes: list[dict[str, int]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        from django.db import connection

        try:
            while not self._stop.is_set():
                try:
                    self.passes.append(reconcile())
                except Exception as exc:  # noqa: BLE001 - e.g. the broker is down; beat retries too
                    self.errors.append(repr(exc))
                self._stop.wait(self.every)
        finally:
            connection.close()

    def __enter__(self) -> Reconciler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def total(self, key: str) -> int:
        return sum(p[key] for p in self.passes)


@pytest.fixture
def crash_worker(worker):
    """A second worker, serving only the `crash` queue, that a test may kill."""
    process = WorkerProcess(worker.env, concurrency=2, queues="crash", name="crash")
    process.start()
    yield process
    process.stop()


def test_worker_killed_with_sigkill_mid_node_the_run_still_completes(crash_worker, api):
    key = uuid.uuid4().hex
    name = create(
        api,
        [
            py("slow", "count", kwargs={"key": key}, queue="crash"),
            py("sleepy", "sleep", ["slow"], kwargs={"seconds": 3}, queue="crash"),
            py("after", "add", ["sleepy"], kwargs={"a": 1, "b": 2}),
        ],
    )
    run_id = start(api, name)
    node = wait_node(run_id, "sleepy", {"RUNNING"})
    time.sleep(0.3)
    crash_worker.kill()  # SIGKILL to the worker and its pool processes
    killed_at = time.monotonic()
    crash_worker.start()  # a replacement worker on the same queue
    with Reconciler() as reconciler:
        run = wait_for_run(run_id, timeout=RECOVERY_BOUND)
    took = time.monotonic() - killed_at
    assert run.status == "COMPLETED", run.error
    assert took < RECOVERY_BOUND
    sleepy = NodeRun.objects.get(pk=node.pk)
    assert sleepy.state == "COMPLETED" and sleepy.attempt == 2
    assert [a["state"] for a in sleepy.attempts] == ["LOST", "COMPLETED"]
    assert completed_events(run_id, "sleepy") == 1
    assert reconciler.total("requeued_lost") == 1
    print(f"recovered from SIGKILL in {took:.1f} s")


def test_worker_killed_in_the_middle_of_a_continued_chain_the_chain_completes_once(
    crash_worker, api
):
    """c1 … c5 run in the task that ran c0 (continue in the worker); SIGKILL the worker
    while c2 runs: c2 is RUNNING on a dead worker with no message in the broker, and the
    reconciler queues it again like any lost node."""
    nodes = [py("c0", "sleep", kwargs={"seconds": 0.5}, queue="crash")]
    for index in range(1, 6):
        nodes.append(
            py(f"c{index}", "sleep", [f"c{index - 1}"], kwargs={"seconds": 1}, queue="crash")
        )
    run_id = start(api, create(api, nodes))
    c2 = wait_node(run_id, "c2", {"RUNNING"})
    c0 = NodeRun.objects.get(run_id=run_id, node_id="c0")
    assert c2.worker_pid == c0.worker_pid  # continued in c0's task, not sent
    time.sleep(0.3)
    crash_worker.kill()
    crash_worker.start()
    with Reconciler() as reconciler:
        run = wait_for_run(run_id, timeout=RECOVERY_BOUND)
    assert run.status == "COMPLETED", run.error
    c2 = NodeRun.objects.get(pk=c2.pk)
    assert [a["state"] for a in c2.attempts] == ["LOST", "COMPLETED"]
    for index in range(6):
        assert completed_events(run_id, f"c{index}") == 1, f"c{index}"
    assert reconciler.total("requeued_lost") == 1


def test_pool_process_killed_mid_node_is_requeued(crash_worker, api):
    name = create(api, [py("sleepy", "sleep", kwargs={"seconds": 3}, queue="crash")])
    run_id = start(api, name)
    node = wait_node(run_id, "sleepy", {"RUNNING"})
    time.sleep(0.3)
    os.kill(node.worker_pid, signal.SIGKILL)  # the pool process, not the worker
    with Reconciler():
        run = wait_for_run(run_id, timeout=RECOVERY_BOUND)
    assert run.status == "COMPLETED", run.error
    sleepy = NodeRun.objects.get(pk=node.pk)
    assert sleepy.attempt == 2 and sleepy.worker_pid != node.worker_pid
    assert completed_events(run_id, "sleepy") == 1


@pytest.mark.skipif(
    not settings.TRELLIS_EMBEDDED_REDIS,
    reason="restarts the embedded Valkey; the machine's Redis is not the suite's to restart",
)
def test_valkey_stopped_and_restarted_mid_run_every_run_completes(worker, api):
    from runs.ops import embedded_redis

    server = embedded_redis._server
    assert server is not None, "this session did not start the embedded Valkey"
    name = create(
        api,
        [
            py("a", "sleep", kwargs={"seconds": 0.5}),
            py("b", "sleep", ["a"], kwargs={"seconds": 0.5}),
            py("c", "sleep", ["b"], kwargs={"seconds": 0.5}),
            py("d", "sleep", ["c"], kwargs={"seconds": 0.5}),
        ],
    )
    run_ids = [start(api, name) for _ in range(3)]
    wait_node(run_ids[0], "a", {"RUNNING", "COMPLETED"})
    port = server.port
    server.stop()
    time.sleep(3)  # nodes finish meanwhile and fail to send their children
    server._desired_port = port  # the same port, so every client reconnects to it
    server.start()
    with Reconciler():
        runs = [wait_for_run(run_id, timeout=90) for run_id in run_ids]
    assert [run.status for run in runs] == ["COMPLETED"] * 3
    for run in runs:
        for node_id in "abcd":
            assert completed_events(run.pk, node_id) == 1


def test_same_message_delivered_twice_concurrently_runs_once(worker, api, user):
    from runs.engine.scheduler import create_run
    from runs.models import WorkflowVersion
    from runs.tasks import execute_node

    key = uuid.uuid4().hex
    name = create(api, [py("once", "count", kwargs={"key": key})])
    run = create_run(WorkflowVersion.objects.get(workflow__name=name), user)
    # Queue the node by hand with one token and deliver its message four times at once:
    # the four pool processes race to claim it.
    node = NodeRun.objects.get(run=run, node_id="once")
    NodeRun.objects.filter(pk=node.pk).update(state="QUEUED", dispatch_token="dup-token")
    Run.objects.filter(pk=run.pk).update(status="RUNNING")
    for _ in range(4):
        execute_node.apply_async((node.pk, "dup-token"))
    run = wait_for_run(run.pk)
    assert run.status == "COMPLETED"
    time.sleep(0.5)  # let the other three be claimed (and dropped)
    assert count_calls(key) == 1
    assert completed_events(run.pk, "once") == 1
    assert NodeRun.objects.get(pk=node.pk).attempt == 1


def test_workers_report_heartbeats(worker, api):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not Worker.objects.exists():
        time.sleep(0.2)
    workers = api.get("/api/v1/workers/").json()["results"]
    mine = [w for w in workers if w["hostname"].startswith(f"test-{os.getpid()}@")]
    assert mine, workers
    assert mine[0]["liveness"] == "alive"
    assert "default" in mine[0]["queues"] and mine[0]["concurrency"] == 4


def stoppable_worker(worker, queue: str, grace: float):
    """A worker of its own on ``queue`` with a shutdown grace of ``grace`` s, for a test to
    signal (the fixtures below yield from it)."""
    env = dict(worker.env, TRELLIS_SHUTDOWN_GRACE=str(grace))
    process = WorkerProcess(env, concurrency=2, queues=queue, name=queue)
    process.start()
    yield process
    process.stop()


@pytest.fixture
def draining_worker(worker):
    """A worker on the `drain` queue with a 3 s shutdown grace, that a test sends SIGTERM."""
    yield from stoppable_worker(worker, "drain", 3)


def test_sigterm_finishes_short_nodes_and_requeues_long_ones_after_the_grace(
    draining_worker, worker, api
):
    name = create(
        api,
        [
            py("short", "sleep", kwargs={"seconds": 1.5}, queue="drain"),
            py("long", "sleep", kwargs={"seconds": 12}, queue="drain"),
            py("after", "add", ["short", "long"], kwargs={"a": 1, "b": 2}),
        ],
    )
    run_id = start(api, name)
    wait_node(run_id, "short", {"RUNNING"})
    wait_node(run_id, "long", {"RUNNING"})
    signalled = time.monotonic()
    os.kill(draining_worker.proc.pid, signal.SIGTERM)  # warm shutdown, as `docker stop`
    draining_worker.proc.wait(timeout=40)
    exited_after = time.monotonic() - signalled
    short = NodeRun.objects.get(run_id=run_id, node_id="short")
    long = NodeRun.objects.get(run_id=run_id, node_id="long")
    # The short node finished on the stopping worker; the long one was queued again, not
    # stranded RUNNING on a worker that is gone.
    assert short.state == "COMPLETED" and short.attempt == 1
    assert short.worker.startswith("drain-")
    assert long.state == "QUEUED", long.state
    assert [a["state"] for a in long.attempts] == ["LOST"]
    assert "shut down while the node ran" in long.attempts[0]["error"]
    assert exited_after < 3 + 15, f"the worker took {exited_after:.1f} s to stop"

    draining_worker.start()  # a worker for the queue again (a new container, say)
    run = wait_for_run(run_id, timeout=90)
    assert run.status == "COMPLETED", run.error
    long = NodeRun.objects.get(pk=long.pk)
    assert long.attempt == 2 and [a["state"] for a in long.attempts] == ["LOST", "COMPLETED"]
    assert completed_events(run_id, "long") == 1 and completed_events(run_id, "short") == 1
    print(f"worker stopped {exited_after:.1f} s after SIGTERM (grace 3 s)")


@pytest.fixture
def group_worker(worker):
    """A worker on the `group` queue with a long shutdown grace, stopped by a signal to its
    whole process group (systemd's KillMode=control-group, supervisor's stopasgroup)."""
    yield from stoppable_worker(worker, "group", 60)


def test_sigterm_to_the_whole_process_group_requeues_the_lost_nodes_at_once(
    group_worker, worker, api
):
    """The pool processes die with the signal, so the graceful path never runs: the worker's
    main process queues their nodes again as it exits, with no reconciler running."""
    name = create(
        api,
        [
            py("long", "sleep", kwargs={"seconds": 30}, queue="group"),
            py("after", "add", ["long"], kwargs={"a": 1, "b": 2}),
        ],
    )
    run_id = start(api, name)
    wait_node(run_id, "long", {"RUNNING"})
    signalled = time.monotonic()
    os.killpg(group_worker.proc.pid, signal.SIGTERM)
    group_worker.proc.wait(timeout=40)
    exited_after = time.monotonic() - signalled
    long = NodeRun.objects.get(run_id=run_id, node_id="long")
    assert long.state == "QUEUED", long.state
    assert [a["state"] for a in long.attempts] == ["LOST"]
    assert "shut down while the node ran" in long.attempts[0]["error"]
    # Not after the 60 s grace: there was nothing left to wait for.
    assert exited_after < 30, f"the worker took {exited_after:.1f} s to stop"

    group_worker.start()
    run = wait_for_run(run_id, timeout=90)
    assert run.status == "COMPLETED", run.error
    long = NodeRun.objects.get(pk=long.pk)
    assert long.attempt == 2 and [a["state"] for a in long.attempts] == ["LOST", "COMPLETED"]
    assert completed_events(run_id, "long") == 1
    print(f"worker stopped {exited_after:.1f} s after SIGTERM to its process group")


def test_stale_queued_nodes_are_resent_only_when_their_queue_is_empty(worker, api):
    """A backlog is not a loss: while messages wait in the queue the reconciler leaves the
    nodes alone; once the queue has lost them (here: the list is deleted), it re-sends."""
    from datetime import timedelta

    import redis

    from runs.engine.dispatch import queue_depths
    from runs.store.writes import now

    queue = f"unserved-{uuid.uuid4().hex[:6]}"
    name = create(api, [py("idle", "add", kwargs={"a": 1, "b": 1}, queue=queue)])
    run_id = start(api, name)
    node = wait_node(run_id, "idle", {"QUEUED"})
    old = now() - timedelta(seconds=settings.TRELLIS_RESEND_QUEUED_AFTER + 5)
    NodeRun.objects.filter(pk=node.pk).update(queued_at=old)
    assert queue_depths({queue}) == {queue: 1}
    assert reconcile()["resent"] == 0
    assert queue_depths({queue}) == {queue: 1}  # not doubled

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix") or ""
    client.delete(prefix + queue)  # the message is lost
    client.close()
    assert queue_depths({queue}) == {queue: 0}
    assert reconcile()["resent"] == 1
    assert queue_depths({queue}) == {queue: 1}
