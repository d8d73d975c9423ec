"""Celery tasks: thin adapters from messages to the scheduler. Tasks take ids, never objects,
and never wait on other tasks."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
import traceback
from datetime import timedelta
from typing import Any

from celery import chord, current_app, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction

from handlers.registry import (
    Context,
    HandlerError,
    SessionHandle,
    StartChildRun,
    WaitForEvent,
    get_handler,
)

from . import heartbeat  # noqa: F401 - connects the worker's heartbeat to Celery's signals
from .capture import capture_attempt
from .engine import queue_limits
from .engine.definitions import load_run, spec_for_version
from .engine.dispatch import HARD_LIMIT_GRACE
from .engine.reconciler import reconcile
from .engine.retention import purge_runs
from .engine.scheduler import (
    Carry,
    claim_node,
    expire_waiting,
    finish_node,
    park_waiting,
    requeue_retry,
)
from .engine.scope import scope_for
from .engine.secrets import Secrets
from .logcontext import bind_log_context, in_own_log_context
from .models import NodeRun, Run, Workflow
from .ops import timelimits
from .ops.kombu_fix import patch_kombu_detached_channel
from .rules import templating
from .rules.decisions import may_continue
from .rules.limits import clip_event_data
from .rules.spec import SpecError
from .rules.states import NodeState, RunState
from .services.runs import find_version, start_child_run, start_new_run
from .services.sessions import session_state, update_session
from .store.writes import now, record_event, record_for_attempt

logger = logging.getLogger(__name__)

# Set on the tasks themselves, so a host project's Celery app runs them as the standalone one
# does whatever its own defaults: a message is acknowledged only after its node's outcome is
# recorded, and one whose worker process died is delivered again (the dispatch token makes a
# second delivery harmless). No result is stored; the database holds the outcome.
DURABLE = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}

patch_kombu_detached_channel()  # every worker imports this module at start
N = NodeState


class NodeFailure(Exception):
    def __init__(self, message: str, *, kind: str, retryable: bool, trace: str = "") -> None:
        super().__init__(message)
        self.error = {"message": message, "type": kind, "traceback": trace}
        self.retryable = retryable


def _failure_from(exc: BaseException, timeout: float) -> NodeFailure:
    """Turn whatever a node raised into recorded failure data."""
    if isinstance(exc, NodeFailure):
        return exc
    if isinstance(exc, SoftTimeLimitExceeded):
        return NodeFailure(f"node timed out after {timeout:g} s", kind="Timeout", retryable=True)
    if isinstance(exc, HandlerError):
        return NodeFailure(exc.message, kind="HandlerError", retryable=exc.retryable)
    if isinstance(exc, templating.TemplateError):
        return NodeFailure(str(exc), kind="TemplateError", retryable=False)
    return NodeFailure(
        f"{type(exc).__name__}: {exc}",
        kind=type(exc).__name__,
        retryable=True,
        trace=traceback.format_exc(),
    )


def _checked_output(output: Any) -> Any:
    """The output as it is stored and read back (JSON: string keys, lists for tuples), or a
    NodeFailure for one that cannot be stored."""
    try:
        text = json.dumps(output)
    except (TypeError, ValueError) as exc:
        raise NodeFailure(
            f"the handler returned a value that is not JSON-serializable: {exc}",
            kind="OutputError",
            retryable=False,
        ) from None
    if len(text) > settings.TRELLIS_MAX_OUTPUT_BYTES:
        raise NodeFailure(
            f"the output is {len(text)} bytes, over the limit of"
            f" {settings.TRELLIS_MAX_OUTPUT_BYTES} (TRELLIS_MAX_OUTPUT_BYTES)",
            kind="OutputError",
            retryable=False,
        )
    return json.loads(text)


class _Execution:
    """Everything one attempt of a node needs, loaded once."""

    def __init__(self, node: NodeRun) -> None:
        self.node = node
        if "run" in node._state.fields_cache:
            self.run = node.run  # loaded with the claim
        else:
            self.run = load_run(node.run_id)
        self.spec = spec_for_version(self.run.workflow_version_id)
        self.node_spec = self.spec.nodes[node.node_id]
        self._cancel_checked_at = 0.0
        self._cancelled = False
        self.secrets = Secrets()  # what the config used; taken out of all the node produces

    def config(self) -> dict[str, Any]:
        config = dict(self.node_spec.config)
        config.update(self.run.overrides.get(self.node.node_id) or {})
        return config

    def context(self, upstream: dict[str, Any]) -> Context:
        return Context(
            run_id=str(self.run.pk),
            node_id=self.node.node_id,
            attempt=self.node.attempt,
            inputs=self.run.inputs,
            upstream=upstream,
            dependencies=self.node_spec.dependencies,
            params=self.run.params,
            deadline=time.time() + self.node_spec.timeout,
            emit=self._emit,
            is_cancelled=self._is_cancelled,
            session=self._session(),
        )

    def _emit(self, kind: str, data: Any) -> None:
        kind = kind if "." in kind else f"node.{kind}"
        data = self.secrets.redact(data)
        record_event(self.run.pk, kind, clip_event_data(data), node_id=self.node.node_id)

    def _is_cancelled(self) -> bool:
        # Handlers may poll in a loop: ask the database at most twice a second.
        if not self._cancelled and time.monotonic() - self._cancel_checked_at > 0.5:
            self._cancel_checked_at = time.monotonic()
            self._cancelled = Run.objects.filter(pk=self.run.pk, status=RunState.CANCELLED).exists()
        return self._cancelled

    def _session(self) -> SessionHandle | None:
        if not self.run.session_id:
            return None
        session_id = self.run.session_id
        return SessionHandle(
            read=lambda: session_state(session_id),
            update=lambda change: update_session(session_id, change),
        )

    def call_handler(self, scope: dict[str, Any], upstream: dict[str, Any]) -> Any:
        config = templating.render_value(self.config(), {**scope, "secrets": self.secrets})
        handler = get_handler(self.node_spec.handler)
        # what the handler logs and prints, not the rendering above (Trellis's own work)
        with capture_attempt(
            self.run.pk, self.node.node_id, self.node.attempt, self.secrets.redact
        ):
            output = handler.run(self.context(upstream), config)
        if isinstance(output, StartChildRun) and self.secrets.used:
            # the child's inputs are stored and shown like any run's
            return dataclasses.replace(output, inputs=self.secrets.redact(output.inputs))
        if isinstance(output, WaitForEvent | StartChildRun):
            return output
        return _checked_output(self.secrets.redact(output))


@shared_task(bind=True, name="trellis.execute_node", **DURABLE)
@in_own_log_context  # the run and node bound below label its log lines, until it returns
def execute_node(self, node_pk: int, token: str) -> None:
    """Claim a queued node, run its handler, record the outcome and queue what became ready;
    then run, in this same task, a node that became ready on this queue (Carry), while the
    task's time limits leave it its own timeout, up to ``TRELLIS_CONTINUE_HOPS`` nodes."""
    began = time.monotonic()
    worker = getattr(self.request, "hostname", None) or f"local-{os.getpid()}"
    queue = (self.request.delivery_info or {}).get("routing_key")
    limit = queue_limits.limit_for(queue)
    if limit:
        node = queue_limits.claim_within_limit(queue, limit, node_pk, token, worker)
        if node is queue_limits.FULL:
            hard, soft = self.request.timelimit or (None, None)
            self.apply_async(
                (node_pk, token),
                task_id=self.request.id,
                queue=queue,
                countdown=queue_limits.retry_delay(),
                soft_time_limit=soft,
                time_limit=hard,
            )
            return
    else:
        node = claim_node(node_pk, token, worker)
    if node is None:
        return  # stale or duplicate message, or the run is paused
    hard, soft = self.request.timelimit or (None, None)
    hops = 0

    def fits(node_spec) -> bool:
        return may_continue(
            hops=hops,
            max_hops=settings.TRELLIS_CONTINUE_HOPS,
            elapsed=time.monotonic() - began,
            limits=(hard, soft),
            timeout=node_spec.timeout,
            grace=HARD_LIMIT_GRACE,
        )

    # Only where this process keeps each node's own limits, and never on a limited queue
    # (its slots are counted per claim, runs.engine.queue_limits).
    continues = bool(queue) and not limit and timelimits.available()
    known: dict[str, Any] = {}  # the output of the node this task just completed
    while node is not None:
        bind_log_context(run_id=node.run_id, node_id=node.node_id)
        execution = _Execution(node)
        carry = Carry(queue, worker, fits) if continues else None
        # The message's limits are the first node's own, unless they left room to continue.
        own_limits = hops > 0 or (soft is not None and soft > execution.node_spec.timeout)
        known = _execute(execution, token, carry, own_limits=own_limits, known=known)
        node = carry.node if carry else None
        if node is not None:
            token = node.dispatch_token
            hops += 1


