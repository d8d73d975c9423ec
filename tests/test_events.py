"""Event rows of one unit of work: written together at its end, inside its transaction."""

from __future__ import annotations

import pytest
from django.db import transaction

from runs.engine.scheduler import create_run
from runs.models import RunEvent
from runs.store.writes import batched_events, record_event
from tests.specs import save

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(user):
    return create_run(save(user, [{"id": "a", "handler": "input"}], prefix="events"), user)


def logged(run) -> list[str]:
    return [
        data["message"]
        for data in RunEvent.objects.filter(run=run, kind="node.log").values_list("data", flat=True)
    ]


def test_batched_events_are_inserted_at_the_end_of_the_block_in_order(run):
    with transaction.atomic(), batched_events():
        events = [record_event(run.pk, "node.log", {"message": m}, node_id="a") for m in "xyz"]
        assert logged(run) == [] and events[0].id is None
    assert logged(run) == ["x", "y", "z"]
    ids = [event.id for event in events]
    assert (
        ids == sorted(ids)
        and list(RunEvent.objects.filter(run=run, kind="node.log").values_list("id", flat=True))
        == ids
    )


def test_an_event_in_a_rolled_back_savepoint_is_not_written(run):
    with transaction.atomic(), batched_events():
        record_event(run.pk, "node.log", {"message": "kept"}, node_id="a")
        try:
            with transaction.atomic():
                record_event(run.pk, "node.log", {"message": "rolled back"}, node_id="a")
                raise RuntimeError("undo the savepoint")
        except RuntimeError:
            pass
    assert logged(run) == ["kept"]


def test_an_error_in_the_block_writes_none_of_its_events(run):
    with pytest.raises(RuntimeError), transaction.atomic(), batched_events():
        record_event(run.pk, "node.log", {"message": "lost"}, node_id="a")
        raise RuntimeError("boom")
    assert logged(run) == []
