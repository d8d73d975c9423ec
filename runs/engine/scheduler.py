"""The dependency-counting scheduler.

The decisions are pure (runs.rules.decisions: what a node whose parents have all finished
becomes, retry delays); the writes go through the store (runs.store.writes). Each step here
is one transaction, with broker sends deferred to ``transaction.on_commit``:

- ``create_run``: all NodeRuns at once, each with ``pending_parents`` = its parent count.
- ``start_run``: roots become QUEUED and are sent.
- ``finish_node``: a node ends (COMPLETED / FAILED / SKIPPED …); its children's counters are
  decremented, children reaching zero are decided and queued, and when nothing is left
  unfinished the run ends with its result.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from ..models import NodeRun, Run, Session, WorkflowVersion
from ..rules import templating
from ..rules.decisions import (
    RUN,
    SKIP,
    UPSTREAM_FAILED,
    attempt_outcome,
    backoff_delay,
    decide,
    ready_state,
)
from ..rules.spec import NodeSpec, WorkflowSpec
from ..rules.states import NODE_FINISHED, NODE_UNFINISHED, NodeState, RunState
from ..store import dbretry
from ..store.writes import (
    batched_events,
    claim,
    move_node,
    move_nodes,
    move_run,
    now,
    queue_pending,
    record_event,
    wait_for_slot,
)
from . import admission, dispatch
from .definitions import load_run, run_for_worker, spec_for_version
from .dispatch import new_token, send_nodes
from .scope import run_result, scope_for

logger = logging.getLogger(__name__)
N, R = NodeState, RunState


# --------------------------------------------------------------------------------------
# Definitions


# --------------------------------------------------------------------------------------
# Runs


def create_run(
    version: WorkflowVersion,
    user,
    *,
    inputs: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    session: Session | None = None,
    parent_node: NodeRun | None = None,
) -> Run:
    """A PENDING run with every NodeRun created (PENDING, counters set). Not yet triggered."""
    spec = spec_for_version(version.pk)
    # No savepoint when nested (start_new_run): nothing catches an error half-way, and the
    # SAVEPOINT / RELEASE pair were two of a small run's statements.
    with transaction.atomic(savepoint=False), batched_events():
        run = Run.objects.create(
            workflow_version=version,
            owner=user,
            inputs=inputs or {},
            params=params or {},
            overrides=overrides or {},
            session=session,
            parent_node=parent_node,
        )
        NodeRun.objects.bulk_create(
            [
                NodeRun(
                    run=run,
                    node_id=node.id,
                    handler=node.handler,
                    pending_parents=len(node.dependencies),
                    max_attempts=node.retries + 1,
                    queue=node.queue,
                )
                for node in spec.nodes.values()
            ],
            batch_size=500,
        )
        record_event(run.pk, "run.status", {"status": R.PENDING})
    return run


def start_run(
    run: Run, *, overrides: dict[str, Any] | None = None, params=None, admitting: bool = False
) -> bool:
    """Trigger a PENDING run: it becomes RUNNING and its roots are queued and sent.

    At its workflow's ``max_concurrent_runs`` the run stays PENDING, waiting for a slot
    (``runs/admission.py``); that counts as triggered. False when the run was not PENDING
    (or, with ``admitting``, when there is still no slot).
    """
    spec = spec_for_version(run.workflow_version_id)
    with transaction.atomic(savepoint=False), batched_events():
        fields: dict[str, Any] = {"started_at": now()}
        if overrides is not None:
            fields["overrides"] = overrides
        if params is not None:
            fields["params"] = params
        if spec.max_concurrent_runs and not admission.has_slot(run, spec.max_concurrent_runs):
            if admitting:
                return False
            return wait_for_slot(run, spec.max_concurrent_runs, fields)
        if not admitting and run.waiting_since is not None:
            return False  # triggered already, waiting for a slot
        if not move_run(run, R.PENDING, R.RUNNING, **fields):
            return False
        outbox = Outbox(run, spec)
        roots = [node.id for node in spec.nodes.values() if not node.dependencies]
        conditional = [node_id for node_id in roots if spec.nodes[node_id].when]
        if conditional:
            for node in NodeRun.objects.filter(
                run=run, node_id__in=conditional, pending_parents=0, state=N.PENDING
            ):
                outbox.make_ready(node, failed_parents=0, skipped_parents=0)
        # The others go PENDING -> QUEUED in one UPDATE ... RETURNING (no SELECT first).
        outbox.enqueue_roots([node_id for node_id in roots if not spec.nodes[node_id].when])
        outbox.flush()
    return True


@dataclass
class Outbox:
    """Collects what one transaction decides: nodes to send after commit, nodes finished."""

    run: Run
    spec: WorkflowSpec
    to_send: list[tuple[int, str, NodeSpec]] = field(default_factory=list)
    finished: list[tuple[str, str]] = field(default_factory=list)  # (node_id, final state)
    # The run can only end in a transaction that finished a sink node: a node with children
    # leaves them unfinished (they are queued, or finish in this same transaction).
    touched_sink: bool = False

    def make_ready(self, node: NodeRun, *, failed_parents: int, skipped_parents: int) -> None:
        """Decide a node whose parents have all finished (or a root)."""
        node_spec = self.spec.nodes[node.node_id]
        decision = decide(node_spec.trigger_rule, failed_parents, skipped_parents)
        if decision == RUN and node_spec.when:
            try:
                scope, _ = scope_for(self.run, self.spec, node_spec)
                if not templating.render_bool(node_spec.when, scope):
                    decision = SKIP
            except templating.TemplateError as exc:
                self.fail_without_running(node, f"`when` could not be evaluated: {exc}")
                return
        if decision == SKIP:
            if move_node(node, N.PENDING, N.SKIPPED, finished_at=now()):
                self.finished.append((node.node_id, N.SKIPPED))
        elif decision == UPSTREAM_FAILED:
            if move_node(node, N.PENDING, N.UPSTREAM_FAILED, finished_at=now()):
                self.finished.append((node.node_id, N.UPSTREAM_FAILED))
        else:
            self.enqueue(node, N.PENDING)

    def enqueue(self, node: NodeRun, expected: str | Iterable[str]) -> None:
        """QUEUED with a fresh dispatch token (READY instead while the run is paused)."""
        if ready_state(self.run.status) == N.READY:
            move_node(node, expected, N.READY)
            return
        token = new_token()
        if move_node(node, expected, N.QUEUED, dispatch_token=token, queued_at=now()):
            self.to_send.append((node.pk, token, self.spec.nodes[node.node_id]))

    def fail_without_running(self, node: NodeRun, message: str) -> None:
        error = {"message": message, "type": "TemplateError", "traceback": ""}
        if move_node(
            node, N.PENDING, N.FAILED, error=error, finished_at=now(), data={"error": message}
        ):
            self.finished.append((node.node_id, N.FAILED))

    def drain(self) -> None:
        """Propagate finished nodes to their children until nothing new finishes."""
        while self.finished:
            node_id, state = self.finished.pop()
            children = self.spec.children.get(node_id, ())
            if not children:
                self.touched_sink = True
                continue
            ready, settled = decrement_parents(self.run.pk, children, state)
            if settled:
                # A child already finished (cleared without its downstream, DESIGN §7):
                # this may have been the run's last unfinished node.
                self.touched_sink = True
            plain = []  # ready to run with nothing to evaluate: queued together
            for child in ready:
                child_spec = self.spec.nodes[child.node_id]
                if (
                    not child_spec.when
                    and self.run.status != R.PAUSED
                    and decide(child_spec.trigger_rule, child.failed_parents, child.skipped_parents)
                    == RUN
                ):
                    plain.append(child)
                else:
                    self.make_ready(
                        child,
                        failed_parents=child.failed_parents,
                        skipped_parents=child.skipped_parents,
                    )
            self.enqueue_many(plain)

    def enqueue_many(self, nodes: list[NodeRun]) -> None:
        """PENDING → QUEUED for several nodes in one statement (one token for the batch:
        a token only has to be unknown to stale messages, not unique per node)."""
        token = new_token()
        for node in move_nodes(nodes, N.PENDING, N.QUEUED, dispatch_token=token, queued_at=now()):
            self.to_send.append((node.pk, token, self.spec.nodes[node.node_id]))

    def enqueue_roots(self, node_ids: list[str]) -> None:
        """A RUNNING run's roots (no parents, nothing to evaluate) PENDING -> QUEUED with one
        token, in one compare-and-set ``UPDATE … RETURNING``."""
        if not node_ids:
            return
        token = new_token()
        for node in queue_pending(self.run.pk, node_ids, dispatch_token=token, queued_at=now()):
            self.to_send.append((node.pk, token, self.spec.nodes[node.node_id]))

    def flush(self) -> None:
        """End of the transaction's decisions: propagate what finished, end the run if
        nothing is left, and send the queued nodes after commit."""
        self.drain()
        self.finish_run_if_done()
        self.send_on_commit()

    def finish_run_if_done(self) -> None:
        if self.touched_sink:
            _maybe_finish_run(self.run, self.spec)

    def send_on_commit(self) -> None:
        if self.to_send:
            batch = list(self.to_send)
            self.to_send.clear()
            transaction.on_commit(lambda: send_nodes(batch))


# In model field order, as Model.from_db expects for a partial row.
_COUNTED = ("id", "run_id", "node_id", "state", "failed_parents", "skipped_parents", "attempt")


def decrement_parents(
    run_id: Any, children: Iterable[str], parent_state: str
) -> tuple[list[NodeRun], bool]:
    """A parent ended in ``parent_state``: count it off its children (one UPDATE … RETURNING)
    and return the children it left with no pending parent and still PENDING, and whether
    one of the children had finished already (a node cleared without its downstream).

    Only the transaction that brought a counter to zero sees it at zero: RETURNING gives the
    values this UPDATE wrote, and the row stays locked until commit."""
    nodes = NodeRun._meta.db_table
    counters = "pending_parents = pending_parents - 1"
    if parent_state in (N.FAILED, N.UPSTREAM_FAILED, N.CANCELLED):
        counters += ", failed_parents = failed_parents + 1"
    elif parent_state == N.SKIPPED:
        counters += ", skipped_parents = skipped_parents + 1"
    children = list(children)
    run_value = NodeRun._meta.get_field("run").get_db_prep_value(run_id, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {nodes} SET {counters} WHERE run_id = %s AND node_id IN ("
            + ", ".join(["%s"] * len(children))
            + ") RETURNING pending_parents, "
            + ", ".join(_COUNTED),
            [run_value, *children],
        )
        rows = cursor.fetchall()
    ready = [
        NodeRun.from_db(connection.alias, _COUNTED, row[1:])
        for row in sorted(rows, key=lambda row: row[1])  # in id order, as before
        if row[0] == 0 and row[1 + _COUNTED.index("state")] == N.PENDING
    ]
    for node in ready:
        node.run_id = run_id  # the run's own id object, not the column's text form
    state_column = 1 + _COUNTED.index("state")
    settled = any(row[state_column] in NODE_FINISHED for row in rows)
    return ready, settled


def _reload_after_deadlock(node: NodeRun, *args: Any, run: Run | None = None, **kwargs: Any):
    """The aborted try had changed these in memory (its database writes rolled back)."""
    node.refresh_from_db()
    if run is not None:
        run.refresh_from_db(fields=["status"])


@dbretry.retry_on_deadlock(before_retry=_reload_after_deadlock)
def finish_node(
    node: NodeRun,
    target: str,
    *,
    token: str | None,
    output: Any = None,
    error: dict[str, Any] | None = None,
    retryable: bool = False,
    run: Run | None = None,
) -> str | None:
    """End a RUNNING attempt: COMPLETED, or FAILED / RETRYING per the retry policy.

    Returns the state written, or None when the node was no longer ours (stale token).
    ``run`` (with its workflow_version) saves a query when the caller has it. A transaction
    PostgreSQL aborts as a deadlock victim is run again from the node as stored.
    """
    if run is None:
        run = load_run(node.run_id)
    spec = spec_for_version(run.workflow_version_id)
    node_spec = spec.nodes[node.node_id]
    finished_at = now()
    history = list(node.attempts or []) + [
        {
            "attempt": node.attempt,
            "state": target if target == N.COMPLETED else N.FAILED,
            "worker": node.worker,
            "started_at": node.started_at.isoformat() if node.started_at else None,
            "finished_at": finished_at.isoformat(),
            **({"error": error.get("message")} if error else {}),
        }
    ]
    outcome = attempt_outcome(
        target == N.COMPLETED,
        retryable=retryable,
        attempt=node.attempt,
        max_attempts=node.max_attempts,
    )
    fields: dict[str, Any] = {"error": error, "attempts": history}
    reason = {"error": error["message"] if error else ""}
    data: dict[str, Any] | None = reason
    if outcome == N.COMPLETED:
        fields.update(output=output, error=None, finished_at=finished_at)
        data = None
    elif outcome == N.RETRYING:
        delay = backoff_delay(node_spec.backoff, node.attempt, cap=settings.TRELLIS_MAX_BACKOFF)
        retry_token = new_token()
        fields.update(due_at=finished_at + timedelta(seconds=delay), dispatch_token=retry_token)
        data = {**reason, "retry_in": round(delay, 3)}
    else:
        fields.update(finished_at=finished_at)
    with transaction.atomic(), batched_events():
        if not move_node(node, N.RUNNING, outcome, token=token, data=data, **fields):
            return None
        if outcome == N.RETRYING:
            transaction.on_commit(lambda: dispatch.send_retry(node.pk, retry_token, delay))
            return outcome
        outbox = Outbox(run, spec)
        outbox.finished.append((node.node_id, outcome))
        outbox.flush()
    return outcome


def claim_node(node_pk: int, token: str, worker: str) -> NodeRun | None:
    """Take a QUEUED node for execution: compare-and-set on (QUEUED, this message's token).

    A stale or duplicate message fails the claim and is dropped. A message claimed while
    its run is paused puts the node back to READY, to be sent again on resume.
    """
    with transaction.atomic(), batched_events():
        node = claim(node_pk, token, worker=worker, worker_pid=os.getpid(), started_at=now())
        if node is not None:
            node.run = run_for_worker(node.run_id, R.RUNNING)  # the claim checked RUNNING
            return node
        node = NodeRun.objects.filter(pk=node_pk, state=N.QUEUED, dispatch_token=token).first()
        if node is not None:
            move_node(node, N.QUEUED, N.READY, token=token, run_status=R.PAUSED)
    return None


def requeue_retry(node_pk: int, token: str) -> bool:
    """A RETRYING node whose backoff has passed becomes QUEUED and is sent again."""
    node = NodeRun.objects.filter(pk=node_pk, state=N.RETRYING, dispatch_token=token).first()
    if node is None:
        return False
    run = Run.objects.get(pk=node.run_id)
    spec = spec_for_version(run.workflow_version_id)
    with transaction.atomic():
        outbox = Outbox(run, spec)
        outbox.enqueue(node, N.RETRYING)
        outbox.send_on_commit()
    return True


def _maybe_finish_run(run: Run, spec: WorkflowSpec) -> None:
    """End the run when no node is left unfinished (inside the caller's transaction).

    The run row is locked first: of two transactions finishing the last two nodes, the one
    that locks second sees the other's commit, so exactly one of them ends the run.
    """
    runs, nodes = Run._meta.db_table, NodeRun._meta.db_table
    run_value = Run._meta.pk.get_db_prep_value(run.pk, connection)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        # (SQLite has no FOR UPDATE: its transactions take the write lock at BEGIN.)
        cursor.execute(f"SELECT status FROM {runs} WHERE id = %s{lock}", [run_value])
        status = cursor.fetchone()[0]
        if status not in (R.RUNNING, R.PAUSED):
            return
        run.status = status
        # A statement of its own, after the lock: under READ COMMITTED it sees the commit of
        # the transaction that held the lock.
        cursor.execute(
            f"SELECT state, node_id FROM {nodes} WHERE run_id = %s AND state IN ("
            + ", ".join(["%s"] * len(NODE_UNFINISHED))
            + ") LIMIT 1",
            [run_value, *sorted(NODE_UNFINISHED)],
        )
        if cursor.fetchone() is not None:
            return
        cursor.execute(
            f"SELECT node_id, state FROM {nodes} WHERE run_id = %s AND state IN (%s, %s)"
            " ORDER BY CASE WHEN state = %s THEN 0 ELSE 1 END, id LIMIT 10",
            [run_value, N.FAILED, N.UPSTREAM_FAILED, N.FAILED],
        )
        failed = cursor.fetchall()  # FAILED ones first, for the error message
    final = R.FAILED if failed else R.COMPLETED
    result = run_result(run.pk, spec)
    error = ""
    if final == R.FAILED:
        names = [node_id for node_id, state in failed if state == N.FAILED]
        error = "failed nodes: " + ", ".join(names) if names else "upstream failure"
    if move_run(run, status, final, result=result, error=error, finished_at=now()):
        record_event(run.pk, "run.result", {"status": final, "result": result, "error": error})
        if spec.max_concurrent_runs:
            admit_after_commit(run)
        if run.parent_node_id:
            settle_parent(run, final, result, error)


def settle_parent(child: Run, final: str, result: Any, error: str) -> None:
    """A child run ended: its parent's `workflow` node completes (or fails) with it."""
    parent_node = NodeRun.objects.filter(pk=child.parent_node_id, state=N.WAITING).first()
    if parent_node is None:
        return  # the parent was cancelled or retried meanwhile
    if final == R.COMPLETED:
        settle_waiting(parent_node, N.COMPLETED, output=result)
    else:
        message = f"child run {child.pk} ended {final}" + (f": {error}" if error else "")
        settle_waiting(
            parent_node,
            N.FAILED,
            error={"message": message, "type": "ChildRunFailed", "traceback": ""},
        )


def settle_waiting(
    node: NodeRun,
    target: str,
    *,
    output: Any = None,
    error: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> bool:
    """End a WAITING node (event delivered, child run ended, wait timed out) and carry on
    with its run: children decided, run finished if nothing is left. False if it was not
    WAITING any more (someone else settled it first)."""
    run = load_run(node.run_id)
    spec = spec_for_version(run.workflow_version_id)
    with transaction.atomic():
        if not move_node(
            node,
            N.WAITING,
            target,
            output=output,
            error=error,
            finished_at=now(),
            due_at=None,
            data=data or ({"error": error["message"]} if error else None),
        ):
            return False
        outbox = Outbox(run, spec)
        outbox.finished.append((node.node_id, target))
        outbox.flush()
    return True


def reject_waiting(node: NodeRun, reason: str, *, by: str | None = None) -> bool:
    """A person rejected what a WAITING node asks for: it fails with ``reason`` (type
    ``Rejected``, never retried) and ``trigger_rule`` decides what follows. False if it was
    not WAITING any more."""
    error = {"message": reason, "type": "Rejected", "traceback": ""}
    return settle_waiting(
        node, N.FAILED, error=error, data={"by": by, "action": "reject", "error": reason}
    )


def park_waiting(node: NodeRun, token: str, *, timeout: float | None, data=None) -> bool:
    """RUNNING → WAITING (the node holds no worker while it waits). With a timeout, a timer
    message fails it when the time is up (the reconciler also checks ``due_at``)."""
    due = now() + timedelta(seconds=timeout) if timeout else None
    with transaction.atomic():
        if not move_node(node, N.RUNNING, N.WAITING, token=token, due_at=due, data=data):
            return False
        if timeout:
            transaction.on_commit(lambda: dispatch.send_wait_expiry(node.pk, token, timeout))
    return True


def expire_waiting(node_pk: int, token: str | None = None) -> bool:
    """Fail a WAITING node whose due time has passed."""
    rows = NodeRun.objects.filter(pk=node_pk, state=N.WAITING, due_at__lte=now())
    if token is not None:
        rows = rows.filter(dispatch_token=token)
    node = rows.first()
    if node is None:
        return False
    message = "no event arrived before the node's timeout"
    return settle_waiting(
        node, N.FAILED, error={"message": message, "type": "Timeout", "traceback": ""}
    )


# --------------------------------------------------------------------------------------
# Admission: runs waiting for a slot under ``max_concurrent_runs`` (the policy is
# runs.engine.admission)


def admit_waiting(workflow_id: int) -> int:
    """Start as many waiting runs of the workflow as its free slots allow; how many started."""
    started = 0
    while True:
        with transaction.atomic():
            # Lock before looking: a run that is deciding to wait (it holds the lock) commits
            # first and is seen here. Looking first could miss it and leave it waiting for
            # the reconciler although this very run freed its slot.
            admission.lock(workflow_id)
            run = admission.waiting_runs(workflow_id).select_related("workflow_version").first()
            if run is None:
                return started
            admitted = start_run(run, overrides=run.overrides, params=run.params, admitting=True)
        if not admitted:
            # No slot (start_run left it waiting), or another process started or cancelled
            # it meanwhile: the first means stop, the second means try the next one.
            run.refresh_from_db(fields=["status", "waiting_since"])
            if run.status == R.PENDING and run.waiting_since is not None:
                return started
            continue
        started += 1


def admit_after_commit(run: Run) -> None:
    """Call in the transaction that ends ``run``: its workflow admits waiting runs after."""
    if not admission.limit_of(run):
        return
    workflow_id = (
        run.workflow_version.workflow_id
        if "workflow_version" in run._state.fields_cache
        else Run.objects.filter(pk=run.pk)
        .values_list("workflow_version__workflow_id", flat=True)
        .get()
    )

    def admit() -> None:
        try:
            admit_waiting(workflow_id)
        except Exception:  # noqa: BLE001 - the reconciler admits them on its next pass
            logger.exception("could not admit waiting runs of workflow %s", workflow_id)

    transaction.on_commit(admit)


def admit_all() -> int:
    """Reconciler pass: every workflow with waiting runs gets its free slots filled."""
    workflow_ids = (
        Run.objects.filter(status=R.PENDING, waiting_since__isnull=False)
        .values_list("workflow_version__workflow_id", flat=True)
        .distinct()
    )
    return sum(admit_waiting(workflow_id) for workflow_id in list(workflow_ids))
