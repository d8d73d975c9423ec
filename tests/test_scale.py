"""Many runs at once across several worker processes and two queues.

500 runs of a 5-node workflow are started together; three worker processes share the work
(the session's worker on `default`, one on `scale-b`, one on both). Every run must complete,
and every node must have run on a worker that consumes its queue.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from runs.models import NodeRun, Run, Worker
from runs.services.runs import start_new_run
from tests.conftest import SUMMARY_LINES, WorkerProcess
from tests.specs import py, save

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

RUNS = 500
BOUND = 900  # seconds; a loaded 2-core machine with SQLite takes a few minutes


@pytest.fixture
def more_workers(worker):
    extra = [
        WorkerProcess(worker.env, concurrency=2, queues="scale-b", name="scale-b"),
        WorkerProcess(worker.env, concurrency=2, queues="default,scale-b", name="scale-both"),
    ]
    for process in extra:
        process.start()
    yield extra
    for process in extra:
        process.stop()


def _add(node_id, deps=(), queue="default"):
    return py(node_id, "add", deps, kwargs={"a": 1, "b": 2}, queue=queue)


def test_500_runs_on_three_workers_and_two_queues_all_complete(more_workers, user, request):
    nodes = [
        _add("a"),
        _add("b", ["a"], queue="scale-b"),
        _add("c", ["a"]),
        _add("d", ["b", "c"], queue="scale-b"),
        {"id": "out", "handler": "output", "dependencies": ["d"]},
    ]
    version = save(user, nodes, prefix="scale")
    started = time.monotonic()
    ids = [start_new_run(version, user).pk for _ in range(RUNS)]
    submitted = time.monotonic() - started

    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        left = Run.objects.filter(pk__in=ids).exclude(status__in=["COMPLETED", "FAILED"]).count()
        if not left:
            break
        time.sleep(1)
    took = time.monotonic() - started
    statuses = Counter(Run.objects.filter(pk__in=ids).values_list("status", flat=True))
    assert statuses == {"COMPLETED": RUNS}, statuses

    nodes = list(NodeRun.objects.filter(run_id__in=ids).values_list("queue", "worker", "state"))
    assert len(nodes) == RUNS * 5
    assert {state for _, _, state in nodes} == {"COMPLETED"}
    queues_of = {w.hostname: set(w.queues) for w in Worker.objects.all()}
    wrong = [(queue, host) for queue, host, _ in nodes if queue not in queues_of.get(host, ())]
    assert not wrong, f"{len(wrong)} nodes ran on a worker not serving their queue: {wrong[:5]}"
    per_worker = Counter(host.split("@")[0].rsplit("-", 1)[0] for _, host, _ in nodes)
    assert len(per_worker) == 3, per_worker  # all three shared the work
    summary = (
        f"scale: {RUNS} runs x 5 nodes = {len(nodes)} nodes on 3 workers / 2 queues: all "
        f"COMPLETED in {took:.1f} s (submitted in {submitted:.1f} s); nodes per worker "
        f"{dict(sorted(per_worker.items()))}"
    )
    print("\n" + summary)
    request.config.stash.setdefault(SUMMARY_LINES, []).append(summary)