def _execute(
    execution: _Execution,
    token: str,
    carry: Carry | None,
    *,
    own_limits: bool,
    known: dict[str, Any],
) -> dict[str, Any]:
    """Run one claimed node and record its outcome (``carry``: see execute_node).

    ``known``: outputs of COMPLETED nodes this task already holds (its parent's, when it was
    continued), which the scope then need not read back. Returns this node's own when it
    completed, for the node the task may run next."""
    node = execution.node
    limits = (
        timelimits.node_time_limits(
            execution.node_spec.timeout,
            HARD_LIMIT_GRACE,
            f"node {node.node_id} of run {node.run_id}",
        )
        if own_limits
        else contextlib.nullcontext()
    )
    try:
        with limits:
            scope, upstream = scope_for(
                execution.run, execution.spec, execution.node_spec, known=known
            )
            if execution.node_spec.map:
                items = templating.render_value(execution.node_spec.map, scope)
                if _start_map(execution, token, items):
                    return {}  # the chord's callback finishes the node
                output = []
            else:
                output = execution.call_handler(scope, upstream)
    except BaseException as exc:  # noqa: BLE001 - every failure is recorded on the node
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        failure = _failure_from(exc, execution.node_spec.timeout)
        failure.error = execution.secrets.redact(failure.error)
        if failure.error["type"] not in ("HandlerError", "Timeout"):
            logger.warning(  # the recorded (redacted) traceback, not exc_info: no secrets
                "node %s of run %s failed: %s",
                node.node_id,
                node.run_id,
                failure.error["traceback"] or failure.error["message"],
            )
        finish_node(
            node,
            N.FAILED,
            token=token,
            error=failure.error,
            retryable=failure.retryable,
            run=execution.run,
            carry=carry,
        )
        return {}
    if isinstance(output, WaitForEvent):
        park_waiting(node, token, timeout=output.timeout)
    elif isinstance(output, StartChildRun):
        _start_child(execution, token, output)
    else:
        state = finish_node(
            node, N.COMPLETED, token=token, output=output, run=execution.run, carry=carry
        )
        if state == N.COMPLETED:
            return {node.node_id: output}
    return {}


