"""A transaction PostgreSQL aborts as a deadlock victim is run again (runs/dbretry.py)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction
from django.db.models import F

from runs.models import Session
from runs.store.dbretry import retry_on_deadlock

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite serializes writers: no deadlocks"
)
def test_two_transactions_locking_in_opposite_orders_both_complete(user):
    first = Session.objects.create(owner=user, state={"n": 0})
    second = Session.objects.create(owner=user, state={"n": 0})
    both_locked_one = threading.Barrier(2, timeout=10)
    calls = {"a": 0, "b": 0}
    errors: list[BaseException] = []

    def bump(pk):
        Session.objects.filter(pk=pk).update(revision=F("revision") + 1)

    def make(name, one, other):
        @retry_on_deadlock
        def work():
            calls[name] += 1
            with transaction.atomic():
                bump(one.pk)
                if calls[name] == 1:
                    both_locked_one.wait()  # each holds one row: the next update deadlocks
                bump(other.pk)

        def run():
            try:
                work()
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)
            finally:
                connection.close()

        return threading.Thread(target=run)

    threads = [make("a", first, second), make("b", second, first)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sorted(calls.values()) == [1, 2]  # one of them was the victim and ran again
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.revision, second.revision) == (2, 2)
