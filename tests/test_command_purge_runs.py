"""``manage.py purge_runs`` and the retention beat task: which runs go, which stay."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from runs.engine.retention import parse_age
from runs.engine.scheduler import create_run
from runs.models import NodeRun, Run, RunEvent, Session
from runs.store.writes import now
from runs.tasks import purge_runs_task
from tests.specs import save

pytestmark = pytest.mark.django_db(transaction=True)

NODES_PER_RUN = 2  # the spec below
EVENTS_PER_RUN = 1  # create_run's run.status PENDING


@pytest.fixture
def version(user):
    nodes = [
        {"id": "start", "handler": "input"},
        {"id": "out", "handler": "output", "dependencies": ["start"]},
    ]
    return save(user, nodes, prefix="purge")


def make_run(version, user, status, days_ago=None, *, session=None, parent_node=None) -> Run:
    """A run in ``status`` that finished ``days_ago`` days ago (None: not finished)."""
    run = create_run(version, user, session=session, parent_node=parent_node)
    finished = now() - timedelta(days=days_ago) if days_ago is not None else None
    Run.objects.filter(pk=run.pk).update(status=status, finished_at=finished)
    return Run.objects.get(pk=run.pk)


def purge(*args: str) -> str:
    out = io.StringIO()
    call_command("purge_runs", *args, stdout=out)
    return out.getvalue()


def exists(run: Run) -> bool:
    return Run.objects.filter(pk=run.pk).exists()


def test_old_finished_runs_go_with_their_nodes_and_events(version, user):
    old = [make_run(version, user, status, 40) for status in ("COMPLETED", "FAILED", "CANCELLED")]
    new = make_run(version, user, "COMPLETED", 5)
    live = [make_run(version, user, status) for status in ("RUNNING", "PAUSED", "PENDING")]
    old_live = make_run(version, user, "RUNNING")
    Run.objects.filter(pk=old_live.pk).update(created_at=now() - timedelta(days=90))

    output = purge("--older-than", "30d")

    assert output.startswith("deleted 3 runs, 6 nodes, 3 events in 1 batches")
    assert not any(exists(run) for run in old)
    assert not NodeRun.objects.filter(run_id__in=[run.pk for run in old]).exists()
    assert not RunEvent.objects.filter(run_id__in=[run.pk for run in old]).exists()
    for kept in [new, *live, old_live]:
        assert exists(kept)
        assert NodeRun.objects.filter(run=kept).count() == NODES_PER_RUN
        assert RunEvent.objects.filter(run=kept).count() == EVENTS_PER_RUN


def test_sessions_are_kept_with_their_state(version, user):
    session = Session.objects.create(owner=user, name="chat", state={"turns": 7}, revision=7)
    old = make_run(version, user, "COMPLETED", 40, session=session)
    recent = make_run(version, user, "COMPLETED", 1, session=session)

    purge("--older-than", "30d")

    assert not exists(old)
    session.refresh_from_db()
    assert session.state == {"turns": 7} and session.revision == 7
    assert list(session.runs.values_list("pk", flat=True)) == [recent.pk]


def test_dry_run_counts_and_deletes_nothing(version, user):
    for _ in range(3):
        make_run(version, user, "FAILED", 10)
    make_run(version, user, "FAILED", 1)

    output = purge("--older-than", "7d", "--dry-run")

    assert output.startswith("would delete 3 runs, 6 nodes, 3 events")
    assert Run.objects.count() == 4


def test_batches_of_the_given_size(version, user):
    for _ in range(5):
        make_run(version, user, "COMPLETED", 2)

    out = io.StringIO()
    call_command("purge_runs", "--older-than", "36h", "--batch-size", "2", stdout=out, verbosity=2)

    lines = out.getvalue().splitlines()
    assert lines[:3] == [
        "batch 1: deleted 2 runs, 4 nodes, 2 events",
        "batch 2: deleted 2 runs, 4 nodes, 2 events",
        "batch 3: deleted 1 runs, 2 nodes, 1 events",
    ]
    assert lines[3].startswith("deleted 5 runs, 10 nodes, 5 events in 3 batches")
    assert Run.objects.count() == 0


def test_runs_related_to_a_live_run_are_kept(version, user):
    # A finished child whose parent still runs: the parent may still read it.
    live_parent = make_run(version, user, "RUNNING")
    waiting_node = NodeRun.objects.get(run=live_parent, node_id="out")
    child_of_live = make_run(version, user, "COMPLETED", 40, parent_node=waiting_node)
    # A finished parent whose child still runs.
    finished_parent = make_run(version, user, "CANCELLED", 40)
    parent_node = NodeRun.objects.get(run=finished_parent, node_id="out")
    live_child = make_run(version, user, "RUNNING", parent_node=parent_node)
    # A finished family, all old: both go.
    old_parent = make_run(version, user, "COMPLETED", 40)
    old_child = make_run(
        version,
        user,
        "COMPLETED",
        41,
        parent_node=NodeRun.objects.get(run=old_parent, node_id="out"),
    )
    # A recent child of an old parent stays, unlinked from the deleted parent's node.
    gone_parent = make_run(version, user, "FAILED", 40)
    recent_child = make_run(
        version, user, "FAILED", 1, parent_node=NodeRun.objects.get(run=gone_parent, node_id="out")
    )

    output = purge("--older-than", "30d")

    assert output.startswith("deleted 3 runs")
    for kept in (live_parent, child_of_live, finished_parent, live_child, recent_child):
        assert exists(kept)
    for gone in (old_parent, old_child, gone_parent):
        assert not exists(gone)
    recent_child.refresh_from_db()
    assert recent_child.parent_node_id is None
    live_child.refresh_from_db()
    assert live_child.parent_node_id == parent_node.pk

    # Once the child is finished (and old), its parent and it go together.
    Run.objects.filter(pk=live_child.pk).update(
        status="COMPLETED", finished_at=now() - timedelta(days=31)
    )
    assert purge("--older-than", "30d").startswith("deleted 2 runs")
    assert not exists(finished_parent) and not exists(live_child)


@pytest.mark.parametrize(
    "text,seconds",
    [("90s", 90), ("45m", 2700), ("12h", 43200), ("30d", 2592000), ("1.5h", 5400), ("0s", 0)],
)
def test_ages_take_s_m_h_d_units(text, seconds):
    assert parse_age(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["30", "30w", "d", "-1d", "thirty days", ""])
def test_bad_age_is_a_command_error(text):
    with pytest.raises(CommandError, match="--older-than"):
        purge("--older-than", text)


def test_batch_size_must_be_positive():
    with pytest.raises(CommandError, match="--batch-size"):
        purge("--older-than", "1d", "--batch-size", "0")


def test_retention_task_uses_the_configured_days(version, user):
    old = make_run(version, user, "COMPLETED", 15)
    recent = make_run(version, user, "COMPLETED", 5)

    with override_settings(TRELLIS_RETENTION_DAYS=0):
        assert purge_runs_task() == {}
    assert exists(old)

    with override_settings(TRELLIS_RETENTION_DAYS=10):
        assert purge_runs_task() == {"runs": 1, "nodes": 2, "events": 1}
    assert not exists(old) and exists(recent)