def _start_child(execution: _Execution, token: str, instruction: StartChildRun) -> None:
    """A `workflow` node: start the child run, park the node until the child ends."""
    node = execution.node
    try:
        with transaction.atomic():
            if not park_waiting(node, token, timeout=None):
                return
            child = start_child_run(execution.run, node, instruction)
            record_event(
                execution.run.pk, "node.event", {"child_run": str(child.pk)}, node_id=node.node_id
            )
    except SpecError as exc:
        message = "; ".join(f"{e['path']}: {e['message']}" for e in exc.errors)
        error = {
            "message": f"cannot start child run: {message}",
            "type": "ChildRunError",
            "traceback": "",
        }
        finish_node(node, N.FAILED, token=token, error=error, retryable=False)


def _start_map(execution: _Execution, token: str, items: Any) -> bool:
    """Fan a map node out as a group of item tasks joined by a chord callback."""
    if not isinstance(items, list):
        raise NodeFailure(
            f"`map` must render to a list, got {type(items).__name__}",
            kind="MapError",
            retryable=False,
        )
    if len(items) > settings.TRELLIS_MAX_MAP_ITEMS:
        raise NodeFailure(
            f"`map` produced {len(items)} items, over the limit of "
            f"{settings.TRELLIS_MAX_MAP_ITEMS} (TRELLIS_MAX_MAP_ITEMS)",
            kind="MapError",
            retryable=False,
        )
    if not items:
        return False
    node_spec = execution.node_spec
    options = {
        "queue": node_spec.queue,
        "soft_time_limit": node_spec.timeout,
        "time_limit": node_spec.timeout + 30,
    }
    header = [
        run_map_item.s(execution.node.pk, token, index, item).set(**options)
        for index, item in enumerate(items)
    ]
    chord(header)(finish_map.s(execution.node.pk, token).set(queue=node_spec.queue))
    return True


