"""The scheduler end to end: real worker process, real Redis, real database."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from runs.models import NodeRun, RunEvent
from tests.conftest import nodes_of, wait_for_run
from tests.specs import py, run_spec
from tests.testapp.handlers import count_calls

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def overlaps(a, b) -> bool:
    return a.started_at < b.finished_at and b.started_at < a.finished_at


def test_diamond_runs_branches_in_parallel_and_passes_outputs(worker, user):
    run = run_spec(
        user,
        [
            py("a", "add", kwargs={"a": 1, "b": 2}),
            py("b", "sleep", ["a"], kwargs={"seconds": 1}),
            py("c", "sleep", ["a"], kwargs={"seconds": 1}),
            py("d", "add", ["b", "c"], kwargs={"a": "{{ a.output }}", "b": "{{ b.output.slept }}"}),
            {"id": "out", "handler": "output", "dependencies": ["d"]},
        ],
    )
    run = wait_for_run(run.pk)
    assert run.status == "COMPLETED", run.error
    assert run.result == {"d": 4}
    nodes = nodes_of(run)
    assert overlaps(nodes["b"], nodes["c"]), "the two branches did not run at the same time"
    assert nodes["d"].started_at >= max(nodes["b"].finished_at, nodes["c"].finished_at)


def test_lattice_20_by_10_respects_every_dependency(worker, user):
    layers, width = 20, 10
    nodes = []
    for layer in range(layers):
        for i in range(width):
            deps = [f"n{layer - 1}_{i}", f"n{layer - 1}_{(i + 1) % width}"] if layer else []
            nodes.append(py(f"n{layer}_{i}", "sleep", deps, kwargs={"seconds": 0.02}))
    run = run_spec(user, nodes)
    run = wait_for_run(run.pk, timeout=120)
    assert run.status == "COMPLETED", run.error
    by_id = nodes_of(run)
    assert len(by_id) == 200 and all(n.state == "COMPLETED" for n in by_id.values())
    for spec_node in nodes:
        node = by_id[spec_node["id"]]
        for parent in spec_node["dependencies"]:
            assert node.started_at >= by_id[parent].finished_at
    # Independent nodes ran at the same time. Not necessarily within one layer: a worker
    # continues with the child its node readied, so the lattice runs in diagonal waves.
    ran = list(by_id.values())
    assert any(overlaps(x, y) for x in ran for y in ran if x is not y)


def test_failing_node_retries_with_growing_delays_then_fails_downstream(worker, user):
    run = run_spec(
        user,
        [
            py("ok", "add", kwargs={"a": 1, "b": 1}),
            py(
                "bad",
                "fail",
                ["ok"],
                kwargs={"message": "nope", "retryable": True},
                retries=3,
                backoff=0.3,
            ),
            py("after", "add", ["bad"], kwargs={"a": 1, "b": 1}),
            py("last", "add", ["after"], kwargs={"a": 1, "b": 1}),
        ],
    )
    run = wait_for_run(run.pk)
    assert run.status == "FAILED"
    nodes = nodes_of(run)
    bad = nodes["bad"]
    assert bad.state == "FAILED" and bad.attempt == 4
    assert bad.error["message"] == "nope"
    assert [a["state"] for a in bad.attempts] == ["FAILED"] * 4
    starts = list(
        RunEvent.objects.filter(run=run, node_id="bad", kind="node.status", data__state="RUNNING")
        .order_by("id")
        .values_list("ts", flat=True)
    )
    gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)]
    assert len(gaps) == 3
    # backoff 0.3 · 2^(n-1) with ±25 % jitter: about 0.3, 0.6, 1.2 s
    assert gaps[0] >= 0.2 and gaps[1] >= 0.45 and gaps[2] >= 0.9
    assert gaps[2] > gaps[0]
    assert nodes["after"].state == "UPSTREAM_FAILED"
    assert nodes["last"].state == "UPSTREAM_FAILED"
    assert nodes["ok"].state == "COMPLETED"
    retrying = RunEvent.objects.filter(run=run, node_id="bad", data__state="RETRYING").count()
    assert retrying == 3


def test_when_false_skips_branch_and_none_failed_join_still_runs(worker, user):
    run = run_spec(
        user,
        [
            {"id": "start", "handler": "input"},
            py("yes", "add", ["start"], kwargs={"a": 1, "b": 1}, when="{{ inputs.go }}"),
            py("no", "add", ["start"], kwargs={"a": 2, "b": 2}, when="{{ not inputs.go }}"),
            py("after_no", "add", ["no"], kwargs={"a": 0, "b": 0}),
            py(
                "join",
                "echo",
                ["yes", "after_no"],
                kwargs={"yes": "{{ yes.output }}"},
                trigger_rule="none_failed",
            ),
        ],
        inputs={"go": True},
    )
    run = wait_for_run(run.pk)
    assert run.status == "COMPLETED", run.error
    nodes = nodes_of(run)
    assert nodes["no"].state == "SKIPPED"
    assert nodes["after_no"].state == "SKIPPED"
    assert nodes["yes"].state == "COMPLETED"
    assert nodes["join"].state == "COMPLETED"
    assert nodes["join"].output == {"yes": 2}


def test_map_over_50_items(worker, user):
    run = run_spec(
        user,
        [
            {"id": "start", "handler": "input"},
            py(
                "square",
                "echo",
                ["start"],
                map="{{ start.output.data.numbers }}",
                kwargs={"index": "{{ index }}", "value": "{{ item * item }}"},
            ),
            {
                "id": "out",
                "handler": "output",
                "dependencies": ["square"],
                "config": {"value": "{{ square.output | map(attribute='value') | sum }}"},
            },
        ],
        inputs={"numbers": list(range(50))},
    )
    run = wait_for_run(run.pk)
    assert run.status == "COMPLETED", run.error
    square = nodes_of(run)["square"]
    assert square.output == [{"index": i, "value": i * i} for i in range(50)]
    assert run.result == sum(i * i for i in range(50))


def test_node_past_its_timeout_fails_with_timeout_error(worker, user):
    run = run_spec(user, [py("slow", "sleep", kwargs={"seconds": 10}, timeout=1)])
    run = wait_for_run(run.pk, timeout=30)
    assert run.status == "FAILED"
    slow = nodes_of(run)["slow"]
    assert slow.state == "FAILED"
    assert slow.error["type"] == "Timeout"
    assert "timed out after 1 s" in slow.error["message"]
    assert slow.finished_at - slow.started_at < timedelta(seconds=5)


def test_duplicated_node_message_executes_once(worker, user):
    from runs.tasks import execute_node

    key = f"dup-{uuid.uuid4().hex}"
    run = run_spec(
        user,
        [
            py("gate", "sleep", kwargs={"seconds": 0.5}),
            py("once", "count", ["gate"], kwargs={"key": key}),
        ],
    )
    # Wait until `once` is queued, then deliver its message twice more with the same token.
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        node = NodeRun.objects.get(run=run, node_id="once")
        if node.dispatch_token:
            break
        time.sleep(0.01)
    for _ in range(2):
        execute_node.apply_async((node.pk, node.dispatch_token))
    run = wait_for_run(run.pk)
    assert run.status == "COMPLETED", run.error
    time.sleep(0.5)  # let the duplicates be claimed (and dropped)
    assert count_calls(key) == 1
    once = nodes_of(run)["once"]
    assert once.attempt == 1
    assert RunEvent.objects.filter(run=run, node_id="once", data__state="RUNNING").count() == 1
