"""The state machine: every legal (from, to) pair, and the only code that writes a state.

Writes are compare-and-set: ``UPDATE … WHERE id = ? AND state IN (<expected>)``. A write that
changes no row means another process got there first; callers treat that as "not mine" and
return quietly. Every successful write appends a RunEvent row in the same transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from ..models import NodeRun, Run, RunEvent
from ..rules.states import NodeState, RunState, check_node_transition, check_run_transition
from .publish import queue_publish

N, R = NodeState, RunState


def _as_set(states: str | Iterable[str]) -> tuple[str, ...]:
    return (states,) if isinstance(states, str) else tuple(states)


def move_node(
    node: NodeRun,
    expected: str | Iterable[str],
    target: str,
    *,
    token: str | None = None,
    run_status: str | None = None,
    data: dict[str, Any] | None = None,
    **fields: Any,
) -> bool:
    """Compare-and-set one node's state; True if this call made the change.

    ``run_status`` adds "and its run is in this status" to the same UPDATE.
    ``token``, when given, must match the node's current dispatch token (a stale or duplicate
    message cannot move the node). ``fields`` (plain values, no expressions) are written in
    the same UPDATE.
    """
    expected = _as_set(expected)
    for current in expected:
        check_node_transition(current, target)
    if _update_node(node.pk, expected, target, token, run_status, fields) != 1:
        return False
    previous = node.state
    node.state = target
    for name, value in fields.items():
        setattr(node, name, value)
    event = {"state": target, "attempt": fields.get("attempt", node.attempt)}
    if previous in expected and previous != target:
        event["from"] = previous
    event.update(data or {})
    record_event(node.run_id, "node.status", event, node_id=node.node_id)
    return True


def set_parent_counts(
    node: NodeRun, *, pending_parents: int, failed_parents: int, skipped_parents: int
) -> bool:
    """Compare-and-set a node's parent counters (its state unchanged, so no event): a node
    action made some of its parents pending again. True if the node was still in the state
    read."""
    counts = {
        "pending_parents": pending_parents,
        "failed_parents": failed_parents,
        "skipped_parents": skipped_parents,
    }
    if NodeRun.objects.filter(pk=node.pk, state=node.state).update(**counts) != 1:
        return False
    for name, value in counts.items():
        setattr(node, name, value)
    return True


def move_run(
    run: Run,
    expected: str | Iterable[str],
    target: str,
    *,
    data: dict[str, Any] | None = None,
    **fields: Any,
) -> bool:
    """Compare-and-set a run's status; True if this call made the change. ``fields`` (plain
    values) are written in the same UPDATE."""
    expected = _as_set(expected)
    for current in expected:
        check_run_transition(current, target)
    assignments, params = _sql_values(Run, fields)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Run._meta.db_table} SET status = %s{assignments}"
            " WHERE id = %s AND status IN (" + ", ".join(["%s"] * len(expected)) + ")",
            [target, *params, Run._meta.pk.get_db_prep_value(run.pk, connection), *expected],
        )
        if cursor.rowcount != 1:
            return False
    previous = run.status
    run.status = target
    for name, value in fields.items():
        setattr(run, name, value)
    event = {"status": target, "from": previous}
    event.update(data or {})
    record_event(run.pk, "run.status", event)
    return True


# Conditions on a node's run are written as EXISTS, never a join: Django turns an UPDATE with
# a join into ``WHERE id IN (subquery)``, and PostgreSQL then re-checks only ``id IN`` when a
# concurrent writer changed the row, so two transactions could both claim it.
_RUN_IS = "EXISTS (SELECT 1 FROM {runs} WHERE {runs}.id = {nodes}.run_id AND {runs}.status = %s)"


def _sql_values(model, fields: dict[str, Any]) -> tuple[str, list[Any]]:
    """``, col = %s …`` and its parameters, each value prepared by its model field (so the
    column gets exactly what the ORM would write)."""
    meta = model._meta
    sql, params = [], []
    for name, value in fields.items():
        field = meta.get_field(name)
        sql.append(f", {connection.ops.quote_name(field.column)} = %s")
        params.append(field.get_db_prep_save(value, connection))
    return "".join(sql), params


def _update_node(
    pk: int,
    expected: tuple[str, ...],
    target: str,
    token: str | None,
    run_status: str | None,
    fields: dict[str, Any],
) -> int:
    """The compare-and-set UPDATE of ``move_node`` in plain SQL (it runs a few times per node;
    the ORM took longer to build it than the database to run it). Returns the row count."""
    nodes, runs = NodeRun._meta.db_table, Run._meta.db_table
    assignments, params = _sql_values(NodeRun, fields)
    sql = (
        f"UPDATE {nodes} SET state = %s{assignments} WHERE id = %s AND state IN ("
        + ", ".join(["%s"] * len(expected))
        + ")"
    )
    params = [target, *params, pk, *expected]
    if token is not None:
        sql += " AND dispatch_token = %s"
        params.append(token)
    if run_status is not None:
        sql += " AND " + _RUN_IS.format(runs=runs, nodes=nodes)
        params.append(run_status)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


_NODE_FIELDS = tuple(field.attname for field in NodeRun._meta.concrete_fields)


def _converters(model, attnames: tuple[str, ...]) -> list[tuple[Any, list]]:
    """What the ORM applies to each column it reads (backend, then field converters), so
    rows read with plain SQL come out as the ORM would return them. Per column: (Col,
    converters)."""
    key = (connection.alias, connection.vendor, model, attnames)
    found = _CONVERTERS.get(key)
    if found is None:
        found = []
        for attname in attnames:
            field = next(f for f in model._meta.concrete_fields if f.attname == attname)
            column = field.get_col(model._meta.db_table)
            found.append(
                (
                    column,
                    connection.ops.get_db_converters(column) + field.get_db_converters(connection),
                )
            )
        _CONVERTERS[key] = found
    return found


_CONVERTERS: dict[tuple, list] = {}


def rows_to_values(model, attnames: tuple[str, ...], rows) -> list[list[Any]]:
    """Convert rows (columns ``attnames`` of ``model``) read with plain SQL."""
    converters = _converters(model, attnames)
    converted = []
    for row in rows:
        values = list(row)
        for index, (column, functions) in enumerate(converters):
            for function in functions:
                values[index] = function(values[index], column, connection)
        converted.append(values)
    return converted


def claim(node_pk: int, token: str, **fields: Any) -> NodeRun | None:
    """QUEUED → RUNNING for the holder of the current dispatch token, only while the run is
    RUNNING; the attempt counter goes up in the same UPDATE. Returns the node as the UPDATE
    left it, or None when the claim failed.

    One statement (``UPDATE … RETURNING``, SQLite ≥ 3.35 and PostgreSQL) instead of an UPDATE
    and a SELECT: this runs once per node, and building the two through the ORM cost more
    than running them. The run condition is EXISTS, never a join (see ``_RUN_IS``)."""
    check_node_transition(N.QUEUED, N.RUNNING)
    nodes, runs = NodeRun._meta.db_table, Run._meta.db_table
    columns = ", ".join(connection.ops.quote_name(f.column) for f in NodeRun._meta.concrete_fields)
    assignments, params = _sql_values(NodeRun, fields)
    update = (
        f"UPDATE {nodes} SET state = %s, attempt = attempt + 1, finished_at = NULL{assignments}"
        f" WHERE id = %s AND state = %s AND dispatch_token = %s"
        f" AND {_RUN_IS.format(runs=runs, nodes=nodes)} RETURNING {columns}"
    )
    params = [N.RUNNING, *params, node_pk, N.QUEUED, token, R.RUNNING]
    if claim_in_one_statement():
        return _claim_with_event(update, params, columns)
    with connection.cursor() as cursor:
        cursor.execute(update, params)
        rows = cursor.fetchall()
    if not rows:
        return None
    node = NodeRun.from_db(
        connection.alias, _NODE_FIELDS, rows_to_values(NodeRun, _NODE_FIELDS, rows)[0]
    )
    record_event(node.run_id, "node.status", _claim_data(node), node_id=node.node_id)
    return node


def _claim_data(node: NodeRun) -> dict[str, Any]:
    return {"state": N.RUNNING, "from": N.QUEUED, "attempt": node.attempt, "worker": node.worker}


def claim_in_one_statement() -> bool:
    """PostgreSQL outside a transaction: the claim and its event are one statement (a
    data-modifying ``WITH``), so one round trip, atomic by itself, replaces BEGIN, UPDATE,
    INSERT and COMMIT. Inside a transaction (or a batch of events, whose ids must follow
    the order of the changes) the event is recorded as usual."""
    return (
        connection.vendor == "postgresql"
        and not connection.in_atomic_block
        and getattr(_batch, "events", None) is None
    )


def _claim_with_event(update: str, params: list[Any], columns: str) -> NodeRun | None:
    events = RunEvent._meta.db_table
    ts = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH moved AS ({update}), event AS ("
            f"INSERT INTO {events} (run_id, ts, kind, node_id, data)"
            " SELECT run_id, %s, 'node.status', node_id, jsonb_build_object("
            "'state', state, 'from', %s, 'attempt', attempt, 'worker', worker) FROM moved"
            f" RETURNING id) SELECT {columns}, (SELECT id FROM event) FROM moved",
            [*params, ts, N.QUEUED],
        )
        rows = cursor.fetchall()
    if not rows:
        return None
    *values, event_id = rows[0]
    node = NodeRun.from_db(
        connection.alias, _NODE_FIELDS, rows_to_values(NodeRun, _NODE_FIELDS, [values])[0]
    )
    event = RunEvent(
        id=event_id,
        run_id=node.run_id,
        ts=ts,
        kind="node.status",
        node_id=node.node_id,
        data=_claim_data(node),
    )
    event._state.adding, event._state.db = False, connection.alias
    queue_publish(event)  # committed already: published now
    return node


def move_nodes(
    nodes: list[NodeRun],
    expected: str,
    target: str,
    *,
    data: dict[str, Any] | None = None,
    **fields: Any,
) -> list[NodeRun]:
    """Compare-and-set many nodes of one run at once (one UPDATE, one bulk INSERT of events).

    Returns the nodes this call moved. When another writer got some of them first, falls
    back to one compare-and-set per node so that exactly the moved ones are returned.
    """
    check_node_transition(expected, target)
    if not nodes:
        return []
    pks = [node.pk for node in nodes]
    assignments, params = _sql_values(NodeRun, fields)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {NodeRun._meta.db_table} SET state = %s{assignments} WHERE id IN ("
            + ", ".join(["%s"] * len(pks))
            + ") AND state = %s",
            [target, *params, *pks, expected],
        )
        changed = cursor.rowcount
    if changed != len(nodes):
        # Undo nothing: rows that moved did so legitimately. Find out which ones were ours.
        mine = set(
            NodeRun.objects.filter(
                pk__in=pks,
                state=target,
                **{k: v for k, v in fields.items() if k == "dispatch_token"},
            ).values_list("pk", flat=True)
        )
        nodes = [node for node in nodes if node.pk in mine]
    for node in nodes:
        node.state = target
        for name, value in fields.items():
            setattr(node, name, value)
    record_events(
        [
            (
                node.run_id,
                "node.status",
                {"state": target, "from": expected, "attempt": node.attempt, **(data or {})},
                node.node_id,
            )
            for node in nodes
        ]
    )
    return nodes


def queue_pending(run_id: Any, node_ids: list[str], **fields: Any) -> list[NodeRun]:
    """PENDING → QUEUED for the named nodes of a run that are still PENDING with no pending
    parent (compare-and-set, one ``UPDATE … RETURNING``); records their events and returns
    the nodes moved (id, node id, attempt loaded)."""
    check_node_transition(N.PENDING, N.QUEUED)
    nodes = NodeRun._meta.db_table
    assignments, params = _sql_values(NodeRun, fields)
    run_value = NodeRun._meta.get_field("run").get_db_prep_value(run_id, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {nodes} SET state = %s{assignments} WHERE run_id = %s AND state = %s"
            " AND pending_parents = 0 AND node_id IN ("
            + ", ".join(["%s"] * len(node_ids))
            + ") RETURNING id, node_id, attempt",
            [N.QUEUED, *params, run_value, N.PENDING, *node_ids],
        )
        rows = sorted(cursor.fetchall())  # in id order
    moved = []
    for pk, node_id, attempt in rows:
        node = NodeRun.from_db(
            connection.alias, ("id", "run_id", "node_id", "attempt"), (pk, None, node_id, attempt)
        )
        node.run_id = run_id
        node.state = N.QUEUED
        for name, value in fields.items():
            setattr(node, name, value)
        moved.append(node)
    record_events(
        [
            (
                run_id,
                "node.status",
                {"state": N.QUEUED, "from": N.PENDING, "attempt": node.attempt},
                node.node_id,
            )
            for node in moved
        ]
    )
    return moved


# Events of one unit of work (a claim, a node's completion …) are written together: one
# INSERT for all of them at the end of the block, still inside its transaction.
_batch = threading.local()
_EVENT_FIELDS = ("run", "ts", "kind", "node_id", "data")
_EVENT_ROWS_PER_INSERT = 500  # 5 parameters a row: well under SQLite's 32,766


@contextmanager
def batched_events() -> Iterator[None]:
    """Collect the events recorded in this block and insert them with one statement when it
    ends. Use inside ``transaction.atomic()``: the rows still commit with the state changes
    they describe. A nested block joins the outer one; on an exception nothing is written
    (the transaction rolls back anyway). Events recorded inside a savepoint opened within the
    block are written at once, so that rolling the savepoint back removes them too."""
    if getattr(_batch, "events", None) is not None:
        yield
        return
    events: list[RunEvent] = []
    _batch.events, _batch.savepoints = events, _savepoint_depth()
    try:
        yield
    finally:
        _batch.events = None
    _insert_events(events)


def _savepoint_depth() -> int:
    # atomic(savepoint=False) blocks push None: they cannot be rolled back on their own.
    return sum(1 for sid in connection.savepoint_ids if sid is not None)


def _insert_events(events: list[RunEvent]) -> None:
    """INSERT … RETURNING id for many events at once, then queue them for publishing."""
    if not events:
        return
    meta = RunEvent._meta
    fields = [meta.get_field(name) for name in _EVENT_FIELDS]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    row_sql = "(" + ", ".join(["%s"] * len(fields)) + ")"
    ts = timezone.now()
    for start in range(0, len(events), _EVENT_ROWS_PER_INSERT):
        chunk = events[start : start + _EVENT_ROWS_PER_INSERT]
        params = []
        for event in chunk:
            event.ts = ts
            params.extend(
                field.get_db_prep_save(getattr(event, field.attname), connection)
                for field in fields
            )
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {meta.db_table} ({columns}) VALUES "
                + ", ".join([row_sql] * len(chunk))
                + " RETURNING id",
                params,
            )
            # Ids grow in insertion order; sorting does not rely on RETURNING's row order.
            ids = sorted(row[0] for row in cursor.fetchall())
        for event, pk in zip(chunk, ids, strict=True):
            event.id = pk
            event._state.adding = False
            event._state.db = connection.alias
            queue_publish(event)


def record_events(events: list[tuple[Any, str, Any, str]]) -> list[RunEvent]:
    """Append several events (run_id, kind, data, node_id)."""
    rows = [
        RunEvent(run_id=run_id, kind=kind, data=data or {}, node_id=node_id)
        for run_id, kind, data, node_id in events
    ]
    pending = getattr(_batch, "events", None)
    if (
        pending is not None
        and connection.in_atomic_block
        and _savepoint_depth() == _batch.savepoints
    ):
        pending.extend(rows)
    else:
        _insert_events(rows)
    return rows


def record_event(run_id: Any, kind: str, data: Any, *, node_id: str = "") -> RunEvent:
    """Append one event row (callers are inside the transaction that caused it). Inside
    ``batched_events()`` the row is written, and gets its id, when the block ends."""
    return record_events([(run_id, kind, data, node_id)])[0]


def now():
    return timezone.now()


def record_for_attempt(node: NodeRun, token: str, kind: str, data: Any) -> bool:
    """Append an event about the attempt that holds ``node`` now (RUNNING with dispatch token
    ``token``), in one transaction with the node's row locked, so the token cannot change
    between the check and the insert. A superseded attempt (the node re-queued by the
    reconciler, retried, cleared or cancelled meanwhile) records nothing: False. A map item
    reports its outcome this way."""
    with transaction.atomic():
        held = (
            NodeRun.objects.select_for_update()
            .filter(pk=node.pk, state=N.RUNNING, dispatch_token=token)
            .exists()
        )
        if not held:
            return False
        record_event(node.run_id, kind, data, node_id=node.node_id)
    return True


def wait_for_slot(run: Run, limit: int, fields: dict[str, Any]) -> bool:
    """A PENDING run triggered at its workflow's ``max_concurrent_runs``: compare-and-set
    (still PENDING, not yet waiting) ``waiting_since``, with a ``run.waiting`` event. The run
    stays PENDING (the table's state) until admitted; the API and the dashboard show the
    wait from ``waiting_since``. False if it was not PENDING or already waiting."""
    fields = {key: value for key, value in fields.items() if key != "started_at"}
    since = now()
    updated = Run.objects.filter(pk=run.pk, status=R.PENDING, waiting_since__isnull=True).update(
        waiting_since=since, **fields
    )
    if not updated:
        return False
    run.waiting_since = since
    for key, value in fields.items():
        setattr(run, key, value)
    record_event(run.pk, "run.waiting", {"max_concurrent_runs": limit})
    return True