@shared_task(name="trellis.run_map_item", **{**DURABLE, "ignore_result": False})
def run_map_item(node_pk: int, token: str, index: int, item: Any) -> dict[str, Any]:
    """One item of a map node. Never raises: the chord callback decides from the results.

    Each item's outcome is also recorded as a ``node.event`` (``map_item_event``), only while
    its attempt still holds the node: a stale item (superseded by a re-queue, a retry or a
    cancel) records nothing."""
    node = NodeRun.objects.filter(pk=node_pk, state=N.RUNNING, dispatch_token=token).first()
    if node is None:
        return {"error": {"message": "superseded", "type": "Stale", "traceback": ""}, "stale": True}
    execution = _Execution(node)
    started_at = now()
    try:
        scope, upstream = scope_for(
            execution.run, execution.spec, execution.node_spec, item=item, index=index
        )
        result: dict[str, Any] = {"ok": execution.call_handler(scope, upstream)}
    except BaseException as exc:  # noqa: BLE001 - recorded in the result for the callback
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        failure = _failure_from(exc, execution.node_spec.timeout)
        failure.error = execution.secrets.redact(failure.error)
        failure.error["message"] = f"item {index}: {failure.error['message']}"
        result = {"error": failure.error, "retryable": failure.retryable}
    event = map_item_event(index, node.attempt, started_at, now(), result.get("error"))
    record_for_attempt(node, token, "node.event", clip_event_data(event))
    return result


def map_item_event(
    index: int, attempt: int, started_at, finished_at, error: dict[str, Any] | None
) -> dict[str, Any]:
    """The data of a map item's ``node.event`` (documented in docs/guides/map-when-trigger-
    rules.md): ``map_item`` (its index), ``state`` (COMPLETED or FAILED), the node's
    ``attempt``, ``started_at`` / ``finished_at`` (ISO 8601), ``duration`` (seconds) and, when
    it failed, ``error`` (the message) and ``error_type``."""
    data: dict[str, Any] = {
        "map_item": index,
        "state": N.FAILED if error else N.COMPLETED,
        "attempt": attempt,
        "started_at": started_at.isoformat(),
        "finished_at": finished_at.isoformat(),
        "duration": round((finished_at - started_at).total_seconds(), 3),
    }
    if error:
        data["error"] = error.get("message", "")
        data["error_type"] = error.get("type", "")
    return data


