"""Continue in the worker: a node that becomes ready on the queue of the node that just
finished runs in the same task (runs.engine.scheduler.Carry), with its own claim, attempt,
events, token and time limits. The crash test is in tests/test_recovery.py."""

from __future__ import annotations

import pytest

from runs.models import NodeRun, RunEvent
from tests.conftest import wait_for_run
from tests.specs import create, py, start

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def chain(length: int, **extra) -> list[dict]:
    nodes = [py("n0", "add", kwargs={"a": 0, "b": 1}, **extra)]
    for index in range(1, length):
        nodes.append(py(f"n{index}", "add", [f"n{index - 1}"], kwargs={"a": 1, "b": 1}, **extra))
    return nodes


def test_a_chain_runs_in_one_pool_process_each_node_with_its_own_claim(worker, api):
    run_id = start(api, create(api, chain(12)))
    run = wait_for_run(run_id, timeout=60)
    assert run.status == "COMPLETED", run.error
    nodes = list(NodeRun.objects.filter(run_id=run_id).order_by("node_id"))
    # The worker has 4 pool processes; one task ran the whole chain.
    assert len({node.worker_pid for node in nodes}) == 1
    assert all(node.attempt == 1 for node in nodes)
    assert len({node.dispatch_token for node in nodes}) == len(nodes)
    for node in nodes:
        states = list(
            RunEvent.objects.filter(run_id=run_id, node_id=node.node_id, kind="node.status")
            .order_by("id")
            .values_list("data__state", flat=True)
        )
        assert states == ["QUEUED", "RUNNING", "COMPLETED"], (node.node_id, states)


def test_a_continued_node_keeps_its_own_timeout(worker, api):
    """Its task's message carried the first node's limits (300 s and the window); the
    second node's own 1 s is kept inside the worker process."""
    name = create(
        api,
        [
            py("first", "add", kwargs={"a": 1, "b": 1}),
            py("slow", "sleep", ["first"], kwargs={"seconds": 20}, timeout=1),
        ],
    )
    run_id = start(api, name)
    run = wait_for_run(run_id, timeout=60)
    assert run.status == "FAILED"
    first = NodeRun.objects.get(run_id=run_id, node_id="first")
    slow = NodeRun.objects.get(run_id=run_id, node_id="slow")
    assert slow.worker_pid == first.worker_pid  # it was continued, not sent
    assert slow.error["type"] == "Timeout" and "after 1 s" in slow.error["message"]
    assert (slow.finished_at - slow.started_at).total_seconds() < 15


def test_a_chain_longer_than_the_hop_bound_goes_on_through_the_broker(worker, api):
    """The worker's bound is TRELLIS_CONTINUE_HOPS (50): n0 came by message and its task ran
    n1 … n50 too; n51 was sent (the bound itself is tests/test_transitions.py's)."""
    run_id = start(api, create(api, chain(60)))
    run = wait_for_run(run_id, timeout=120)
    assert run.status == "COMPLETED", run.error
    nodes = {node.node_id: node for node in NodeRun.objects.filter(run_id=run_id)}
    assert len(nodes) == 60 and {node.state for node in nodes.values()} == {"COMPLETED"}
    first_task = [f"n{i}" for i in range(51)]
    assert len({nodes[node_id].worker_pid for node_id in first_task}) == 1


def test_a_continued_node_reads_its_parents_output_as_stored(worker, api):
    """The task hands the output it just stored to the node it runs next (no query): that
    must be the output as read back from the database, where JSON made the tuple a list
    and the integer key a string."""
    name = create(
        api,
        [
            py("first", "not_quite_json"),
            py(
                "second",
                "echo",
                ["first"],
                kwargs={
                    "pair": "{{ first.output.pair }}",
                    "seven": "{{ first.output.by_number['7'] }}",
                },
            ),
        ],
    )
    run = wait_for_run(start(api, name), timeout=60)
    assert run.status == "COMPLETED", run.error
    first = NodeRun.objects.get(run=run, node_id="first")
    second = NodeRun.objects.get(run=run, node_id="second")
    assert second.worker_pid == first.worker_pid  # continued
    assert first.output == {"pair": [1, 2], "by_number": {"7": "seven"}}
    assert second.output == {"pair": [1, 2], "seven": "seven"}