@shared_task(name="trellis.finish_map", **DURABLE)
def finish_map(results: list[dict[str, Any]], node_pk: int, token: str) -> None:
    node = NodeRun.objects.filter(pk=node_pk, state=N.RUNNING, dispatch_token=token).first()
    if node is None:
        return
    failures = [result for result in results if "error" in result]
    if failures:
        first = failures[0]
        finish_node(
            node,
            N.FAILED,
            token=token,
            error=first["error"],
            retryable=all(failure.get("retryable") for failure in failures),
        )
        return
    try:
        output = _checked_output([result["ok"] for result in results])
    except NodeFailure as failure:
        finish_node(node, N.FAILED, token=token, error=failure.error, retryable=False)
        return
    finish_node(node, N.COMPLETED, token=token, output=output)


@shared_task(name="trellis.expire_wait", **DURABLE)
def expire_wait(node_pk: int, token: str) -> None:
    """A WAITING node's timeout has passed: fail it (nothing happens if it was settled)."""
    expire_waiting(node_pk, token)


@shared_task(name="trellis.send_due_retry", **DURABLE)
def send_due_retry(node_pk: int, token: str) -> None:
    """The backoff of a RETRYING node has passed: queue it again."""
    requeue_retry(node_pk, token)


@shared_task(name="trellis.reconcile", ignore_result=True)
def reconcile_task() -> dict[str, int]:
    """The beat-driven reconciler pass (see runs.workers)."""
    counts = reconcile()
    if any(counts.values()):
        logger.info("reconciler: %s", counts)
    return counts


@shared_task(name="trellis.start_scheduled_run", **DURABLE)
def start_scheduled_run(workflow_name: str) -> str | None:
    """Beat fires a workflow's cron schedule: start a run of its latest version with the
    spec's default inputs, owned by the workflow's owner."""
    workflow = Workflow.objects.select_related("owner").filter(name=workflow_name).first()
    if workflow is None:
        logger.warning("scheduled workflow %s no longer exists", workflow_name)
        return None
    try:
        run = start_new_run(find_version(workflow, None), workflow.owner, inputs={})
    except SpecError as exc:
        logger.error("scheduled run of %s refused: %s", workflow_name, exc.errors)
        return None
    return str(run.pk)


@shared_task(name="trellis.purge_runs", ignore_result=True)
def purge_runs_task() -> dict[str, int]:
    """Beat's retention pass: finished runs older than ``TRELLIS_RETENTION_DAYS``."""
    days = settings.TRELLIS_RETENTION_DAYS
    if not days:
        return {}
    counts = purge_runs(now() - timedelta(days=days))
    if counts.runs:
        logger.info("retention: deleted %s in %d batches", counts, counts.batches)
    return {"runs": counts.runs, "nodes": counts.nodes, "events": counts.events}


def periodic_tasks() -> dict[str, dict[str, Any]]:
    """The beat entries Trellis needs: the reconciler every ``TRELLIS_RECONCILE_SECONDS``, and
    retention hourly when ``TRELLIS_RETENTION_DAYS`` is set."""
    entries = {
        "trellis-reconcile": {
            "task": "trellis.reconcile",
            "schedule": float(settings.TRELLIS_RECONCILE_SECONDS),
        }
    }
    if settings.TRELLIS_RETENTION_DAYS:
        entries["trellis-purge-runs"] = {"task": "trellis.purge_runs", "schedule": 3600.0}
    return entries


def _register_periodic_tasks(sender=None, **kwargs) -> None:
    """Add :func:`periodic_tasks` to the app's beat schedule, unless the project's own
    schedule has an entry of that name."""
    schedule = current_app.conf.beat_schedule
    for name, entry in periodic_tasks().items():
        schedule.setdefault(name, entry)


# Beat imports this module (autodiscovery) before it builds its scheduler, which reads the
# app's beat_schedule; so the host's beat runs the reconciler without a schedule of its own.
if current_app.configured:
    _register_periodic_tasks()
else:
    current_app.on_after_configure.connect(_register_periodic_tasks, weak=False)
